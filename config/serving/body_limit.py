"""Refuse oversized request bodies before Django reads them.

The limit it works around: Django's ASGIHandler reads the whole body into a temporary
file before any middleware or view runs, and checks no size on the way (still so in
Django 5.2.19), and uvicorn 0.54 has no body limit either; so the view's own size check
would still accept, and write to disk, a 10 GB upload. What would retire it: Django
reading the body on demand (ticket #33699, https://code.djangoproject.com/ticket/33699;
its PR #15704 closed unmerged) with an upload handler that stops at the limit. Setting:
MAX_UPLOAD_MB sets the limit; none turns the check off, on purpose (an unbounded body
would be spooled to disk before the view's 413).

This wrapper answers 413 as soon as the Content-Length, or the bytes actually received
on a chunked request, pass the limit.

A body up to twice the limit is read and dropped before the 413 is sent (a "lingering
close", as nginx does): most HTTP clients send the whole body before they read the
response, and a server that closes on them mid-send makes them see a broken pipe instead
of the 413. Bigger bodies, and clients that sent `Expect: 100-continue`, are answered at
once; the drain stops after DRAIN_SECONDS whatever the client does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# Loose on purpose: Django's handler declares narrower scope and message types.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

# Multipart framing (boundaries, part headers, the workspace field) on top of the file.
MULTIPART_ALLOWANCE = 64 * 1024
DRAIN_SECONDS = 5.0
ADMIN_REFUSAL = (
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
    "<title>Upload too large</title></head><body><h1>Upload too large</h1>"
    "<p>{detail}. Go back and choose a smaller file.</p></body></html>"
)


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int, limit_mb: int) -> None:
        self.app = app
        self.max_bytes = max_bytes + MULTIPART_ALLOWANCE
        self.detail = f"Request body over the {limit_mb} MB upload limit (MAX_UPLOAD_MB)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            if declared <= 2 * self.max_bytes and not _expects_continue(scope):
                await _drain(receive, declared)
            await self._refuse(scope, send)
            return

        received = 0
        exceeded = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    # Django treats a disconnect as an aborted request and stops reading.
                    return {"type": "http.disconnect"}
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        await self.app(scope, limited_receive, tracking_send)
        if exceeded and not response_started:
            await _drain(receive, 2 * self.max_bytes - received)
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        """413: JSON for API clients; a page for a person in the admin's add form."""
        if scope.get("path", "").startswith("/admin/"):
            page = ADMIN_REFUSAL.format(detail=self.detail)
            body, content_type = page.encode(), b"text/html; charset=utf-8"
        else:
            body, content_type = orjson.dumps({"detail": self.detail}), b"application/json"
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


async def _drain(receive: Receive, budget: int) -> None:
    """Read and drop what is left of the body, up to `budget` bytes and DRAIN_SECONDS."""

    async def read() -> None:
        left = budget
        while left > 0:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            left -= len(message.get("body", b""))

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), DRAIN_SECONDS)


def _expects_continue(scope: Scope) -> bool:
    return any(
        name == b"expect" and value.lower() == b"100-continue"
        for name, value in scope.get("headers", [])
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
