from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django.urls import URLPattern, URLResolver, path
from django.views.generic import RedirectView

from config import metrics
from config.api import api

urlpatterns: list[URLPattern | URLResolver] = [
    # The admin's "View site" link, and anyone trying the bare address: the API's docs.
    path("", RedirectView.as_view(url="/docs", permanent=False)),
    path("admin/", admin.site.urls),
    path("", api.urls),
]
if settings.METRICS_ENABLED:
    # Prometheus's, not the API's: outside the NinjaAPI, so not in the OpenAPI schema.
    urlpatterns.insert(0, path("metrics", metrics.metrics))
