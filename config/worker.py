"""The gunicorn worker: uvicorn's, configured for this service (gunicorn.conf.py).

- No ASGI lifespan: Django has no startup or shutdown hooks to run, and with lifespan on
  "auto" every worker logged "ASGI 'lifespan' protocol appears unsupported".
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
