"""The background queue as /health reports it: read at most every QUEUE_CACHE_SECONDS
per process, so that a load balancer probing often costs two queries a while."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Count, Min, Q
from django.db.models.functions import Now
from django.utils import timezone

from ingest.models import IngestJob, JobWorker

Status = IngestJob.Status
QUEUE_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class QueueState:
    """The background queue as /health reports it."""

    queued: int
    running: int
    oldest_queued_seconds: float | None  # how long the oldest queued job has waited
    workers: int  # workers heard of in the last minute


class QueueHealth:
    """The queue's state as last read, and when."""

    def __init__(self) -> None:
        self.read_at = 0.0
        self.state: QueueState | None = None

    async def state_now(self) -> QueueState:
        """The queue's depth, its oldest job's wait and the workers seen lately."""
        clock = time.monotonic()
        if self.state is None or clock - self.read_at >= QUEUE_CACHE_SECONDS:
            self.state, self.read_at = await _read_state(), clock
        return self.state


queue_health = QueueHealth()


async def _read_state() -> QueueState:
    now = timezone.now()
    counts = await IngestJob.objects.pending().aaggregate(
        queued=Count("pk", filter=Q(status=Status.QUEUED)),
        running=Count("pk", filter=Q(status=Status.RUNNING)),
        oldest=Min("created_at", filter=Q(status=Status.QUEUED)),
    )
    seen = Now() - timedelta(minutes=1)  # heartbeats carry the database's clock
    workers = await JobWorker.objects.filter(seen_at__gte=seen).acount()
    oldest = counts["oldest"]
    state = QueueState(
        queued=counts["queued"],
        running=counts["running"],
        oldest_queued_seconds=round((now - oldest).total_seconds(), 1) if oldest else None,
        workers=workers,
    )
    return state
