"""One log line per request, and a request id on every log line of that request.

A feature, not a workaround: no framework here gives a request an id, and gunicorn's
access log is off (gunicorn.conf.py) because this line replaces it; nothing upstream
would retire it. LOG_FORMAT picks text or JSON lines; LOG_LEVEL=WARNING silences it.

`RequestLog` (first in MIDDLEWARE) gives each request an id, returns it in the
`X-Request-ID` response header and, when the response is ready, logs one line on the
`docservice.request` logger: method, path, status, duration and the id. A client's own
`X-Request-ID` is kept when it is a short token of letters, digits, `-`, `_` and `.`
(a proxy's id then runs through both logs). The query string is not logged, and no
header is: API keys, passwords, session cookies and database URLs never reach the log.

`RequestIdFilter` (on the console handler) puts the id on every record logged while the
request runs, the ORM's threads included (asgiref copies the context to them), so an
error line names the request it came from. `JsonLines` writes a record as one JSON object
per line (LOG_FORMAT=json).
"""

from __future__ import annotations

import contextvars
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import orjson
from asgiref.sync import markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

logger = logging.getLogger("docservice.request")

_request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]


class RequestLog:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        offered = request.headers.get("X-Request-ID", "")
        request_id = offered if _CLIENT_ID.match(offered) else uuid.uuid4().hex
        request.request_id = request_id  # type: ignore[attr-defined]
        token = _request_id.set(request_id)
        started = time.perf_counter()
        try:
            response = await self.get_response(request)
            response["X-Request-ID"] = request_id
            milliseconds = (time.perf_counter() - started) * 1000
            logger.info(
                "%s %s %s %.1fms",
                request.method,
                request.path,
                response.status_code,
                milliseconds,
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(milliseconds, 1),
                },
            )
            return response
        finally:
            _request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record: the running request's, or `-`."""

    def filter(self, record: logging.LogRecord) -> bool:
        # django.request logs a 4xx or 5xx after the middleware has returned; its records
        # carry the request itself.
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", None) or _request_id.get()
        return True


_REQUEST_FIELDS = ("method", "path", "status", "duration_ms")


class JsonLines(logging.Formatter):
    """A record as one JSON object: time, level, logger, message, request_id, the request
    line's fields when it is one, and the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for name in _REQUEST_FIELDS:
            if hasattr(record, name):
                entry[name] = getattr(record, name)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()
