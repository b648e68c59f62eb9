"""The live registry backend, chosen in one place by USE_JSON_REGISTRY.

Nothing outside this package knows which backend is live: callers ask `get_backend()`.
"""

from __future__ import annotations

import threading
from typing import Any

from django.conf import settings

from registry.backends.base import RegistryBackend

_backend: RegistryBackend | None = None
_lock = threading.Lock()
_SETTINGS = {"USE_JSON_REGISTRY", "REGISTRY_JSON_PATH"}


def get_backend() -> RegistryBackend:
    global _backend
    if _backend is None:
        with _lock:
            if _backend is None:
                _backend = _build()
    return _backend


def reset_backend() -> None:
    global _backend
    with _lock:
        _backend = None


def reset_backend_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting in _SETTINGS:
        reset_backend()


def _build() -> RegistryBackend:
    if settings.USE_JSON_REGISTRY:
        from registry.backends.json_file import JsonFileRegistry

        return JsonFileRegistry(settings.REGISTRY_JSON_PATH)
    from registry.backends.db import DatabaseRegistry

    return DatabaseRegistry()
