"""config/serving/sync_threads.py: each request's thread-sensitive sync calls run on one thread
of their own, kept for later requests instead of a new thread per request."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
from typing import Any

from asgiref.sync import sync_to_async

from config.asgi import application
from config.serving.sync_threads import ReusedSyncThreads
from tests.support.processes import child_env


def _scope() -> dict[str, Any]:
    return {"type": "http", "method": "GET", "path": "/"}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    pass


class Recorder:
    """An ASGI app whose requests make thread-sensitive sync calls, as Django's do."""

    def __init__(self, calls: int = 3, sleep: float = 0.0) -> None:
        self.calls = calls
        self.sleep = sleep
        self.threads: list[list[int]] = []

    def _work(self) -> int:
        time.sleep(self.sleep)
        return threading.get_ident()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        seen = []
        self.threads.append(seen)
        for _ in range(self.calls):
            seen.append(await sync_to_async(self._work, thread_sensitive=True)())


def test_a_request_keeps_to_one_thread_and_the_next_request_reuses_it():
    app = Recorder()
    wrapped = ReusedSyncThreads(app)

    async def run() -> None:
        for _ in range(3):
            await wrapped(_scope(), _receive, _send)

    asyncio.run(run())
    first, second, third = app.threads
    assert len(set(first)) == 1
    assert first == second == third
    assert first[0] != threading.get_ident()


def test_concurrent_requests_never_share_a_thread():
    app = Recorder(calls=2, sleep=0.05)
    wrapped = ReusedSyncThreads(app)

    async def run() -> None:
        await asyncio.gather(*(wrapped(_scope(), _receive, _send) for _ in range(4)))

    asyncio.run(run())
    per_request = [set(seen) for seen in app.threads]
    assert all(len(threads) == 1 for threads in per_request)
    assert len(set.union(*per_request)) == 4


def test_a_thread_still_busy_when_its_request_ends_is_not_handed_on():
    release = threading.Event()
    threads: list[int] = []

    def stuck() -> None:
        threads.append(threading.get_ident())
        release.wait(5)

    async def abandons(scope: Any, receive: Any, send: Any) -> None:
        # A client that went away: the view's await is cancelled, its sync call runs on.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sync_to_async(stuck, thread_sensitive=True)(), 0.05)

    later = Recorder(calls=1)

    async def run() -> None:
        wrapped = ReusedSyncThreads(abandons)
        await wrapped(_scope(), _receive, _send)
        wrapped.app = later
        await wrapped(_scope(), _receive, _send)

    try:
        asyncio.run(run())
    finally:
        release.set()
    assert later.threads[0][0] != threads[0]


def test_other_scopes_pass_straight_through():
    app = Recorder(calls=1)
    asyncio.run(ReusedSyncThreads(app)({"type": "lifespan"}, _receive, _send))
    assert len(app.threads) == 1


def test_the_service_is_served_through_it():
    wrapped = application
    while not isinstance(wrapped, ReusedSyncThreads):
        wrapped = wrapped.app
    assert type(wrapped.app).__name__ == "ASGIHandler"


def test_reuse_sync_threads_false_serves_django_s_handler_as_it_is():
    shown = "from config.asgi import application; print(type(application.app).__name__)"
    for value, inner in (("true", "ReusedSyncThreads"), ("false", "ASGIHandler")):
        env = child_env(REUSE_SYNC_THREADS=value, DJANGO_SETTINGS_MODULE="config.settings")
        result = subprocess.run(
            [sys.executable, "-c", shown], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.stdout.split() == [inner], result.stderr
