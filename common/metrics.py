"""The service's Prometheus metrics: what is counted, and how the values of every process
on a host reach one scrape (GET /metrics, config/metrics.py; docs/metrics.md).

prometheus-client's multiprocess mode: each process writes its values to files of its own
(named by its pid) in METRICS_DIR, and a scrape adds up the files of every process there
(`render`), so whichever gunicorn worker answers serves the whole host, the `db_worker`s
beside it included. The library picks that mode when it is imported, from
PROMETHEUS_MULTIPROC_DIR: config/settings.py sets it from METRICS_DIR in every process
before anything imports prometheus_client. A counter of a process that has ended stays
counted (totals only grow) until the next gunicorn start removes the files of processes no
longer running (`remove_dead_files`); a live-mode gauge of an ended process is removed as
it ends (`mark_dead`: gunicorn's child_exit for its workers, at exit for the others).

Everything recorded here is cheap enough for the hot paths: a labelled child is looked up
once and kept, and a value written is a few bytes into a memory-mapped file under one lock.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hmac
import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from common.networks import IPNetwork, parse_networks

# Seconds, from a one-row read (about a millisecond) to a large synchronous ingest
# (GUNICORN_TIMEOUT is 120 s).
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0,
)  # fmt: skip

# -- HTTP (config/serving/metrics.py) -------------------------------------------------
HTTP_REQUEST_SECONDS = Histogram(
    "docservice_http_request_duration_seconds",
    "Requests by route (the URL pattern), method and status, and the seconds until the "
    "response was ready (a streamed body not included)",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)

# -- /ask (ingest/answers/asking.py) --------------------------------------------------
ASK_PHASES = ("embedding", "search", "answering")
_ASK_PHASE_SECONDS = Histogram(
    "docservice_ask_phase_seconds",
    "Seconds a question spent in each phase: embedding it, searching the store and "
    "reading the documents found, answering (extractive, or the model)",
    ["phase"],
    buckets=LATENCY_BUCKETS,
)
ASK_PHASE_SECONDS = {phase: _ASK_PHASE_SECONDS.labels(phase=phase) for phase in ASK_PHASES}

# -- ingestion (ingest/jobs/runner.py, ingest/search/embeddings.py, ingest/sources/) -----
JOB_OUTCOMES = ("succeeded", "failed", "cancelled", "retried", "released", "taken_back")
_JOBS = Counter(
    "docservice_ingest_jobs_total",
    "Background jobs by how a run of one ended: succeeded, failed, cancelled, retried "
    "(queued again after a passing failure), released (its worker stopping), taken_back "
    "(its worker stopped answering)",
    ["outcome"],
)
JOBS = {outcome: _JOBS.labels(outcome=outcome) for outcome in JOB_OUTCOMES}
CHUNKS_EMBEDDED = Counter(
    "docservice_chunks_embedded_total",
    "Chunks of documents embedded, counted batch by batch (synchronous ingests and jobs)",
)
OCR_PAGES = Counter("docservice_ocr_pages_total", "Pages and images read by OCR")

# -- the database (common/db/) ---------------------------------------------------------
DB_DOWN = Gauge(
    "docservice_db_down",
    "1 while a process finds the database unreachable (its outage record, "
    "common/db/outage.py), 0 otherwise",
    multiprocess_mode="livemax",
)
DB_OUTAGES = Counter("docservice_db_outages_total", "Times a process found the database down")
DB_POOL_WAIT_SECONDS = Counter(
    "docservice_db_pool_wait_seconds_total",
    "Seconds requests waited for a pooled connection (psycopg-pool's requests_wait_ms)",
    ["pool"],
)
DB_POOL_WAITS = Counter(
    "docservice_db_pool_waits_total",
    "Requests that had to wait for a pooled connection (requests_queued)",
    ["pool"],
)
DB_POOL_ERRORS = Counter(
    "docservice_db_pool_errors_total",
    "Requests that got no pooled connection: timed out or refused (requests_errors)",
    ["pool"],
)
DB_POOL_CONNECTIONS_LOST = Counter(
    "docservice_db_pool_connections_lost_total",
    "Pooled connections found broken (connections_lost)",
    ["pool"],
)
DB_POOL_CONNECTIONS = Gauge(
    "docservice_db_pool_connections",
    "Connections of the pools by state: open (idle and in use), idle",
    ["pool", "state"],
    multiprocess_mode="livesum",
)
DB_POOL_REQUESTS_WAITING = Gauge(
    "docservice_db_pool_requests_waiting",
    "Requests waiting for a pooled connection now",
    ["pool"],
    multiprocess_mode="livesum",
)

# -- what is in use (an info metric: Info does not work in multiprocess mode) -------------
_INFO = Gauge(
    "docservice_info",
    "1 for the settings each running process serves with: a second series means two "
    "processes disagree",
    ["embedder", "vector_store", "registry", "answer_generator"],
    multiprocess_mode="livemax",
)


def ask_phase(phase: str) -> contextlib.AbstractContextManager[None]:
    """Time a phase of /ask into docservice_ask_phase_seconds."""
    return _timed(ASK_PHASE_SECONDS[phase])


@contextlib.contextmanager
def _timed(histogram: Any) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.observe(time.perf_counter() - started)


def database_down(down: bool) -> None:
    """The outage record changed (common/db/outage.py): down, or available again."""
    DB_DOWN.set(1 if down else 0)
    if down:
        DB_OUTAGES.inc()


def publish_info() -> None:
    """docservice_info for this process's settings (a web worker or a db_worker starting)."""
    from django.conf import settings

    embedder = settings.EMBEDDER
    if embedder == "sentence-transformers":
        embedder += f":{settings.EMBEDDING_MODEL}"
    elif embedder == "gemini":
        embedder += f":{settings.GEMINI_EMBEDDING_MODEL}"
    _INFO.labels(
        embedder=embedder,
        vector_store=settings.VECTOR_STORE,
        registry="json" if settings.USE_JSON_REGISTRY else "database",
        answer_generator=settings.ANSWER_GENERATOR,
    ).set(1)


# -- the processes' files ----------------------------------------------------------------


def directory() -> str | None:
    """Where this process writes its values (multiprocess mode), or None (in memory)."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def mark_dead(pid: int) -> None:
    """Forget the live-mode gauges of a process that has ended (its counters stay)."""
    path = directory()
    if path:
        multiprocess.mark_process_dead(pid, path)


def _mark_self_dead() -> None:
    mark_dead(os.getpid())


# Every process but gunicorn's workers (child_exit marks them) would otherwise leave its
# gauges behind; a process killed outright leaves them until the next gunicorn start.
atexit.register(_mark_self_dead)


def remove_dead_files(path: Path) -> int:
    """Remove the files of processes no longer running on this host (a previous run's),
    keeping those of the running ones (a db_worker started before gunicorn, another
    gunicorn); returns how many were removed. The pids are this host's: the directory
    must not be shared between hosts, nor between containers that do not share their
    pid namespace."""
    removed = 0
    for file in path.glob("*.db"):
        pid = file.stem.rpartition("_")[2]
        if pid.isdigit() and not _running(int(pid)):
            with contextlib.suppress(FileNotFoundError):
                file.unlink()
                removed += 1
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: running
        return True
    return True


# -- a scrape ----------------------------------------------------------------------------

# Set by a proxy: the address a request comes from is then the proxy's, not the client's.
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
REFUSED = (
    b"Metrics are served to METRICS_ALLOWED_NETWORKS reaching the server directly, or with "
    b"an Authorization: Bearer METRICS_TOKEN header\n"
)


def scrape_allowed(*, address: str, authorization: str, forwarded: bool) -> bool:
    """Whether a scrape is served: from an address in METRICS_ALLOWED_NETWORKS, sent
    straight to the server (no proxy's forwarding header: a proxy on this host would
    make every client local), or with `Authorization: Bearer METRICS_TOKEN`."""
    from django.conf import settings

    token = settings.METRICS_TOKEN
    scheme, _, offered = authorization.partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(offered.strip(), token):
        return True
    if forwarded:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    networks = _networks(tuple(settings.METRICS_ALLOWED_NETWORKS))
    return any(ip in network for network in networks)


@functools.lru_cache(maxsize=4)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return parse_networks("METRICS_ALLOWED_NETWORKS", entries)


class _Families:
    """Metric families made at scrape time (the queue's figures, read from the database)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> list[Metric]:
        return self.families


def render(families: Iterable[Metric] = (), *, accept: str = "") -> tuple[bytes, str]:
    """Every process's values on this host (in memory: this process's own), and
    `families`, in the format the scraper accepts: the body and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    path = directory()
    if path:
        multiprocess.MultiProcessCollector(registry, path=path)
    else:
        from prometheus_client import REGISTRY

        registry.register(_Families(REGISTRY.collect()))
    registry.register(_Families(families))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


def serve(host: str, port: int) -> WSGIServer:
    """GET /metrics of this host on a server of its own, on a thread, under the same
    rule: a db_worker's `--metrics-port`, where no web server runs to serve the host's
    figures. Returns the server (its thread ends with the process)."""
    from wsgiref.simple_server import make_server

    from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        forwarded = any(
            "HTTP_" + name.upper().replace("-", "_") in environ for name in FORWARDED_HEADERS
        )
        allowed = scrape_allowed(
            address=environ.get("REMOTE_ADDR", ""),
            authorization=environ.get("HTTP_AUTHORIZATION", ""),
            forwarded=forwarded,
        )
        if not allowed:
            start_response("403 Forbidden", [("Content-Type", "text/plain; charset=utf-8")])
            return [REFUSED]
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Not found: the metrics are at /metrics\n"]
        body, content_type = render(accept=environ.get("HTTP_ACCEPT", ""))
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    server_class = type("Server", (ThreadingWSGIServer,), {"address_family": family[0][0]})
    server: WSGIServer = make_server(host, port, app, server_class, handler_class=_SilentHandler)
    threading.Thread(target=server.serve_forever, name="metrics-server", daemon=True).start()
    return server
