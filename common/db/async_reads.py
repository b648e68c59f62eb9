"""Reads on psycopg's native async pool: the API's hot read paths on PostgreSQL.

The limit it works around: Django 5.2.19 has no async database cursor; the ORM's async
methods (`afirst`, `acount`, …) are `sync_to_async` around the sync ORM, so each query
leaves the event loop for the request's thread and comes back, and holds that thread
while PostgreSQL answers. psycopg 3 talks to PostgreSQL from the event loop. What it
saves beside config/serving/sync_threads.py (which saves the per-request threads, for
both paths): bench/bench_http.py --versus DB_ASYNC_READS=false, 2026-12-07, 2 workers,
wrk -c32: /health 768 against 415 req/s without it, a document 295 against 275, a page
of 50 documents 99 against 91; in a run of three rounds the ORM path answered timeouts
and 503s on the page under the same load. What would retire it: async database cursors
in Django (ticket #35629, https://code.djangoproject.com/ticket/35629; PRs #18408 and
#19576 open). Setting: DB_ASYNC_READS=false sends the same reads through the ORM, and
each worker then holds one pool instead of two.

What: reads only. The SQL is the ORM's own (`queryset.query.sql_with_params()`), so
tables, columns and filters are written once, in the models and querysets. Connections
are made from Django's own connection parameters (the same database and timeouts, UTC
datetimes, client-side binding and no prepared statements, so PgBouncer and Neon's
pooled endpoint work) in a psycopg_pool.AsyncConnectionPool sized like Django's pool
(DB_POOL_SIZE + DB_MAX_OVERFLOW, DB_POOL_RECYCLE, DB_POOL_TIMEOUT) and checking each
connection on checkout, as Django's pool does. Writes stay on Django's connections and
transactions. Database errors come out as Django's (django.db.OperationalError, …), as
from the ORM.

When (`native_reads()`): PostgreSQL with the pool on (DB_POOL) and DB_ASYNC_READS on
(the default), and no sync caller waiting on this coroutine. A coroutine that sync code
runs through async_to_sync (Django's test client, a management command) reads through
that caller's thread, as asgiref itself does: its connection may hold a transaction
that no other connection can see.

One pool per event loop, opened on first use: a worker runs one loop for its life, so
it has one pool. A pool whose loop has closed (a test's asyncio.run) is dropped, and its
connections close when it is collected; `close_pool()` closes the running loop's pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from asgiref.sync import AsyncToSync
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model, QuerySet
from django.db.utils import DatabaseErrorWrapper
from psycopg_pool import AsyncConnectionPool

from common.db.outage import WatchedAsyncPool, outage
from common.db.postgresql import POSTGRESQL

M = TypeVar("M", bound=Model)

_pools: dict[asyncio.AbstractEventLoop, asyncio.Task[AsyncConnectionPool]] = {}


def native_reads() -> bool:
    """Whether this coroutine may read on the native pool (see the module's docstring)."""
    database = settings.DATABASES[DEFAULT_DB_ALIAS]
    return (
        settings.DB_ASYNC_READS
        and database["ENGINE"] == POSTGRESQL
        and bool(database.get("OPTIONS", {}).get("pool"))
        and getattr(AsyncToSync.executors, "current", None) is None
    )


def _connection_kwargs() -> dict[str, Any]:
    """Django's parameters for a new connection, for psycopg's async connection."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    params["cursor_factory"] = psycopg.AsyncClientCursor  # Django's SQL, Django's binding
    params["autocommit"] = True  # reads only: no transaction left open on return
    return params


async def _open_pool() -> AsyncConnectionPool:
    sizes = settings.DATABASES[DEFAULT_DB_ALIAS]["OPTIONS"]["pool"]
    pool_class = WatchedAsyncPool if settings.DB_FAIL_FAST else AsyncConnectionPool
    pool: AsyncConnectionPool = pool_class(
        kwargs=_connection_kwargs(),
        min_size=1,
        max_size=sizes["max_size"],
        max_lifetime=sizes["max_lifetime"],
        timeout=sizes["timeout"],
        check=AsyncConnectionPool.check_connection,
        name="async-reads",
        open=False,
    )
    await pool.open()
    return pool


async def _pool() -> AsyncConnectionPool:
    loop = asyncio.get_running_loop()
    opening = _pools.get(loop)
    if opening is None:
        for other in [other for other in _pools if other.is_closed()]:
            del _pools[other]
        # A task, so that requests arriving while it opens all wait for the one pool.
        opening = _pools[loop] = loop.create_task(_open_pool())
    if opening.done() and not opening.cancelled() and opening.exception() is None:
        return opening.result()
    try:
        return await asyncio.shield(opening)
    except BaseException:
        if opening.done() and _pools.get(loop) is opening:
            del _pools[loop]  # the next request tries again
        raise


def _probe() -> None:
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    psycopg.connect(**params).close()


async def close_pool() -> None:
    """Close the running loop's pool, if it has one."""
    opening = _pools.pop(asyncio.get_running_loop(), None)
    if opening is not None:
        await (await opening).close()


class _NativeConnections:
    """What Django's DatabaseErrorWrapper asks of a connection: the driver, whose error
    classes it maps to Django's, and a flag it sets (nobody reads this one's: the pool
    checks its connections itself)."""

    Database = psycopg
    errors_occurred = False


# Django's own translation: psycopg's errors come out as the ORM's (django.db.*Error).
# Not `connections[…].wrap_database_errors`, which made a Django connection object for
# every request (each request is an async context of its own): 5% of a worker's time
# on a one-row read.
_DJANGO_ERRORS = DatabaseErrorWrapper(_NativeConnections())


@asynccontextmanager
async def cursor() -> AsyncIterator[psycopg.AsyncCursor[Any]]:
    """A cursor on a pooled connection, in autocommit; psycopg's errors raised as
    Django's."""
    with _DJANGO_ERRORS:
        if outage.down:  # refused at once, or probed in a thread (common/db/outage.py)
            await asyncio.to_thread(outage.check, _probe)
        pool = await _pool()
        async with pool.connection() as connection, connection.cursor() as cur:
            yield cur


async def fetch_rows(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    async with cursor() as cur:
        await cur.execute(sql, params)
        return await cur.fetchall()


def select_sql(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters the ORM would run for this queryset."""
    return queryset.query.sql_with_params()


@dataclass(frozen=True)
class Statement:
    """A queryset's SQL compiled once, for queries that differ only in some values.

    The ORM builds and compiles a queryset anew each time: on a one-row read that was a
    quarter of a web worker's time (py-spy under bench/bench_http.py, 2026-12-07). A
    statement is compiled from a queryset built with a marker string in place of each
    varying value (`compile_statement`); `bind()` puts the values in their places."""

    sql: str
    params: tuple[Any, ...]
    slots: tuple[tuple[int, str], ...]  # (parameter's position, the value's name)

    def bind(self, **values: Any) -> tuple[str, tuple[Any, ...]]:
        params = list(self.params)
        for position, name in self.slots:
            params[position] = values[name]
        return self.sql, tuple(params)


def compile_statement(queryset: QuerySet[Any], **markers: str) -> Statement:
    """The queryset's SQL, with each parameter equal to a marker left for `bind(name=…)`.
    A marker must reach the parameters as it was given (an exact lookup, say)."""
    sql, params = select_sql(queryset)
    slots = tuple(
        (position, name)
        for position, value in enumerate(params)
        for name, marker in markers.items()
        if value == marker
    )
    if {name for _, name in slots} != set(markers):
        raise ValueError(f"not every marker is a parameter of: {sql}")
    return Statement(sql, params, slots)


def count_sql(queryset: QuerySet[Any]) -> tuple[str, tuple[Any, ...]]:
    """The SQL and parameters counting this queryset's rows (what `count()` answers)."""
    sql, params = select_sql(queryset.order_by().values_list("pk"))
    return f"SELECT COUNT(*) FROM ({sql}) AS counted", params  # noqa: S608


def scalars(*queries: tuple[str, tuple[Any, ...]]) -> tuple[str, tuple[Any, ...]]:
    """One statement whose one row holds each query's first value (each must return one
    column, at most one row): several reads for one round trip."""
    sql = ", ".join(f"({query})" for query, _ in queries)
    return f"SELECT {sql}", tuple(value for _, params in queries for value in params)


async def fetch_models(queryset: QuerySet[M]) -> list[M]:
    """The queryset's model instances, every concrete field loaded and converted as the
    ORM converts it (a JSONField's text parsed, say)."""
    model = queryset.model
    concrete = model._meta.concrete_fields
    fields = [field.attname for field in concrete]
    connection = connections[queryset.db]
    converters = [
        (index, converter, field)
        for index, field in enumerate(concrete)
        for converter in field.get_db_converters(connection)
    ]
    rows = await fetch_rows(*select_sql(queryset.values_list(*fields)))
    models = []
    for row in rows:
        values = list(row)
        for index, convert, field in converters:
            values[index] = convert(values[index], field, connection)
        models.append(model.from_db(queryset.db, fields, values))
    return models


def opened_pools() -> list[AsyncConnectionPool]:
    """This process's pools that have opened (one per event loop: a web worker has one),
    for a thread that reads their figures (common/db/pool_metrics.py)."""
    return [
        opening.result()
        for opening in list(_pools.values())
        if opening.done() and not opening.cancelled() and opening.exception() is None
    ]


async def pool_stats() -> dict[str, int]:
    """psycopg_pool's counters for the running loop's pool (empty before its first use)."""
    opening = _pools.get(asyncio.get_running_loop())
    return (await opening).get_stats() if opening is not None else {}
