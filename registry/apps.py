from __future__ import annotations

import logging
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core import checks

logger = logging.getLogger("registry")

KEYS_OFF = (
    "API_KEYS_REQUIRED=false: the API answers every request without an API key. Keep this "
    "for the cutover window of the old service's clients only, then remove the setting."
)


class RegistryConfig(AppConfig):
    name = "registry"
    verbose_name = "Document registry"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        checks.register(api_keys_required_check, checks.Tags.security, deploy=True)
        if not settings.API_KEYS_REQUIRED:
            logger.warning("!!! %s", KEYS_OFF)


def api_keys_required_check(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    if settings.API_KEYS_REQUIRED:
        return []
    return [
        checks.Warning(
            KEYS_OFF,
            hint="Create keys with `manage.py create_api_key NAME` and give them to the clients.",
            id="registry.W001",
        )
    ]
