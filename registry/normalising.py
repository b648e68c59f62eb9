"""Turn the items of a legacy registry file into one valid record per file_id, and say
what was left out and why."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from common.progress import EVERY, Progress, report
from registry.exceptions import InvalidRecord
from registry.legacy import record_from_legacy
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
    # Valid records handed to `take` as they were read (not in `records`).
    taken: list[DocumentRecord] = field(default_factory=list)


class EarlyWriter(Protocol):
    """Where `normalise_records` sends records that are final before the file is done."""

    def write(self, record: DocumentRecord) -> bool:
        """Take this record now; False leaves it to the rules (an id already stored)."""

    def unwrite(self, record: DocumentRecord) -> None:
        """Give back a record taken earlier: a later one shares its id or content."""


def normalise_records(
    items: Sequence[Any], *, progress: Progress | None = None, early: EarlyWriter | None = None
) -> NormalisedRegistry:
    """Every item normalised or rejected with its reason; duplicates resolved.

    Of several records with one file_id the most recently updated wins; on a tie, the
    later one in the file, as the legacy service would have kept it.

    With `early`, each valid record whose fileId no earlier valid record has goes to
    `early.write()` as soon as it is read, and is listed in `taken` instead of
    `records`. If a later record turns out to share its fileId, it goes back
    (`early.unwrite()`) and both follow the rules, as if it had never been taken: the
    records that stay taken are the ones the rules would have kept unchanged.

    Records may share their content (a copy made under a fileId a client chose): each
    is imported.
    """
    winners: dict[str, tuple[int, DocumentRecord]] = {}
    repeated: dict[str, list[int]] = {}
    rejected: list[Rejection] = []
    taken: dict[str, tuple[int, DocumentRecord]] = {}
    total = len(items)
    for position, item in enumerate(items):
        if position % EVERY == 0:
            report(progress, "checking", position, total)
        try:
            record = record_from_legacy(item)
        except InvalidRecord as exc:
            rejected.append(Rejection(position, raw_file_id(item), str(exc)))
            continue
        if early is not None:
            first = record.file_id not in winners and record.file_id not in taken
            if first and early.write(record):
                taken[record.file_id] = (position, record)
                continue
            if record.file_id in taken:
                back = taken.pop(record.file_id)
                early.unwrite(back[1])
                winners[record.file_id] = back
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
    rejected.sort(key=lambda rejection: rejection.position)
    return NormalisedRegistry(
        records=[record for _, record in winners.values()],
        rejected=rejected,
        duplicates=duplicates,
        total=total,
        taken=[record for _, record in taken.values()],
    )


def raw_file_id(item: Any) -> str | None:
    """The item's fileId as written, to name a rejected record."""
    if not isinstance(item, dict):
        return None
    value = item.get("fileId")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None
