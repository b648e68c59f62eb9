"""gunicorn settings: `gunicorn config.asgi:application -c gunicorn.conf.py`.

Async Django under uvicorn workers. `preload_app` stays off: each worker imports the app
after the fork and opens its own database pool, so no two workers share a connection.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from typing import Any

from config.env import env_int, env_str, read_env_file

read_env_file()  # as Django's settings do, before the settings below are read from it
bind = env_str("BIND", "127.0.0.1:8000")
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
worker_class = "config.serving.uvicorn_worker.ServiceWorker"
# Who may set X-Forwarded-Proto/-For, when TRUST_X_FORWARDED_PROTO=true
# (config/serving/uvicorn_worker.py).
forwarded_allow_ips = env_str("TRUSTED_PROXIES", "127.0.0.1,::1")
# gunicorn's control socket defaults to one path per user (~/.gunicorn/gunicorn.ctl): a
# second instance on the host took it over and removed it when it stopped. One per
# bind address instead, which no two running instances share.
control_socket = os.path.join(
    os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(),
    f"docservice-{hashlib.sha256(bind.encode()).hexdigest()[:12]}.ctl",
)
preload_app = False
timeout = env_int("GUNICORN_TIMEOUT", 120, minimum=1)
graceful_timeout = 30
# The service logs each request itself, with its id (config/serving/request_log.py).
accesslog = None


def on_starting(server: object) -> None:
    """Read the settings once in the master before any worker boots: a configuration
    error is then one line, as from manage.py, not every worker's traceback ending in
    "Worker failed to boot"."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    try:
        settings.INSTALLED_APPS  # noqa: B018 (reading one setting loads them all)
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"Configuration error: {exc}\n")
        sys.stderr.flush()
        os._exit(1)  # before gunicorn's own handlers print the traceback again
    if settings.METRICS_ENABLED:
        # A previous run's values go (counters start again, as Prometheus expects after a
        # restart); a db_worker already running keeps its files (common/metrics.py).
        # Imported now: the settings have set PROMETHEUS_MULTIPROC_DIR, which
        # prometheus-client reads when first imported, and the workers forked from here
        # inherit both.
        from common.metrics import remove_dead_files

        remove_dead_files(settings.METRICS_DIR)


def child_exit(server: object, worker: Any) -> None:
    """A worker has ended: its live gauges (the database's state, its pools) go with it;
    its counters stay counted."""
    from django.conf import settings

    if settings.METRICS_ENABLED:
        from common.metrics import mark_dead

        mark_dead(worker.pid)
