"""PostgreSQL's side of the import: COPY new rows straight into `documents`, compare the
existing ones on the server, and update only those that differ."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import connection, transaction
from psycopg import sql

from common.progress import EVERY, Progress, report
from registry.models import Document
from registry.normalising import NormalisedRegistry, normalise_records
from registry.records import RECORD_FIELDS, UPDATABLE_FIELDS, DocumentRecord


class _StrictRefusal(Exception):
    """--strict and a record was rejected: undo what the COPY wrote."""


def import_with_copy(
    items: Sequence[Any], *, strict: bool, progress: Progress | None = None
) -> tuple[NormalisedRegistry, int, int, bool]:
    """(normalised, created, updated, written): the whole import on PostgreSQL, with
    the COPY of new records running while the file is still being normalised. Call
    inside a transaction.

    The server's share of a COPY into `documents` (seven indexes) takes about as long
    as normalising the file in Python; one after the other, an import of 100,000
    records took about twice a bare COPY. Here a record new to the table whose fileId
    no earlier record has goes into the COPY as soon as it is valid, so the
    two overlap; one a later record collides with is deleted again after the COPY, and
    the rest follow `upsert_with_copy` (see normalise_records' `early`). With --strict
    and a rejection, everything rolls back to a savepoint and the import reports what
    it would have done, writing nothing.
    """
    try:
        with transaction.atomic():
            normalised = _normalise_into_copy(items, progress)
            if strict and normalised.rejected:
                raise _StrictRefusal
            created, updated = upsert_with_copy(normalised.records, write=True, progress=progress)
            return normalised, created + len(normalised.taken), updated, True
    except _StrictRefusal:
        pass
    normalised = normalise_records(items, progress=progress)
    created, updated = upsert_with_copy(normalised.records, write=False, progress=progress)
    return normalised, created, updated, False


class _CopyWriter:
    """normalise_records' EarlyWriter: new records into an open COPY; ones given back
    are deleted once it is closed."""

    def __init__(self, copy: Any, existing: set[str]) -> None:
        self.copy = copy
        self.existing = existing
        self.given_back: list[str] = []

    def write(self, record: DocumentRecord) -> bool:
        if record.file_id in self.existing:
            return False
        self.copy.write_row(record.row())
        return True

    def unwrite(self, record: DocumentRecord) -> None:
        self.given_back.append(record.file_id)


def _normalise_into_copy(items: Sequence[Any], progress: Progress | None) -> NormalisedRegistry:
    table = sql.Identifier(Document._meta.db_table)
    with connection.cursor() as wrapper, connection.wrap_database_errors:
        cursor = wrapper.cursor
        cursor.execute(sql.SQL("LOCK TABLE {} IN SHARE ROW EXCLUSIVE MODE").format(table))
        cursor.execute(sql.SQL("SELECT file_id FROM {}").format(table))
        existing = {file_id for (file_id,) in cursor.fetchall()}
        rebuild = [] if existing else _drop_secondary_indexes(cursor)
        with copy_rows(cursor, table) as copy:
            writer = _CopyWriter(copy, existing)
            normalised = normalise_records(items, progress=progress, early=writer)
        for number, statement in enumerate(rebuild):
            report(progress, "indexing", number, len(rebuild))
            cursor.execute(statement)
        if writer.given_back:
            cursor.execute(
                sql.SQL("DELETE FROM {} WHERE file_id = ANY(%s)").format(table),
                [writer.given_back],
            )
    return normalised


def _drop_secondary_indexes(cursor: Any) -> list[str]:
    """Drop the indexes of `documents` that no constraint needs and return the
    statements that build them again: into an empty table, building an index once after
    the COPY is faster than updating it row by row (PostgreSQL's "Populating a
    Database"). The primary key and the unique fileId, which the chunks' foreign key
    uses, stay. Only the table's owner may; for anyone else nothing is dropped. The
    table is locked against reads until the import commits: it was empty."""
    cursor.execute(
        "SELECT pg_has_role(relowner, 'USAGE') FROM pg_class WHERE oid = %s::regclass",
        [Document._meta.db_table],
    )
    if not cursor.fetchone()[0]:
        return []
    cursor.execute(
        "SELECT index.indexrelid::regclass::text, pg_get_indexdef(index.indexrelid) "
        "FROM pg_index AS index WHERE index.indrelid = %s::regclass AND NOT EXISTS "
        "(SELECT FROM pg_constraint WHERE conindid = index.indexrelid) ORDER BY 1",
        [Document._meta.db_table],
    )
    indexes = cursor.fetchall()
    for name, _ in indexes:
        cursor.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(*name.split("."))))
    return [definition for _, definition in indexes]


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
    with copy_rows(cursor, table) as copy:
        for done, record in enumerate(records):
            if done % EVERY == 0:
                report(progress, phase, done, total)
            copy.write_row(record.row())
    report(progress, phase, len(records), total)


# PostgreSQL's binary name for each kind of column a DocumentRecord fills.
_BINARY_TYPES = {
    "CharField": "text",  # varchar takes text's binary form
    "TextField": "text",
    "BigIntegerField": "int8",
    "PositiveIntegerField": "int4",
    "BooleanField": "bool",
    "DateTimeField": "timestamptz",
}


def copy_rows(cursor: Any, table: sql.Identifier) -> Any:
    """psycopg's COPY of `DocumentRecord.row()`s into `table`, in binary: formatting
    100,000 rows as text cost the client more than twice as long (0.6 s against 0.2 s
    into a table without indexes). Use as `with copy_rows(…) as copy: copy.write_row(…)`."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(table, _columns())
    return _typed(cursor.copy(statement))


@contextlib.contextmanager
def _typed(copying: Any) -> Iterator[Any]:
    with copying as copy:
        copy.set_types(
            [
                _BINARY_TYPES[Document._meta.get_field(name).get_internal_type()]
                for name in RECORD_FIELDS
            ]
        )
        yield copy
