"""The database pools' waits as metrics: psycopg-pool counts, in each pool, the requests
that waited for a connection, how long, and those that got none; a thread of each process
copies those counts into docservice_db_pool_* (common/metrics.py) every SAMPLE_SECONDS.

A thread rather than a scrape: a scrape runs in one process, and each process's pools
are its own; in multiprocess mode each process writes its own values, which a scrape adds
up. Nothing is done per request. The pools are read, never made: Django's ("django",
made on a process's first query) and the async reads' ("async-reads",
common/db/async_reads.py, made on its first read). Their counts are psycopg-pool's
`get_stats()`, which nobody resets here.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS

from common import metrics
from common.db import async_reads
from common.db.postgresql import POSTGRESQL

logger = logging.getLogger(__name__)

SAMPLE_SECONDS = 5.0
# psycopg-pool's cumulative counts, and the counter each goes to (milliseconds to seconds).
_COUNTS = (
    ("requests_wait_ms", metrics.DB_POOL_WAIT_SECONDS, 0.001),
    ("requests_queued", metrics.DB_POOL_WAITS, 1),
    ("requests_errors", metrics.DB_POOL_ERRORS, 1),
    ("connections_lost", metrics.DB_POOL_CONNECTIONS_LOST, 1),
)

_started_in: int | None = None  # the pid of the process whose thread runs
_start_lock = threading.Lock()


def start_sampling() -> None:
    """Sample this process's pools every SAMPLE_SECONDS from now on (once per process; on
    PostgreSQL only)."""
    global _started_in
    if settings.DATABASES[DEFAULT_DB_ALIAS]["ENGINE"] != POSTGRESQL:
        return
    with _start_lock:
        if _started_in == os.getpid():
            return
        _started_in = os.getpid()
    threading.Thread(target=_sample_forever, name="pool-metrics", daemon=True).start()


def _sample_forever() -> None:
    sampler = Sampler()
    stopped = threading.Event()  # never set: the thread lives as long as the process
    while True:
        try:
            sampler.sample()
        except Exception:  # a figure missed is no reason to stop counting the next
            logger.exception("the database pools' figures could not be read")
        stopped.wait(SAMPLE_SECONDS)


class Sampler:
    """Adds what each pool counted since the last sample to the counters, and sets the
    gauges to what the pools hold now."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, int], dict[str, int]] = {}  # (pool, id(pool)) → its counts

    def sample(self) -> None:
        seen = set()
        now: dict[str, dict[str, int]] = {}  # by pool name: connections and waiting requests
        for name, pool in _pools():
            stats = pool.get_stats()
            key = (name, id(pool))
            seen.add(key)
            before = self.last.get(key, {})
            for count, counter, scale in _COUNTS:
                added = stats.get(count, 0) - before.get(count, 0)
                child = counter.labels(pool=name)  # at 0 from the first sample on
                if added > 0:
                    child.inc(added * scale)
            self.last[key] = stats
            figures = now.setdefault(name, {})
            for measure in ("pool_size", "pool_available", "requests_waiting"):
                figures[measure] = figures.get(measure, 0) + stats.get(measure, 0)
        for gone in set(self.last) - seen:  # a pool closed (its event loop ended)
            del self.last[gone]
        for name, figures in now.items():
            connections = metrics.DB_POOL_CONNECTIONS
            connections.labels(pool=name, state="open").set(figures["pool_size"])
            connections.labels(pool=name, state="idle").set(figures["pool_available"])
            metrics.DB_POOL_REQUESTS_WAITING.labels(pool=name).set(figures["requests_waiting"])


def _pools() -> list[tuple[str, Any]]:
    """This process's pools that exist now, by name."""
    from django.db.backends.postgresql.base import DatabaseWrapper

    pools: list[tuple[str, Any]] = []
    # Django's private registry of its pools, as common/db/postgresql/base.py fills it:
    # its `pool` property would make one.
    django: Any = DatabaseWrapper
    if (pool := django._connection_pools.get(DEFAULT_DB_ALIAS)) is not None:
        pools.append(("django", pool))
    pools.extend(("async-reads", pool) for pool in async_reads.opened_pools())
    return pools
