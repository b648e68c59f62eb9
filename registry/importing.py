"""Import a legacy registry file into the `documents` table: read, normalise, then compare
and write inside one transaction.

A dry run does every step but the writes. A failure part-way leaves the table as it was
before the run. The target is always the database, whichever registry is live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from django.db import connection, transaction

from common.progress import Progress, report
from registry.legacy import read_registry_file
from registry.models import Document
from registry.normalising import Duplicate, Rejection, normalise_records, raw_file_id
from registry.pg_copy import import_with_copy, upsert_with_copy
from registry.records import RECORD_FIELDS, UPDATABLE_FIELDS, DocumentRecord


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
    items = read_registry_file(path)
    on_postgres = connection.vendor == "postgresql"
    with transaction.atomic():
        if on_postgres and not dry_run:
            normalised, created, updated, write = import_with_copy(
                items, strict=strict, progress=progress
            )
        else:
            normalised = normalise_records(items, progress=progress)
            write = not dry_run and not (strict and normalised.rejected)
            upsert = upsert_with_copy if on_postgres else upsert_with_orm
            created, updated = upsert(normalised.records, write=write, progress=progress)
    return ImportReport(
        path=path,
        total=normalised.total,
        created=created,
        updated=updated,
        unchanged=len(normalised.records) + len(normalised.taken) - created - updated,
        rejected=normalised.rejected,
        duplicates=normalised.duplicates,
        written=write,
    )


def upsert_with_orm(
    records: Sequence[DocumentRecord], *, write: bool, progress: Progress | None = None
) -> tuple[int, int]:
    """(created, updated): compare with the rows for these ids, read in batches, then
    bulk-upsert the new and changed ones. Call inside a transaction."""
    to_write: list[DocumentRecord] = []
    created = 0
    total = len(records)
    batch_size = min((connection.features.max_query_params or 10_000) - 1, 10_000)
    for start in range(0, total, batch_size):
        report(progress, "comparing", start, total)
        batch = records[start : start + batch_size]
        existing = {
            row[0]: row
            for row in Document.objects.filter(file_id__in=[r.file_id for r in batch])
            .order_by()
            .values_list(*RECORD_FIELDS)
        }
        for record in batch:
            current = existing.get(record.file_id)
            if current is None:
                created += 1
                to_write.append(record)
            elif current != record.row():
                to_write.append(record)
    report(progress, "comparing", total, total)
    if write:
        for start in range(0, len(to_write), batch_size):
            report(progress, "writing", start, len(to_write))
            Document.objects.bulk_create(
                [Document.from_record(record) for record in to_write[start : start + batch_size]],
                update_conflicts=True,
                unique_fields=["file_id"],
                update_fields=list(UPDATABLE_FIELDS),
            )
        report(progress, "writing", len(to_write), len(to_write))
    return created, len(to_write) - created


def documents_not_in(path: Path) -> list[DocumentRecord]:
    """The table's documents whose fileId the legacy file at `path` does not name (an
    invalid record of it still names its id), by fileId: what `import_registry --sync`
    deletes. Raises InvalidRegistryFile as import_registry does."""
    named = {file_id for item in read_registry_file(path) if (file_id := raw_file_id(item))}
    documents = Document.objects.order_by("file_id").iterator(chunk_size=2000)
    return [document.to_record() for document in documents if document.file_id not in named]
