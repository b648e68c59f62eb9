"""Django's PostgreSQL backend with two changes: its pool fails fast while the database
is down, and a connection held outside a request is replaced once the server has hung up
on it.

The limits they work around: Django 5.2.19 builds psycopg's ConnectionPool itself and
takes no pool class, so its `pool` property is copied here (with its private
`_connection_pools` and `_configure_connection`); and it checks a reused connection only
once per request (CONN_HEALTH_CHECKS), so a process without requests never checks it.
What would retire them: a pool class in Django's pool options (no ticket yet), and a
check on reuse outside requests. Setting: DB_FAIL_FAST=false gives Django's own pool
back; the socket poll costs no round trip and has no switch.

The pool is a WatchedPool (common/db/outage.py), which refuses the requests waiting for
a connection when an attempt to connect fails; while the database is known down, a
request that needs a connection is refused at once instead of waiting DB_POOL_TIMEOUT,
and the first request after it is back is served.

And a connection held across requests, outside a transaction, is replaced when the
server has hung up on it. Django checks its connection at the start and the end of a
request (close_old_connections), but a process without requests (a management command's
loop, Django's test client, which turns that check off) keeps its connection: after
PostgreSQL restarted, every query of such a process failed, for good. A server that
ends a connection (a restart, Neon suspending a compute) says so on its socket, so a
poll of the socket (no round trip) before each use tells whether a real check is due."""

from __future__ import annotations

import select
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import NO_DB_ALIAS
from django.db.backends.postgresql import base

from common.db.outage import WatchedPool, outage


class DatabaseWrapper(base.DatabaseWrapper):
    @property
    def pool(self) -> Any:
        """Django's own pool property (django/db/backends/postgresql/base.py, 5.2), with
        WatchedPool for psycopg's ConnectionPool."""
        if not settings.DB_FAIL_FAST:
            return super().pool
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == NO_DB_ALIAS or not pool_options:
            return None
        django: Any = self  # Django's private attributes, which its stubs do not know
        pools: dict[str, Any] = django._connection_pools
        if self.alias not in pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            pool = WatchedPool(
                kwargs={**self.get_connection_params(), "autocommit": True},
                open=False,
                configure=django._configure_connection,
                check=WatchedPool.check_connection
                if self.settings_dict["CONN_HEALTH_CHECKS"]
                else None,
                **({} if pool_options is True else pool_options),
            )
            pools.setdefault(self.alias, pool)
        return pools[self.alias]

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        if not settings.DB_FAIL_FAST:
            return super().get_new_connection(conn_params)
        outage.check(lambda: psycopg.connect(**conn_params).close())
        try:
            connection = super().get_new_connection(conn_params)
        except psycopg.OperationalError as exc:  # the pool's timeout, or a refused connect
            outage.failed(exc)
            raise
        outage.succeeded()
        return connection

    def ensure_connection(self) -> None:
        if self.connection is not None and not self.in_atomic_block and self._hung_up():
            self.close()  # a pooled one goes back to its pool, which drops it
        super().ensure_connection()

    def _hung_up(self) -> bool:
        """Whether the server has ended this idle connection: psycopg knows it broken,
        or the socket has something to read (a connection between queries is sent
        nothing but a notice or the server's goodbye) and a query fails."""
        connection = self.connection
        if connection.closed or connection.broken:
            return True
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
        return bool(readable) and not self.is_usable()
