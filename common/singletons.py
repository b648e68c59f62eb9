"""One pattern for process-wide objects: `get_x()` builds on first use, `reset_x()` drops.

Each singleton names the settings it is built from. When one of them changes at run time
(`override_settings`, pytest-django's `settings` fixture), Django sends `setting_changed`
and every singleton built from that setting is dropped, so the next `get_x()` builds it
again from the new value. Production never changes settings at run time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, Generic, TypeVar

from django.core.signals import setting_changed

T = TypeVar("T")

_instances: list[Singleton[Any]] = []


class Singleton(Generic[T]):
    def __init__(self, build: Callable[[], T], *, settings: Iterable[str] = ()) -> None:
        self._build = build
        self.settings = frozenset(settings)
        self._value: T | None = None
        self._lock = threading.Lock()
        _instances.append(self)

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    def reset(self) -> None:
        with self._lock:
            self._value = None


def reset_all() -> None:
    """Drop every singleton (tests call it between tests)."""
    for instance in _instances:
        instance.reset()


def _on_setting_changed(*, setting: str, **kwargs: object) -> None:
    for instance in _instances:
        if setting in instance.settings:
            instance.reset()


setting_changed.connect(_on_setting_changed)
