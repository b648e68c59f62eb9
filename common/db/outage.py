"""Failing fast while PostgreSQL is down, and serving again the moment it is back.

The limit it works around: psycopg-pool 3.3.3 slows an outage and the recovery from it
three ways, described below. What would retire it: psycopg-pool failing its waiting
clients when its attempt to connect fails (no upstream issue asks for it yet; the
nearest, psycopg#370 and #1315, are closed), which would retire WatchedPool's override of
the private `_connect` and `_getconn_with_check_loop` (it also uses `_lock`, `_waiting`,
`_getconn_unchecked`, `_check_connection` and `_putconn`: psycopg-pool is pinned for
them). Setting: DB_FAIL_FAST=false builds psycopg-pool's own pools and keeps no record.

Without this, every request during an outage waits DB_POOL_TIMEOUT for a connection the
pool cannot make (psycopg's pool keeps its waiting clients until their timeout, whatever
its own attempts to connect meet); and after the outage psycopg's backoffs hold requests
back: a pool retries a lost connection after 1, 2, 4 … seconds (the slot is taken
meanwhile, so after a long outage a request waited DB_POOL_TIMEOUT and got 503 with
the database long back), and a request that finds its pooled connections broken sleeps
1, 2, 4 … seconds between them (a restart breaks them all).

So each process keeps one record: the last attempt to connect failed (the pools' own
attempts, and requests' own), or it did not. When a pool's attempt fails, the requests
waiting on that pool are refused. While the record says down, a request that needs a
connection first has an attempt made (in a thread of its own, DB_CONNECT_TIMEOUT at
most), shared with the requests arriving meanwhile, and a request whose shared attempt
began before it arrived and failed has another made. So the first request after
PostgreSQL accepts connections again clears the record and is served, and none is
refused on old news; while the database refuses connections, each is refused in the
time it takes to be refused (503). No request waits more than JOIN_WAIT for an attempt
(a host that does not answer at all, a dead link): it is refused then, and an attempt
older than JOIN_WAIT is left to end on its own while the next request has a fresh one
made, so a restored link is found within about JOIN_WAIT, not when an attempt begun in
the dark times out (its lost SYN resent only after the kernel's backoff).
Once the record is clear the pools serve again: their lost connections were dropped
rather than retried with a backoff (reconnect_timeout 0: a new one is made when a
request needs it), and the connections that went broken while idle are replaced one
after another without a pause (WatchedPool).

A connection that fails its check on checkout is not an outage (Neon closes idle
connections when it suspends a compute), unless the check hung for HUNG_CHECK first: a
server that hung up says so at once, while a check into a dead link fails only when
DB_NETWORK_TIMEOUT (libpq's tcp_user_timeout, config/env.network_options) ends it. That
request is refused there and then, rather than checking the pool's other connections,
each as dead, one DB_NETWORK_TIMEOUT after another.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from common import metrics

logger = logging.getLogger("docservice.database")

JOIN_WAIT = 0.5  # seconds a request waits for an attempt to connect, at most
# A check of a pooled connection that failed after this long met a network that stopped
# answering (DB_NETWORK_TIMEOUT ended it), not a server that hung up: an outage.
HUNG_CHECK = 1.0


class DatabaseUnavailable(psycopg.OperationalError):
    """Raised instead of waiting for a connection while the database is known down."""


class Outage:
    """This process's view of whether the database can be reached."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        # Notified when the outage ends and when an attempt ends.
        self._changed = threading.Condition(self._lock)
        self._down_since: float | None = None
        self._up_since = 0.0  # when the last outage ended (monotonic)
        self._error = ""
        self._attempt: _Attempt | None = None  # a request's attempt to connect, under way

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, error: BaseException, *, started: float | None = None) -> None:
        """An attempt to connect (begun at `started`, monotonic) failed. One that began
        before the last success is old news (it hung on a link since restored) and is
        ignored."""
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        with self._lock:
            if started is not None and started < self._up_since:
                return
            self._error = message
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            metrics.database_down(True)  # under the lock: in the order the record changes
        logger.error("database unavailable: %s; refusing requests until it answers", message)

    def succeeded(self) -> None:
        """An attempt to connect succeeded."""
        if self._down_since is None:  # the common case: no lock
            return
        with self._lock:
            if self._down_since is None:
                return
            self._up_since = time.monotonic()
            lasted = self._up_since - self._down_since
            self._down_since = None
            self._changed.notify_all()
            metrics.database_down(False)
        logger.warning("database available again after %.1fs", lasted)

    def refusal(self) -> DatabaseUnavailable:
        with self._lock:
            since = time.monotonic() - (self._down_since or time.monotonic())
            error = self._error
        return DatabaseUnavailable(f"the database has not answered for {since:.0f}s: {error}")

    def check(self, probe: Callable[[], None]) -> None:
        """Return when a connection may be sought; while the database is known down, once
        an attempt to connect (`probe`, a connection opened and closed) that began after
        the caller arrived has succeeded, and raise DatabaseUnavailable if it failed or
        has not answered within JOIN_WAIT.

        Attempts run in a thread of their own and the caller waits JOIN_WAIT at most: on
        a link that drops packets an attempt hangs until DB_CONNECT_TIMEOUT, and a SYN
        lost while the link was down is sent again only after the kernel's backoff, so
        an attempt older than JOIN_WAIT is left to finish on its own and the next caller
        starts a fresh one. The first request after the link returns is then served
        within about JOIN_WAIT, not at the end of an attempt begun in the dark."""
        if self._down_since is None:
            return
        arrived = time.monotonic()
        with self._changed:
            while True:
                if self._down_since is None:
                    return
                attempt = self._attempt
                if attempt is None or time.monotonic() - attempt.started > JOIN_WAIT:
                    attempt = self._attempt = _Attempt()
                    threading.Thread(
                        target=self._try, args=(attempt, probe), name="db-probe", daemon=True
                    ).start()
                # Served by whichever attempt succeeds first, this one or a fresher one.
                self._changed.wait_for(
                    partial(self._settled, attempt),
                    timeout=max(0.0, attempt.started + JOIN_WAIT - time.monotonic()),
                )
                if self._down_since is None:
                    return
                if not attempt.done.is_set():
                    raise self.refusal()  # connecting hangs: refused now, not at its timeout
                if not isinstance(attempt.error, psycopg.Error):
                    raise attempt.error or RuntimeError("an attempt ended with no outcome")
                if attempt.started >= arrived:
                    raise self.refusal()
                # It began before this caller arrived: the answer may be old news; again.

    def _settled(self, attempt: _Attempt) -> bool:
        return self._down_since is None or attempt.done.is_set()

    def _try(self, attempt: _Attempt, probe: Callable[[], None]) -> None:
        try:
            probe()
        except BaseException as exc:  # handed to the callers waiting on it
            attempt.error = exc
            if isinstance(exc, psycopg.Error):
                self.failed(exc, started=attempt.started)
        else:
            self.succeeded()
        finally:
            with self._changed:
                if self._attempt is attempt:
                    self._attempt = None
                attempt.done.set()
                self._changed.notify_all()


class _Attempt:
    """One attempt to connect, which the requests arriving while it lasts wait for."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.error: BaseException | None = None


outage = Outage()


class WatchedPool(ConnectionPool):
    """psycopg's pool, reporting its attempts to connect to `outage`; when one fails,
    the requests waiting for a connection are refused there and then (as psycopg's own
    close() refuses them) instead of each waiting out its timeout, and the lost
    connection is not retried in the background (a request that needs one makes it).
    While the database is known down the pool makes no attempt of its own: an attempt
    begun on a dead link would still be waiting for its lost packets to be resent when
    the link returns, and the pool grows one connection at a time, so requests would
    queue behind it (seconds, measured); a request's own attempt finds the database back.
    A request that finds pooled connections broken takes the next one without psycopg's
    pause between them. Uses the pool's private `_connect`, `_lock`, `_waiting`,
    `_getconn_unchecked`, `_check_connection` and `_putconn`: psycopg-pool is pinned
    for that."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reconnect_timeout", 0)
        super().__init__(*args, **kwargs)

    def _connect(self, timeout: float | None = None) -> Any:
        if outage.down:  # a request's own attempt finds it back: none begun in the dark
            self._refuse_waiting()
            raise outage.refusal()
        started = time.monotonic()
        try:
            connection = super()._connect(timeout)
        except psycopg.OperationalError as exc:
            self._unreachable(exc, started)
            raise
        outage.succeeded()
        return connection

    def _unreachable(self, error: psycopg.OperationalError, started: float) -> None:
        """The database did not answer: recorded, and the waiting requests refused."""
        outage.failed(error, started=started)
        self._refuse_waiting()

    def _refuse_waiting(self) -> None:
        with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        for client in waiting:
            client.fail(outage.refusal())

    def _getconn_with_check_loop(self, deadline: float) -> Any:
        for _ in range(self.max_size):  # each connection it holds may have gone broken
            connection = self._getconn_unchecked(deadline - time.monotonic())
            started = time.monotonic()
            try:
                self._check_connection(connection)
            except psycopg.OperationalError as exc:
                if time.monotonic() - started >= HUNG_CHECK:  # the network, not the server
                    self._unreachable(exc, started)  # first: no replacement tried in the dark
                    self._putconn(connection, from_getconn=True)
                    raise outage.refusal() from exc
                self._putconn(connection, from_getconn=True)  # dropped, a new one made
            except Exception:
                self._putconn(connection, from_getconn=True)
            except BaseException:  # cancelled: the connection goes back, no more tries
                self._putconn(connection, from_getconn=True)
                raise
            else:
                return connection
        return super()._getconn_with_check_loop(deadline)  # psycopg's, with its pauses


class WatchedAsyncPool(AsyncConnectionPool):
    """The async pool's counterpart of WatchedPool."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("reconnect_timeout", 0)
        super().__init__(*args, **kwargs)

    async def _connect(self, timeout: float | None = None) -> Any:
        if outage.down:
            await self._refuse_waiting()
            raise outage.refusal()
        started = time.monotonic()
        try:
            connection = await super()._connect(timeout)
        except psycopg.OperationalError as exc:
            await self._unreachable(exc, started)
            raise
        outage.succeeded()
        return connection

    async def _unreachable(self, error: psycopg.OperationalError, started: float) -> None:
        outage.failed(error, started=started)
        await self._refuse_waiting()

    async def _refuse_waiting(self) -> None:
        async with self._lock:
            waiting = list(self._waiting)
            self._waiting.clear()
        for client in waiting:
            await client.fail(outage.refusal())

    async def _getconn_with_check_loop(self, deadline: float) -> Any:
        for _ in range(self.max_size):
            connection = await self._getconn_unchecked(deadline - time.monotonic())
            started = time.monotonic()
            try:
                await self._check_connection(connection)
            except psycopg.OperationalError as exc:
                if time.monotonic() - started >= HUNG_CHECK:
                    await self._unreachable(exc, started)
                    await self._putconn(connection, from_getconn=True)
                    raise outage.refusal() from exc
                await self._putconn(connection, from_getconn=True)
            except Exception:
                await self._putconn(connection, from_getconn=True)
            except BaseException:
                await self._putconn(connection, from_getconn=True)
                raise
            else:
                return connection
        return await super()._getconn_with_check_loop(deadline)
