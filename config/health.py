"""GET /health: liveness and readiness for a load balancer, and an operator's first look.

The live registry probes itself and the database (RegistryBackend.aprobe), each within
HEALTH_TIMEOUT: a hung database answers 503 in time rather than holding the probe.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest
from ninja import Router, Schema
from ninja.responses import Status

from ingest import warmup
from ingest.jobs.queue_health import queue_health
from registry.backends import get_backend

logger = logging.getLogger(__name__)

router = Router(tags=["health"])


class QueueOut(Schema):
    """The background queue (ingest/jobs/): jobs waiting and running, how long the
    oldest has waited, and the workers heard of in the last minute."""

    queued: int
    running: int
    oldestQueuedSeconds: float | None = None
    workers: int


class HealthOut(Schema):
    ok: bool
    db: bool
    # "starting" while this process warms up (ingest/warmup.py): 503, send it nothing yet.
    status: str | None = None
    registry: str | None = None  # named when it is not the database's: a rollback
    queue: QueueOut | None = None  # while the database answers


@router.get("/health", response={200: HealthOut, 503: HealthOut}, exclude_none=True)
async def health(request: HttpRequest) -> Status[HealthOut]:
    """Liveness and readiness: 200 when the registry and the database answer and this
    process is warmed up, else 503."""
    found = await get_backend().aprobe(settings.HEALTH_TIMEOUT)
    starting = not warmup.ready()
    ok = found.database and found.registry and not starting
    body = HealthOut(
        ok=ok, db=found.database, registry=found.named, status="starting" if starting else None
    )
    if found.database:
        body.queue = await _queue(settings.HEALTH_TIMEOUT)
    return Status(200 if ok else 503, body)


async def _queue(timeout: float) -> QueueOut | None:
    """The queue, or None when it cannot be read in time (the jobs table not migrated,
    the database gone meanwhile): it never decides `ok`."""
    try:
        async with asyncio.timeout(timeout):
            state = await queue_health.state_now()
    except (TimeoutError, DatabaseError) as exc:
        logger.warning("health: the job queue cannot be read: %s", exc or "timed out")
        return None
    fields = dataclasses.asdict(state)
    return QueueOut(oldestQueuedSeconds=fields.pop("oldest_queued_seconds"), **fields)
