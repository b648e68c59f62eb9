"""GET /metrics: the Prometheus metrics of every process on this host (common/metrics.py),
and the background queue as the database holds it; docs/metrics.md.

Off the public API: served to the addresses in METRICS_ALLOWED_NETWORKS (loopback by
default) that reach the server directly, or with `Authorization: Bearer METRICS_TOKEN`;
403 otherwise (the endpoint is no secret, and an operator whose scrape is refused should
see why). Not an operation of the NinjaAPI, so not in the OpenAPI schema; mounted by
config/urls.py only when METRICS_ENABLED.

The queue's figures are facts of the database, not of a process: read here, at scrape
time, in the statement /health uses (ingest/jobs/queue_health.py, at most every 2 s per
process), so every web server reports the same values (aggregate them with max(), not
sum()). A scrape that cannot read them within HEALTH_TIMEOUT leaves them out, and still
answers: a scrape never fails for the database.
"""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from common.metrics import FORWARDED_HEADERS, REFUSED, render, scrape_allowed
from ingest.jobs.queue_health import QueueState, queue_health

logger = logging.getLogger(__name__)


async def metrics(request: HttpRequest) -> HttpResponse:
    """The metrics in Prometheus's text format (OpenMetrics if the scraper asks for it)."""
    allowed = scrape_allowed(
        address=request.META.get("REMOTE_ADDR", ""),
        authorization=request.headers.get("Authorization", ""),
        forwarded=any(header in request.headers for header in FORWARDED_HEADERS),
    )
    if not allowed:
        return HttpResponse(REFUSED, status=403, content_type="text/plain; charset=utf-8")
    families = queue_families(await _queue(settings.HEALTH_TIMEOUT))
    accept = request.headers.get("Accept", "")
    body, content_type = await asyncio.to_thread(render, families, accept=accept)
    return HttpResponse(body, content_type=content_type)


async def _queue(timeout: float) -> QueueState | None:
    try:
        async with asyncio.timeout(timeout):
            return await queue_health.state_now()
    except (TimeoutError, DatabaseError) as exc:
        logger.warning("metrics: the job queue cannot be read: %s", exc or "timed out")
        return None


def queue_families(state: QueueState | None) -> list[Metric]:
    """The queue as gauges: jobs queued and running, the oldest queued job's wait, the
    workers heard of in the last minute. None of them when it could not be read."""
    if state is None:
        return []
    jobs = GaugeMetricFamily(
        "docservice_ingest_jobs", "Background jobs waiting or running now", labels=["status"]
    )
    jobs.add_metric(["queued"], state.queued)
    jobs.add_metric(["running"], state.running)
    oldest = GaugeMetricFamily(
        "docservice_ingest_queue_oldest_seconds",
        "How long the oldest queued job has waited (0 with none queued)",
        value=state.oldest_queued_seconds or 0.0,
    )
    workers = GaugeMetricFamily(
        "docservice_ingest_workers",
        "Background workers (db_worker) heard of in the last minute, on every host",
        value=state.workers,
    )
    return [jobs, oldest, workers]
