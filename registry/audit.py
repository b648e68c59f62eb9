"""The audit trail: who ingested, re-ingested or deleted a document, when and from where
(registry.models.AuditEvent). The API and the admin name who asks (`actor_of`), a
command names itself (`Actor.command`); a background job records the one who asked for
it, when it stores the document. The events are written by ingest's write path
(ingest/services.py), inside the unit of work of the change they record."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from registry.models import ApiKey, AuditEvent
from registry.records import DocumentRecord


@dataclass(frozen=True)
class Actor:
    """Who asked for a change, through what, from which address."""

    name: str
    via: str
    address: str = ""

    def in_background(self) -> Actor:
        return Actor(self.name, f"{self.via} (background)", self.address)

    @classmethod
    def command(cls, name: str) -> Actor:
        """A management command run on this host (import_registry --sync, say)."""
        return cls(f"command {name}", "command", socket.gethostname())


def actor_of(request: HttpRequest) -> Actor:
    """The API key (its name and prefix, never its secret), the staff user, or anonymous
    (API_KEYS_REQUIRED=false) behind a request, and its address (REMOTE_ADDR: the server
    takes it from X-Forwarded-For only for TRUSTED_PROXIES)."""
    address = str(request.META.get("REMOTE_ADDR") or "")
    auth: Any = getattr(request, "auth", None)
    if isinstance(auth, ApiKey):
        return Actor(f"key {auth.name} ({auth.prefix}…)", "api", address)
    user: Any = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return Actor(f"staff {user.get_username()}", "admin", address)
    return Actor("anonymous", "api", address)


def event(action: str, document: DocumentRecord, actor: Actor) -> AuditEvent:
    return AuditEvent(
        action=action,
        actor=actor.name[:200],
        via=actor.via,
        address=actor.address[:64],
        file_id=document.file_id,
        filename=document.filename,
        workspace=document.workspace,
    )


def record(action: str, documents: list[DocumentRecord], actor: Actor) -> None:
    AuditEvent.objects.bulk_create([event(action, document, actor) for document in documents])
