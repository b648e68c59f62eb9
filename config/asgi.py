"""The ASGI application gunicorn serves: Django's handler inside the server plumbing of
config/serving/ (the body limit outermost, then the reused request threads)."""

from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.asgi import get_asgi_application

from config.serving.body_limit import BodySizeLimit
from config.serving.sync_threads import ReusedSyncThreads

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

django_application: Any = get_asgi_application()  # sets Django up
application = BodySizeLimit(
    ReusedSyncThreads(django_application) if settings.REUSE_SYNC_THREADS else django_application,
    max_bytes=settings.MAX_UPLOAD_BYTES,
    limit_mb=settings.MAX_UPLOAD_MB,
)

if settings.WARM_UP:  # each web worker, before it takes traffic (/health says so)
    from ingest import warmup

    warmup.start()
