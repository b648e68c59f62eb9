"""The live registry backend, chosen in one place by USE_JSON_REGISTRY.

Nothing outside this package reads that setting, nor asks which registry is live:
callers ask `get_backend()` for the live one and its abilities (`staff_may_write`,
`aprobe`, …), or `registry_backends()` for both registries side by side. The backends are
imported when first built, so the JSON one works without the ORM (a writer process).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings

from common.singletons import Singleton
from registry.backends.base import RegistryBackend

DATABASE = "database"
JSON = "json"


def registry_backends(json_path: Path | None = None) -> dict[str, RegistryBackend]:
    """Both registries, the database first, whichever is live: for comparing them. The
    JSON one is at `json_path`, by default REGISTRY_JSON_PATH."""
    from registry.backends.database import DatabaseRegistry
    from registry.backends.json_registry import JsonFileRegistry

    return {
        DATABASE: DatabaseRegistry(),
        JSON: JsonFileRegistry(json_path or settings.REGISTRY_JSON_PATH),
    }


def _build() -> RegistryBackend:
    return registry_backends()[JSON if settings.USE_JSON_REGISTRY else DATABASE]


_backend = Singleton(_build, settings={"USE_JSON_REGISTRY", "REGISTRY_JSON_PATH"})
get_backend = _backend.get
reset_backend = _backend.reset
