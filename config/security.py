"""Who is asking, for django-axes' admin login throttling (settings: Admin logins)."""

from __future__ import annotations

from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The address the request came from, as the server settled it: a header's only when
    the request came through a trusted proxy (config/serving/uvicorn_worker.py); never a
    header a client can set itself."""
    return str(request.META.get("REMOTE_ADDR") or "")
