"""Health probes that give up at a timeout: does the database answer, does a check pass.

The limit it works around: a probe through `sync_to_async` would run on the request's
own thread, and asgiref cannot stop a sync call: at the timeout the view could return,
but Django's `response.close()` then queues behind the hung probe on that one thread
(Django 5.2.19, asgiref 3.13). What would retire it: async database cursors in Django
(ticket #35629, https://code.djangoproject.com/ticket/35629). Setting: HEALTH_TIMEOUT is
the deadline; none turns it off, and none should: it is what /health promises.

A probe runs in a thread of its own, so a hung database never holds a request's thread,
and `asyncio.wait()` returns at the timeout without waiting for the probe to give up.
Where the native async pool serves the request (common/db/async_reads.py), the database is
probed on it instead: the event loop waits on the database itself, and cancelling at
the timeout gives the connection back to the pool (which drops it if it is mid-query).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import DatabaseError, connection

from common.db import async_reads
from common.singletons import Singleton

logger = logging.getLogger(__name__)

_threads = Singleton(lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="health"))


async def in_thread(check: Callable[[], bool], name: str, timeout: float) -> bool:
    """`check()` in a probe thread; False if it does not return within `timeout`.
    The thread's database connection is closed afterwards."""

    def run() -> bool:
        try:
            return check()
        finally:
            connection.close()

    future = asyncio.wrap_future(_threads.get().submit(run))
    done, _ = await asyncio.wait({future}, timeout=timeout)
    if not done:
        logger.warning("health: %s did not answer within %.1fs", name, timeout)
        return False
    return future.result()


async def within(probe: Awaitable[object], name: str, timeout: float) -> bool:
    """Whether `probe` (a native database read) finishes within `timeout`."""
    try:
        await asyncio.wait_for(probe, timeout)
        return True
    except TimeoutError:
        logger.warning("health: %s did not answer within %.1fs", name, timeout)
    except DatabaseError as exc:
        logger.warning("health: %s unavailable: %s", name, exc)
    return False


def _select_one() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except DatabaseError as exc:
        logger.warning("health: database unavailable: %s", exc)
        return False


async def database_answers(timeout: float) -> bool:
    """Whether the database answers `SELECT 1` within `timeout`."""
    if async_reads.native_reads():
        return await within(async_reads.fetch_rows("SELECT 1"), "database", timeout)
    return await in_thread(_select_one, "the database", timeout)
