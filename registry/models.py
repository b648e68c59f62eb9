from __future__ import annotations

import hashlib
import secrets
import uuid
from functools import cached_property

from django.core.exceptions import ValidationError
from django.db import connection, models

from registry.exceptions import MissingTable
from registry.records import (
    CONTENT_TYPE_MAX,
    DEFAULT_WORKSPACE,
    FILE_ID_MAX,
    FILENAME_MAX,
    RECORD_FIELDS,
    SHA256_LENGTH,
    SOURCE_MAX,
    UPDATABLE_FIELDS,
    WORKSPACE_MAX,
    DocumentRecord,
    SourceKind,
    is_valid_workspace,
)
from registry.scopes import Scope


def new_file_id() -> str:
    """32 hex digits, the old service's form (imported ids keep whatever form they had)."""
    return uuid.uuid4().hex


class Document(models.Model):
    SourceKind = SourceKind

    # The public id. A string, not a UUID column: legacy ids are UUID-shaped strings
    # and nothing guarantees every registry kept to that shape.
    file_id = models.CharField(
        "document id", max_length=FILE_ID_MAX, unique=True, default=new_file_id
    )
    filename = models.CharField("name", max_length=FILENAME_MAX)
    size_bytes = models.BigIntegerField("size in bytes", default=0)
    workspace = models.CharField(max_length=WORKSPACE_MAX, default=DEFAULT_WORKSPACE, db_index=True)
    num_chunks = models.PositiveIntegerField("chunks", default=0)
    indexed = models.BooleanField(default=False)
    source = models.CharField(
        max_length=SOURCE_MAX, choices=SourceKind.choices, default=SourceKind.FILE
    )
    url = models.TextField("URL", blank=True, default="")
    content_type = models.CharField(max_length=CONTENT_TYPE_MAX, blank=True, default="")
    sha256 = models.CharField("SHA-256", max_length=SHA256_LENGTH, blank=True, default="")
    # Not auto_now/auto_now_add: imports must keep the legacy timestamps exactly.
    created_at = models.DateTimeField("created")
    updated_at = models.DateTimeField("updated")

    class Meta:
        db_table = "documents"
        ordering = ["-created_at", "-file_id"]
        # The same content is stored once per workspace unless a client names a new id for
        # it (a copy): registry/backends/database.py `create` checks under a lock, not a
        # constraint, which a copy could not pass.
        indexes = [
            models.Index(fields=["workspace", "sha256"], name="documents_ws_sha256_idx"),
            models.Index(fields=["workspace", "-created_at"], name="documents_ws_created_idx"),
            models.Index(fields=["-created_at", "-file_id"], name="documents_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.filename} ({self.file_id})"

    def to_record(self) -> DocumentRecord:
        return DocumentRecord(**{name: getattr(self, name) for name in RECORD_FIELDS})

    @classmethod
    def from_record(cls, record: DocumentRecord) -> Document:
        return cls(**{name: getattr(record, name) for name in RECORD_FIELDS})

    @classmethod
    def fields_from_record(cls, record: DocumentRecord) -> dict[str, object]:
        """Column values for `record`, everything but the natural key `file_id`."""
        return {name: getattr(record, name) for name in UPDATABLE_FIELDS}


def require_documents_table() -> None:
    """MissingTable, naming the database, when `migrate` has not created the table yet."""
    if Document._meta.db_table not in connection.introspection.table_names():
        name = connection.settings_dict["NAME"]
        raise MissingTable(
            f"the database {name} has no {Document._meta.db_table} table: "
            "run `python manage.py migrate` first"
        )


API_KEY_PREFIX = "dsk_"


def hash_api_key(raw_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKey(models.Model):
    """A key for the API, sent in the X-API-Key header. Only its hash is stored.

    Its scope (registry/scopes.py): every workspace, or the ones listed; and its access,
    read (list, get, ask, jobs) or write (also ingest and delete). Keys made before
    scopes existed are every-workspace write keys, as they were."""

    class Access(models.TextChoices):
        READ = "read", "read: list, read, ask"
        WRITE = "write", "write: also ingest and delete"

    name = models.CharField(max_length=100)
    all_workspaces = models.BooleanField(
        "every workspace",
        default=True,
        help_text="Every workspace, including those made later. Untick to limit the key "
        "to the workspaces listed.",
    )
    workspaces = models.JSONField(
        default=list,
        blank=True,
        help_text="The workspaces the key may use, when not every workspace.",
    )
    access = models.CharField(max_length=8, choices=Access.choices, default=Access.WRITE)
    prefix = models.CharField(max_length=16, editable=False, help_text="Identifies the key.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "api_keys"
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    @cached_property
    def scope(self) -> Scope:
        """What a request with this key may see and change (kept with the cached key)."""
        names = None if self.all_workspaces else frozenset(self.workspaces)
        return Scope(names, can_write=self.access == self.Access.WRITE)

    def describe_scope(self) -> str:
        """The scope in words: `write, every workspace`; `read, eng and docs`."""
        where = "every workspace" if self.all_workspaces else " and ".join(sorted(self.workspaces))
        return f"{self.access}, {where}"

    def clean(self) -> None:
        names = self.workspaces
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValidationError({"workspaces": "A list of workspace names."})
        bad = [name for name in names if not is_valid_workspace(name)]
        if bad:
            raise ValidationError(
                {
                    "workspaces": f"Invalid workspace {bad[0]!r}: use 1-{WORKSPACE_MAX} "
                    "letters, digits, '_', '.' or '-', starting with a letter or digit."
                }
            )
        if self.all_workspaces:
            self.workspaces = []
        elif not names:
            raise ValidationError(
                {"workspaces": "Name at least one workspace, or tick every workspace."}
            )
        else:
            self.workspaces = sorted(set(names))

    @classmethod
    def by_prefix(cls, prefix: str) -> ApiKey:
        """The one key whose prefix starts so, or LookupError saying why not."""
        prefix = prefix.strip()
        matches = list(cls.objects.filter(prefix__startswith=prefix)[:2]) if prefix else []
        if len(matches) != 1:
            found = "no API key" if not matches else "more than one API key"
            raise LookupError(f"{found} has the prefix {prefix!r}")
        return matches[0]

    def set_new_key(self) -> str:
        """Give this key a fresh secret and return it: the only time it is visible."""
        raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
        self.prefix = raw_key[:12]
        self.key_hash = hash_api_key(raw_key)
        return raw_key


class AuditEvent(models.Model):
    """Who ingested, re-ingested or deleted which document, when and from where (issue
    26). Written beside the change it records, read-only in the admin. `actor` names an
    API key by its name and prefix (never its secret), or a staff user."""

    class Action(models.TextChoices):
        INGEST = "ingest", "ingest"
        REINGEST = "re-ingest", "re-ingest"
        DELETE = "delete", "delete"

    at = models.DateTimeField("when", auto_now_add=True, db_index=True)
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.CharField("who", max_length=200)
    via = models.CharField(max_length=32)  # api, api (background), admin, admin (background)
    address = models.CharField("from", max_length=64, blank=True, default="")
    file_id = models.CharField("document id", max_length=FILE_ID_MAX, db_index=True)
    filename = models.CharField("name", max_length=FILENAME_MAX, blank=True, default="")
    workspace = models.CharField(max_length=WORKSPACE_MAX, blank=True, default="")

    class Meta:
        db_table = "audit_events"
        verbose_name = "audit event"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.filename or self.file_id} by {self.actor}"
