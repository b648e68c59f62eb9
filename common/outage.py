"""Failing fast while PostgreSQL is down, and noticing at once when it is back.

Without this, every request during an outage waits DB_POOL_TIMEOUT for a connection the
pool cannot make (psycopg's pool keeps its waiting clients until their timeout, whatever
its own attempts to connect meet), and after the outage the pool's reconnection backoff
(1, 2, 4 … seconds) can leave the service refusing for a while longer.

So each process keeps one record: the last attempt to connect failed (the pools' own
attempts, and requests' own), or it did not. When a pool's attempt fails, the requests
waiting on that pool are refused; while the record says down, a request that needs a
connection is refused at once with an OperationalError, which the API answers 503. At
most once a second, one of those requests is instead let through to try a connection
of its own (waiting DB_CONNECT_TIMEOUT at most): when that succeeds the record clears
and requests go to the pools again, which replace their broken connections as they
check them out.

A connection that fails its check on checkout is not an outage (Neon closes idle
connections when it suspends a compute): only a failed attempt to connect is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

logger = logging.getLogger("docservice.database")

PROBE_INTERVAL = 1.0  # seconds between tries of a connection while the database is down


class DatabaseUnavailable(psycopg.OperationalError):
    """Raised instead of waiting for a connection while the database is known down."""


class Outage:
    """This process's view of whether the database can be reached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._error = ""
        self._next_probe = 0.0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException) -> None:
        """An attempt to connect failed."""
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        with self._lock:
            self._error = message
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self._next_probe = self._down_since + PROBE_INTERVAL
        logger.error("database unavailable: %s; refusing requests until it answers", message)

    def succeeded(self) -> None:
        """An attempt to connect succeeded."""
        if self._down_since is None:  # the common case: no lock
            return
        with self._lock:
            if self._down_since is None:
                return
            lasted = time.monotonic() - self._down_since
            self._down_since = None
        logger.warning("database available again after %.1fs", lasted)

    def _prober(self) -> bool:
        """Whether the caller is the one to try a connection now (at most once a
        second while the database is down)."""
        with self._lock:
            now = time.monotonic()
            if self._down_since is None or now < self._next_probe:
                return False
            self._next_probe = now + PROBE_INTERVAL
            return True

    def refusal(self) -> DatabaseUnavailable:
        with self._lock:
            since = time.monotonic() - (self._down_since or time.monotonic())
            error = self._error
        return DatabaseUnavailable(f"the database has not answered for {since:.0f}s: {error}")

    def check(self, probe: Callable[[], None]) -> None:
        """Return when a connection may be sought; raise DatabaseUnavailable while the
        database is known down, unless this caller's `probe` (a connection of its own,
        opened and closed) shows that it is back."""
        if self._down_since is None:
            return
        if not self._prober():
            raise self.refusal()
        try:
            probe()
        except psycopg.Error as exc:
            self.failed(exc)
            raise self.refusal() from None
        self.succeeded()


outage = Outage()


class WatchedPool(ConnectionPool):
    """psycopg's pool, reporting its attempts to connect to `outage`; when one fails,
    the requests waiting for a connection are refused there and then (as psycopg's own
    close() refuses them) instead of each waiting out its timeout. Uses the pool's
    private `_connect`, `_lock` and `_waiting`: psycopg-pool is pinned for that."""

    def _connect(self, timeout: float | None = None) -> Any:
        try:
            connection = super()._connect(timeout)
        except psycopg.OperationalError as exc:
            outage.failed(exc)
            with self._lock:
                waiting = list(self._waiting)
                self._waiting.clear()
            for client in waiting:
                client.fail(outage.refusal())
            raise
        outage.succeeded()
        return connection


class WatchedAsyncPool(AsyncConnectionPool):
    """The async pool's counterpart of WatchedPool."""

    async def _connect(self, timeout: float | None = None) -> Any:
        try:
            connection = await super()._connect(timeout)
        except psycopg.OperationalError as exc:
            outage.failed(exc)
            async with self._lock:
                waiting = list(self._waiting)
                self._waiting.clear()
            for client in waiting:
                await client.fail(outage.refusal())
            raise
        outage.succeeded()
        return connection
