"""How far a long step has got, for a progress bar: `progress(phase, done, total)`."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.core.management.base import OutputWrapper

Progress = Callable[[str, int, int], None]
# Long loops report once per this many items.
EVERY = 2000


def report(progress: Progress | None, phase: str, done: int, total: int) -> None:
    if progress is not None:
        progress(phase, done, total)


class ProgressBar:
    """One line redrawn in place with carriage returns, at most ten times a second."""

    width = 30

    @classmethod
    def on_terminal(cls, stream: OutputWrapper, *, enabled: bool = True) -> ProgressBar | None:
        """A bar drawn on `stream` (a command's stderr) if it is a terminal, else None."""
        return cls(stream) if enabled and stream.isatty() else None

    def __init__(self, stream: OutputWrapper) -> None:
        self.stream = stream
        self.phase = ""
        self.last_draw = 0.0
        self.drawn = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase == self.phase and done < total and now - self.last_draw < 0.1:
            return
        self.phase, self.last_draw = phase, now
        fraction = done / total if total else 1.0
        filled = round(self.width * fraction)
        line = (
            f"{phase:<10} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{done:>9,}/{total:,} {fraction:4.0%}"
        )
        self._write("\r" + line.ljust(self.drawn))
        self.drawn = len(line)

    def clear(self) -> None:
        if self.drawn:
            self._write("\r" + " " * self.drawn + "\r")
            self.drawn = 0

    def _write(self, text: str) -> None:
        self.stream.write(text, style_func=lambda text: text, ending="")
        self.stream.flush()
