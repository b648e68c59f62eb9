"""Each request's sync work on a thread kept from an earlier request, not a new one.

The limit it works around: Django's ASGIHandler enters a new asgiref
ThreadSensitiveContext for every request (Django 5.2.19), and asgiref 3.13 starts a
thread for it at the request's first sync call and, at its end, a second thread to join
the first: a pair per request whatever the view does, since Django's own request_started
receivers (close_old_connections) and the `response.close()` every request ends with run
there. In py-spy under bench/bench_http.py, starting and joining those threads was about
a fifth of a worker's time on a simple read. What would retire it: asgiref keeping its
executors (https://github.com/django/asgiref/pull/306, open since 2021), or Django
handing each request's context a reused executor (no ticket yet). Setting:
REUSE_SYNC_THREADS=false leaves it out (config/asgi.py).

asgiref lets the caller supply the context's executor
(`ThreadSensitiveContext(executor=…)`, which must run one call at a time on one thread),
and Django's own context then defers to the outer one. This wrapper gives each request
an idle single-thread executor from a free list and takes it back afterwards, as a
threaded WSGI server reuses its threads. Per request nothing changes: its sync calls
still share one thread that no other request uses at the same time, and
request_finished still closes its database connection on that thread. An executor
still running a call when its request ends (a client that went away mid-call) is not
reused: it is shut down once the call returns.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _RequestThread(ThreadPoolExecutor):
    """One thread, knowing whether a call is still queued or running on it."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="request")
        self._unfinished = 0
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._lock:
            self._unfinished += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._finished)
        return future

    def _finished(self, future: Future[Any]) -> None:
        with self._lock:
            self._unfinished -= 1

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._unfinished == 0


class ReusedSyncThreads:
    """ASGI wrapper: each HTTP request's thread-sensitive sync calls run on a reused
    thread (see the module docstring). Keeps at most `keep` idle threads."""

    def __init__(self, app: ASGIApp, *, keep: int = 64) -> None:
        self.app = app
        self.keep = keep
        self._idle: list[_RequestThread] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        executor = self._idle.pop() if self._idle else _RequestThread()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.app(scope, receive, send)
        finally:
            if executor.idle and len(self._idle) < self.keep:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)
