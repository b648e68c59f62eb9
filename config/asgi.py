from __future__ import annotations

import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from config.body_limit import BodySizeLimit
from config.sync_threads import ReusedSyncThreads

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = BodySizeLimit(
    ReusedSyncThreads(get_asgi_application()),  # sets Django up
    max_bytes=settings.MAX_UPLOAD_BYTES,
    limit_mb=settings.MAX_UPLOAD_MB,
)

if settings.WARM_UP:  # each web worker, before it takes traffic (/health says so)
    from ingest import warmup

    warmup.start()
