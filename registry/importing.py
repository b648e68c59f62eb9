"""Import a legacy registry file into the `documents` table: read, normalise, compare, write.

A dry run does every step but the last. Comparing and writing run in one transaction, so
a failure part-way leaves the table as it was before the run. The target is always the
database, whichever registry is live.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from django.db import connection, transaction
from psycopg import sql

from registry.exceptions import InvalidRecord, InvalidRegistryFile
from registry.legacy import parse_legacy_file, record_from_legacy
from registry.models import Document
from registry.records import DocumentRecord

# Every column of a document but the surrogate id, in DocumentRecord's field order: the
# shape compared, COPYed and written.
COLUMNS: tuple[str, ...] = tuple(field.name for field in dataclasses.fields(DocumentRecord))
UPDATED_COLUMNS = tuple(name for name in COLUMNS if name != "file_id")

# (phase, done, total): how far a long step has got, for a progress bar.
Progress = Callable[[str, int, int], None]
_PROGRESS_EVERY = 2000

Row = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Rejection:
    position: int
    file_id: str | None
    reason: str

    def __str__(self) -> str:
        where = f"record {self.position}"
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


@dataclass(frozen=True, slots=True)
class Counts:
    created: int
    updated: int
    unchanged: int


@dataclass(frozen=True, slots=True)
class ImportReport:
    path: Path
    total: int
    created: int
    updated: int
    unchanged: int
    rejected: list[Rejection]
    duplicates: list[Duplicate]
    written: bool


class MissingTable(Exception):
    """The database has no `documents` table yet: migrate has not run."""


def require_documents_table() -> None:
    if Document._meta.db_table not in connection.introspection.table_names():
        name = connection.settings_dict["NAME"]
        raise MissingTable(
            f"the database {name} has no {Document._meta.db_table} table: "
            "run `python manage.py migrate` first"
        )


def read_registry_file(path: Path) -> list[Any]:
    """The JSON array in `path`, or InvalidRegistryFile naming the file and the reason."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InvalidRegistryFile(f"registry file {path} does not exist") from None
    except IsADirectoryError:
        raise InvalidRegistryFile(f"registry file {path} is a directory") from None
    except OSError as exc:
        raise InvalidRegistryFile(
            f"registry file {path} cannot be read: {exc.strerror or exc}"
        ) from None
    try:
        items = parse_legacy_file(data)
    except InvalidRegistryFile as exc:
        raise InvalidRegistryFile(f"registry file {path} {exc}") from None
    if items and not any(isinstance(item, dict) for item in items):
        kinds = sorted({type(item).__name__ for item in items})
        raise InvalidRegistryFile(
            f"registry file {path} holds a JSON array of {'/'.join(kinds)} values, "
            "expected an array of document objects"
        )
    return items


def normalise_records(
    items: Sequence[Any], *, progress: Progress | None = None
) -> NormalisedRegistry:
    """Every item normalised or rejected with its reason; duplicates resolved.

    Of several records with one file_id the most recently updated wins; on a tie, the
    later one in the file, as the legacy service would have kept it.
    """
    size_limit, chunks_limit = _column_limits()
    winners: dict[str, tuple[int, DocumentRecord]] = {}
    repeated: dict[str, list[int]] = {}
    rejected: list[Rejection] = []
    total = len(items)
    for position, item in enumerate(items):
        if position % _PROGRESS_EVERY == 0:
            _report(progress, "checking", position, total)
        try:
            record = record_from_legacy(item)
            if record.size_bytes > size_limit:
                raise InvalidRecord(
                    f"sizeBytes {record.size_bytes} is larger than the database holds "
                    f"({size_limit})"
                )
            if record.num_chunks > chunks_limit:
                raise InvalidRecord(
                    f"numChunks {record.num_chunks} is larger than the database holds "
                    f"({chunks_limit})"
                )
            if record.created_at.tzinfo is not UTC or record.updated_at.tzinfo is not UTC:
                record = _in_utc(record)
        except InvalidRecord as exc:
            rejected.append(Rejection(position, _raw_file_id(item), str(exc)))
            continue
        previous = winners.setdefault(record.file_id, (position, record))
        if previous[1] is record:
            continue
        repeated.setdefault(record.file_id, [previous[0]]).append(position)
        if record.updated_at >= previous[1].updated_at:
            winners[record.file_id] = (position, record)
    _report(progress, "checking", total, total)
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


def import_registry(
    *,
    path: Path,
    dry_run: bool = False,
    strict: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Upsert the legacy registry at `path` into the `documents` table by file_id.

    Raises InvalidRegistryFile when the file is not a JSON array of objects. Invalid
    records are rejected and reported; with `strict`, any rejection means nothing is
    written. A dry run reports the same counts and writes nothing. Unchanged means every
    column equal; unchanged rows are not written at all.
    """
    normalised = normalise_records(read_registry_file(path), progress=progress)
    write = not dry_run and not (strict and normalised.rejected)
    upsert = upsert_with_copy if connection.vendor == "postgresql" else upsert_with_orm
    with transaction.atomic():
        counts = upsert(normalised.records, write=write, progress=progress)
    return ImportReport(
        path=path,
        total=normalised.total,
        created=counts.created,
        updated=counts.updated,
        unchanged=counts.unchanged,
        rejected=normalised.rejected,
        duplicates=normalised.duplicates,
        written=write,
    )


def upsert_with_orm(
    records: Sequence[DocumentRecord], *, write: bool, progress: Progress | None = None
) -> Counts:
    """Compare with the rows for these ids, read in batches, then bulk-upsert the new and
    changed ones. Call inside a transaction."""
    to_write: list[DocumentRecord] = []
    created = unchanged = 0
    total = len(records)
    batch_size = min((connection.features.max_query_params or 10_000) - 1, 10_000)
    for start in range(0, total, batch_size):
        _report(progress, "comparing", start, total)
        batch = records[start : start + batch_size]
        existing: dict[str, Row] = {
            row[0]: row
            for row in Document.objects.filter(file_id__in=[r.file_id for r in batch])
            .order_by()
            .values_list(*COLUMNS)
        }
        for record in batch:
            current = existing.get(record.file_id)
            if current is None:
                created += 1
                to_write.append(record)
            elif current == _row(record):
                unchanged += 1
            else:
                to_write.append(record)
    _report(progress, "comparing", total, total)
    if write:
        for start in range(0, len(to_write), batch_size):
            _report(progress, "writing", start, len(to_write))
            Document.objects.bulk_create(
                [
                    Document(file_id=record.file_id, **Document.fields_from_record(record))
                    for record in to_write[start : start + batch_size]
                ],
                update_conflicts=True,
                unique_fields=["file_id"],
                update_fields=list(UPDATED_COLUMNS),
            )
        _report(progress, "writing", len(to_write), len(to_write))
    return Counts(created=created, updated=len(to_write) - created, unchanged=unchanged)


def upsert_with_copy(
    records: Sequence[DocumentRecord], *, write: bool, progress: Progress | None = None
) -> Counts:
    """PostgreSQL: COPY the new records straight into the table; COPY the ones already
    there into a temporary table, where the server compares them and one UPDATE writes
    those that differ. Call inside a transaction.

    Reading 100,000 rows back into Python to compare them costs more than the COPY
    itself; comparing on the server costs a join.
    """
    table = sql.Identifier(Document._meta.db_table)
    incoming = sql.Identifier("import_documents")
    total = len(records)
    # psycopg's own cursor speaks COPY; Django's error wrapper keeps its errors Django's.
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        cursor = wrapper.cursor
        if write:
            # Other writers wait and readers carry on: no row can appear or change between
            # the comparison and the writes.
            cursor.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
        _report(progress, "comparing", 0, total)
        cursor.execute(
            sql.SQL("SELECT file_id FROM {} WHERE file_id = ANY(%s)").format(table),
            [[record.file_id for record in records]],
        )
        existing = {file_id for (file_id,) in cursor.fetchall()}
        new = [record for record in records if record.file_id not in existing]
        known = [record for record in records if record.file_id in existing]
        changed = 0
        if known:
            cursor.execute(
                sql.SQL(
                    "CREATE TEMPORARY TABLE {} ON COMMIT DROP AS SELECT {} FROM {} WITH NO DATA"
                ).format(incoming, _columns(), table)
            )
            _copy(cursor, incoming, known, progress, "comparing", total)
            query = (
                "UPDATE {table} AS document SET {assignments} FROM {incoming} AS incoming "
                "WHERE document.file_id = incoming.file_id AND {differs}"
                if write
                else "SELECT count(*) FROM {incoming} AS incoming JOIN {table} AS document "
                "ON document.file_id = incoming.file_id WHERE {differs}"
            )
            cursor.execute(
                sql.SQL(query).format(
                    table=table,
                    incoming=incoming,
                    assignments=sql.SQL(", ").join(
                        sql.SQL("{} = {}").format(
                            sql.Identifier(name), sql.Identifier("incoming", name)
                        )
                        for name in UPDATED_COLUMNS
                    ),
                    differs=sql.SQL("({}) IS DISTINCT FROM ({})").format(
                        _columns("document", UPDATED_COLUMNS),
                        _columns("incoming", UPDATED_COLUMNS),
                    ),
                )
            )
            changed = cursor.rowcount if write else cursor.fetchone()[0]
            # Dropped now, not only at commit: the caller's transaction may go on.
            cursor.execute(sql.SQL("DROP TABLE {}").format(incoming))
        _report(progress, "comparing", total, total)
        if write and new:
            _copy(cursor, table, new, progress, "writing", len(new))
    return Counts(created=len(new), updated=changed, unchanged=len(known) - changed)


def _columns(alias: str | None = None, names: Sequence[str] = COLUMNS) -> sql.Composed:
    return sql.SQL(", ").join(
        sql.Identifier(alias, name) if alias else sql.Identifier(name) for name in names
    )


def _copy(
    cursor: Any,
    table: sql.Identifier,
    records: Sequence[DocumentRecord],
    progress: Progress | None,
    phase: str,
    total: int,
) -> None:
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(table, _columns())
    with cursor.copy(statement) as copy:
        for done, record in enumerate(records):
            if done % _PROGRESS_EVERY == 0:
                _report(progress, phase, done, total)
            copy.write_row(_row(record))
    _report(progress, phase, len(records), total)


def _report(progress: Progress | None, phase: str, done: int, total: int) -> None:
    if progress is not None:
        progress(phase, done, total)


# -- normalising ---------------------------------------------------------------------------
def _column_limits() -> tuple[int, int]:
    """The largest size_bytes and num_chunks the table holds: JSON numbers have no limit."""
    size, chunks = (
        connection.ops.integer_field_range(Document._meta.get_field(name).get_internal_type())[1]
        for name in ("size_bytes", "num_chunks")
    )
    return size, chunks


def _in_utc(record: DocumentRecord) -> DocumentRecord:
    """ISO timestamps keep their offset; store the same instant in UTC like every other."""
    try:
        return dataclasses.replace(
            record,
            created_at=record.created_at.astimezone(UTC),
            updated_at=record.updated_at.astimezone(UTC),
        )
    except OverflowError:
        raise InvalidRecord("createdAt or updatedAt is out of range") from None


def _raw_file_id(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    value = item.get("fileId")
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value).strip() or None


def _row(record: DocumentRecord) -> Row:
    return tuple(getattr(record, name) for name in COLUMNS)
