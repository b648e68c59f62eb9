"""Turn the items of a legacy registry file into one valid record per file_id, and say
what was left out and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from registry.exceptions import InvalidRecord
from registry.legacy import record_from_legacy
from registry.progress import EVERY, Progress, report
from registry.records import DocumentRecord


@dataclass(frozen=True, slots=True)
class Rejection:
    """An item of a legacy file left out: its position, its fileId if it had one, why."""

    position: int
    file_id: str | None
    reason: str
    item: str = "record"

    def __str__(self) -> str:
        where = f"{self.item} {self.position}"
        if self.file_id:
            where += f" (fileId {self.file_id!r})"
        return f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class Duplicate:
    file_id: str
    positions: tuple[int, ...]
    kept: int

    def __str__(self) -> str:
        listed = ", ".join(str(p) for p in self.positions)
        return (
            f"fileId {self.file_id!r} appears {len(self.positions)} times "
            f"(records {listed}): kept record {self.kept}, the most recently updated"
        )


@dataclass(frozen=True, slots=True)
class NormalisedRegistry:
    """The file's valid records, one per file_id, and what was left out and why."""

    records: list[DocumentRecord]
    rejected: list[Rejection]
    duplicates: list[Duplicate]
    total: int


def normalise_records(
    items: Sequence[Any], *, progress: Progress | None = None
) -> NormalisedRegistry:
    """Every item normalised or rejected with its reason; duplicates resolved.

    Of several records with one file_id the most recently updated wins; on a tie, the
    later one in the file, as the legacy service would have kept it.
    """
    winners: dict[str, tuple[int, DocumentRecord]] = {}
    repeated: dict[str, list[int]] = {}
    rejected: list[Rejection] = []
    total = len(items)
    for position, item in enumerate(items):
        if position % EVERY == 0:
            report(progress, "checking", position, total)
        try:
            record = record_from_legacy(item)
        except InvalidRecord as exc:
            rejected.append(Rejection(position, raw_file_id(item), str(exc)))
            continue
        previous = winners.setdefault(record.file_id, (position, record))
        if previous[1] is record:
            continue
        repeated.setdefault(record.file_id, [previous[0]]).append(position)
        if record.updated_at >= previous[1].updated_at:
            winners[record.file_id] = (position, record)
    report(progress, "checking", total, total)
    duplicates = []
    for file_id, positions in repeated.items():
        positions.sort()
        duplicates.append(Duplicate(file_id, tuple(positions), winners[file_id][0]))
    same_content = _same_content(winners)
    rejected.extend(same_content)
    rejected.sort(key=lambda rejection: rejection.position)
    refused = {rejection.file_id for rejection in same_content}
    return NormalisedRegistry(
        records=[record for _, record in winners.values() if record.file_id not in refused],
        rejected=rejected,
        duplicates=duplicates,
        total=total,
    )


def _same_content(winners: dict[str, tuple[int, DocumentRecord]]) -> list[Rejection]:
    """Documents whose content another one in their workspace already holds.

    The table stores each content (sha256) once per workspace. The oldest document keeps
    it, the one the service's own duplicate check would have answered with.
    """
    by_content: dict[tuple[str, str], list[tuple[int, DocumentRecord]]] = {}
    for position, record in winners.values():
        if record.sha256:
            by_content.setdefault((record.workspace, record.sha256), []).append((position, record))
    rejected = []
    for holders in by_content.values():
        if len(holders) == 1:
            continue
        holders.sort(key=lambda held: (held[1].created_at, held[1].file_id))
        first_position, first = holders[0]
        rejected += [
            Rejection(
                position,
                record.file_id,
                f"same content (sha256 {record.sha256[:12]}…) as record {first_position} "
                f"(fileId {first.file_id!r}) in workspace {record.workspace!r}; "
                "a workspace holds each content once",
            )
            for position, record in holders[1:]
        ]
    return rejected


def raw_file_id(item: Any) -> str | None:
    """The item's fileId as written, to name a rejected record."""
    if not isinstance(item, dict):
        return None
    value = item.get("fileId")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None
