"""PostgreSQL's side of the import: COPY new rows straight into `documents`, compare the
existing ones on the server, and update only those that differ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from psycopg import sql

from registry.models import Document
from registry.progress import EVERY, Progress, report
from registry.records import RECORD_FIELDS, UPDATABLE_FIELDS, DocumentRecord


def upsert_with_copy(
    records: Sequence[DocumentRecord], *, write: bool, progress: Progress | None = None
) -> tuple[int, int]:
    """(created, updated): COPY the new records into the table; COPY the ones already
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
        report(progress, "comparing", 0, total)
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
                        for name in UPDATABLE_FIELDS
                    ),
                    differs=sql.SQL("({}) IS DISTINCT FROM ({})").format(
                        _columns("document", UPDATABLE_FIELDS),
                        _columns("incoming", UPDATABLE_FIELDS),
                    ),
                )
            )
            changed = cursor.rowcount if write else cursor.fetchone()[0]
            # Dropped now, not only at commit: the caller's transaction may go on.
            cursor.execute(sql.SQL("DROP TABLE {}").format(incoming))
        report(progress, "comparing", total, total)
        if write and new:
            _copy(cursor, table, new, progress, "writing", len(new))
    return len(new), changed


def _columns(alias: str | None = None, names: Sequence[str] = RECORD_FIELDS) -> sql.Composed:
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
            if done % EVERY == 0:
                report(progress, phase, done, total)
            copy.write_row(record.row())
    report(progress, phase, len(records), total)
