"""The gunicorn worker: uvicorn's, configured for this service (gunicorn.conf.py).
uvicorn-worker takes uvicorn's options only from a subclass's CONFIG_KWARGS.

- No ASGI lifespan. The limit it works around: Django 5.2.19's ASGIHandler refuses any
  scope but HTTP, so with uvicorn 0.54's lifespan "auto" every worker logged "ASGI
  'lifespan' protocol appears unsupported". What would retire it: ASGI lifespan in
  Django (ticket #31508, https://code.djangoproject.com/ticket/31508; its PR #13636 was
  closed, not planned). No setting: there is nothing to turn on.
- Proxy headers (X-Forwarded-Proto and X-Forwarded-For) are read only with
  TRUST_X_FORWARDED_PROTO=true, and then only from the addresses in TRUSTED_PROXIES
  (gunicorn's forwarded_allow_ips, set in gunicorn.conf.py). uvicorn's own default
  trusted 127.0.0.1 whatever the setting said. One setting now decides for the server
  and for Django, which sees the scheme the server settled on (`request.is_secure()`).
"""

from __future__ import annotations

from typing import Any

from uvicorn_worker import UvicornWorker  # type: ignore[import-untyped]

from config.env import env_bool


class ServiceWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {
        **UvicornWorker.CONFIG_KWARGS,
        "lifespan": "off",
        "proxy_headers": env_bool("TRUST_X_FORWARDED_PROTO", False),
    }
