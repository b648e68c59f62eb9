"""The background queue as /health reports it: read at most every QUEUE_CACHE_SECONDS
per process, so that a load balancer probing often costs one query a while."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db.models import Count, Min, Q, QuerySet
from django.db.models.functions import Now
from django.utils import timezone

from common.db import async_reads
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


def _workers_seen() -> QuerySet[JobWorker]:
    seen = Now() - timedelta(minutes=1)  # heartbeats carry the database's clock
    return JobWorker.objects.filter(seen_at__gte=seen)


@functools.cache
def _in_one_statement() -> tuple[str, tuple[Any, ...]]:
    """The four figures as one statement on the native pool (common/db/async_reads.py):
    one round trip, on the event loop."""
    queued = IngestJob.objects.filter(status=Status.QUEUED)
    return async_reads.scalars(
        async_reads.count_sql(queued),
        async_reads.count_sql(IngestJob.objects.filter(status=Status.RUNNING)),
        async_reads.select_sql(queued.order_by("created_at").values_list("created_at")[:1]),
        async_reads.count_sql(_workers_seen()),
    )


async def _read_state() -> QueueState:
    now = timezone.now()
    if async_reads.native_reads():
        rows = await async_reads.fetch_rows(*_in_one_statement())
        queued, running, oldest, workers = rows[0]
    else:
        counts = await IngestJob.objects.pending().aaggregate(
            queued=Count("pk", filter=Q(status=Status.QUEUED)),
            running=Count("pk", filter=Q(status=Status.RUNNING)),
            oldest=Min("created_at", filter=Q(status=Status.QUEUED)),
        )
        queued, running, oldest = counts["queued"], counts["running"], counts["oldest"]
        workers = await _workers_seen().acount()
    return QueueState(
        queued=queued,
        running=running,
        oldest_queued_seconds=round((now - oldest).total_seconds(), 1) if oldest else None,
        workers=workers,
    )
