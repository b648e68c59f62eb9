"""GET /health: liveness and readiness for a load balancer, and an operator's first look.

The live registry probes itself and the database (RegistryBackend.aprobe), each within
HEALTH_TIMEOUT: a hung database answers 503 in time rather than holding the probe.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from ninja import Router, Schema
from ninja.responses import Status

from registry.backends import get_backend

router = Router(tags=["health"])


class HealthOut(Schema):
    ok: bool
    db: bool
    registry: str | None = None  # named when it is not the database's: a rollback


@router.get("/health", response={200: HealthOut, 503: HealthOut}, exclude_none=True)
async def health(request: HttpRequest) -> Status[HealthOut]:
    """Liveness and readiness: 200 when the registry and the database answer, else 503."""
    found = await get_backend().aprobe(settings.HEALTH_TIMEOUT)
    ok = found.database and found.registry
    return Status(200 if ok else 503, HealthOut(ok=ok, db=found.database, registry=found.named))
