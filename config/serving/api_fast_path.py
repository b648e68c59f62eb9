"""The API's requests skip the site's middleware, which only the admin needs.

The limit it works around: under ASGI every `MiddlewareMixin` hook (sessions, CSRF, auth,
messages) runs through `sync_to_async`, a hop to the request's thread and back per hook
(Django 5.2.19; so did WhiteNoise, since replaced by ServeStatic): profiled under wrk,
that was half of a worker's time on an API request, which authenticates by key and needs
none of it. What would retire it: Django switching once per middleware chain (ticket
#37177, https://code.djangoproject.com/ticket/37177, PR #21523 open; re-measure then),
or per-path middleware. It fills a BaseHandler's private `_view_middleware`,
`_template_response_middleware`, `_exception_middleware` and `_middleware_chain`: check
them on each Django upgrade. Setting: API_FAST_PATH=false leaves it out of MIDDLEWARE.

ApiFastPath comes right after the request log in MIDDLEWARE. A request for the admin or
the static files goes on down the whole list, as before. Any other request is checked
against ALLOWED_HOSTS (as CommonMiddleware does; not /health and /metrics, which load
balancers and Prometheus reach by address), gets SecurityMiddleware's redirect and headers and
XFrameOptionsMiddleware's header (their hooks touch no database and run on the event
loop), and goes straight to Django's URL resolver and view, with Django's own exception
handling. MIDDLEWARE keeps every entry, so `check --deploy` and the admin's checks see
them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.conf import settings
from django.core.handlers.base import BaseHandler
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponseBase
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.security import SecurityMiddleware

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
# Reached by an instance's address rather than a host name: no host check.
BY_ADDRESS = frozenset({"/health", "/metrics"})


def _views_only() -> GetResponse:
    """Django's request handling without middleware: resolve the URL, call the view."""
    handler: Any = BaseHandler()  # its private lists: what load_middleware() would fill
    handler._view_middleware = []
    handler._template_response_middleware = []
    handler._exception_middleware = []
    handler._middleware_chain = handler._get_response_async
    views: Any = convert_exception_to_response(handler._get_response_async)
    return views  # async, as _get_response_async is


class ApiFastPath:
    sync_capable = False
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.views = _views_only()
        # Only their process_request/process_response hooks are called.
        self.security: Any = SecurityMiddleware(get_response)
        self.frame_options: Any = XFrameOptionsMiddleware(get_response)
        self.site_prefixes = ("/admin/", "/" + settings.STATIC_URL.strip("/") + "/")
        markcoroutinefunction(self)

    async def __call__(self, request: HttpRequest) -> HttpResponseBase:
        if request.path.startswith(self.site_prefixes) or request.path == "/admin":
            return await self.get_response(request)
        if request.path not in BY_ADDRESS:
            # DisallowedHost (400) unless in ALLOWED_HOSTS. Not for /health and /metrics:
            # a load balancer and Prometheus reach each instance by its address, and the
            # answers name no host.
            request.get_host()
        response: HttpResponseBase | None = self.security.process_request(request)
        if response is None:
            response = await self.views(request)
        response = self.security.process_response(request, response)
        response = self.frame_options.process_response(request, response)
        return response
