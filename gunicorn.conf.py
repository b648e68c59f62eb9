"""gunicorn settings: `gunicorn config.asgi:application -c gunicorn.conf.py`.

Async Django under uvicorn workers. `preload_app` stays off: each worker imports the app
after the fork and opens its own database pool, so no two workers share a connection.
"""

from __future__ import annotations

from config.env import env_int, env_str

bind = env_str("BIND", "127.0.0.1:8000")
workers = env_int("WEB_CONCURRENCY", 2, minimum=1)
worker_class = "uvicorn_worker.UvicornWorker"
preload_app = False
timeout = env_int("GUNICORN_TIMEOUT", 120, minimum=1)
graceful_timeout = 30
accesslog = "-"
