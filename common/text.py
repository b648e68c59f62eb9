"""Words for people: what reports and messages say about counts."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """`1 chunk`, `2 chunks`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
