from __future__ import annotations

from django.apps import AppConfig


class IngestConfig(AppConfig):
    name = "ingest"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from ingest.fetching import FetchPolicy

        # A malformed INGEST_TRUSTED_NETWORKS stops start-up, not the first URL ingest.
        FetchPolicy.from_settings()
