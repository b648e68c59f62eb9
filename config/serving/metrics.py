"""Each request timed into docservice_http_request_duration_seconds, by route, method and
status (common/metrics.py; docs/metrics.md).

A feature, not a workaround: first in MIDDLEWARE when METRICS_ENABLED (config/settings.py),
so it times everything the service does for a request, until the response is ready (a
streamed body, an answer's events or a file, is not waited for). A response that never
reaches Django's middleware (the body limit's 413, config/serving/body_limit.py) is not
counted.

The route is the URL pattern Django resolved (`/documents/{fileId}`), never the path:
a label per document id would grow without end. A request no pattern answered (a 404 of an
unknown path, a static file, a host refused before resolving) is `unmatched` (static
files `/static/{path}`), and a method outside HTTP's usual ones `other`.

Kept cheap for the hot reads (issue 35): the histogram's labelled child is looked up once
per route, method and status and kept; a request costs two clock reads, a dictionary look-up
and the histogram's write (bench/README.md, "metrics cost").
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase

from common.db import pool_metrics
from common.metrics import HTTP_REQUEST_SECONDS, publish_info

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"
# Django's converters (`<fileId>`, `<path:object_id>`) written as OpenAPI writes them.
_PARAMETER = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")


def route_label(route: str) -> str:
    """`documents/<fileId>` (a resolved pattern) as `/documents/{fileId}`."""
    return "/" + _PARAMETER.sub(r"{\1}", route)


class RequestMetrics:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.static_prefix = "/" + settings.STATIC_URL.strip("/") + "/"
        # (label, method, status) → the histogram's child: a few dozen at most.
        self.children: dict[tuple[str, str, int], Any] = {}
        self.labels: dict[str, str] = {}  # a resolved pattern → its label
        markcoroutinefunction(self)
        # The process's own figures: what it serves with, its pools' waits.
        publish_info()
        pool_metrics.start_sampling()

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        started = time.perf_counter()
        response = await self.get_response(request)
        elapsed = time.perf_counter() - started
        match = request.resolver_match
        if match is not None:
            route = self.labels.get(match.route) or self._label(match.route)
        elif request.path.startswith(self.static_prefix):
            route = self.static_prefix + "{path}"
        else:
            route = UNMATCHED
        method = request.method if request.method in METHODS else "other"
        key = (route, method, response.status_code)
        child = self.children.get(key)
        if child is None:
            child = self.children[key] = HTTP_REQUEST_SECONDS.labels(
                route=route, method=method, status=str(response.status_code)
            )
        child.observe(elapsed)
        return response

    def _label(self, route: str) -> str:
        label = self.labels[route] = route_label(route)
        return label
