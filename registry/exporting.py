"""Write the `documents` table as a legacy registry file: the rollback path of a cutover."""

from __future__ import annotations

from pathlib import Path

from common.fileio import atomic_write_bytes, locked
from registry.legacy import dump_legacy_file
from registry.models import Document
from registry.records import RECORD_FIELDS, DocumentRecord


def database_records() -> list[DocumentRecord]:
    """Every document in the table, oldest first, ties broken by file_id: a stable order
    that diffs well between two exports."""
    rows = Document.objects.order_by("created_at", "file_id").values_list(*RECORD_FIELDS)
    return [DocumentRecord(*row) for row in rows]


def export_registry(*, path: Path) -> int:
    """Replace `path` with the database registry; return how many documents it holds.

    The file is replaced atomically under the lock the JSON registry backend takes, so a
    service running on that file sees the old registry or the new one, never a mix.
    """
    records = database_records()
    data = dump_legacy_file(records)
    with locked(path):
        atomic_write_bytes(path, data)
    return len(records)
