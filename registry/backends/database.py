from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import Collection, Iterator, Sequence
from typing import Any

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    connection,
    transaction,
)
from django.db.models import QuerySet

from common.db import async_reads
from registry.backends import DATABASE
from registry.backends.base import (
    NO_COLUMNS,
    Columns,
    Health,
    Joined,
    JoinedRows,
    Journal,
    Names,
    OnDeleted,
    Records,
    RegistryBackend,
)
from registry.exceptions import DocumentNotFound, FileIdTaken, RegistryError, RegistryUnavailable
from registry.models import Document
from registry.records import RECORD_FIELDS, DocumentRecord, WorkspaceFilter, workspace_names

logger = logging.getLogger(__name__)


def _lock_content(workspace: str, sha256: str) -> None:
    """Until the transaction ends, hold the lock of this content in this workspace, so
    that of two identical uploads at once one creates and the other finds it. SQLite's
    transactions are IMMEDIATE (config/env.py): one writer at a time already."""
    if connection.vendor != "postgresql":
        return
    # A stable signed 64-bit key (Python's hash() is salted per process).
    digest = hashlib.blake2b(f"{workspace}\0{sha256}".encode(), digest_size=8).digest()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", [int.from_bytes(digest, "big", signed=True)]
        )


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise RegistryUnavailable(f"database unavailable: {exc}".strip()) from exc


def _in_workspace(workspace: WorkspaceFilter) -> QuerySet[Document]:
    queryset = Document.objects.all()
    names = workspace_names(workspace)
    if names is None:
        return queryset
    if len(names) == 1:  # the plain `=` of one workspace, as before scopes
        return queryset.filter(workspace=next(iter(names)))
    return queryset.filter(workspace__in=sorted(names))


NEWEST_FIRST = ("-created_at", "-file_id")
# A value no file id can be (FILE_ID_RE): where a compiled read takes the id asked for.
_FILE_ID = "\0file_id\0"


def _page(workspace: WorkspaceFilter, limit: int, offset: int) -> QuerySet[Document]:
    return _in_workspace(workspace).order_by(*NEWEST_FIRST)[offset : offset + limit]


def _records(queryset: QuerySet[Document]) -> QuerySet[Document, tuple[Any, ...]]:
    """The queryset's rows as DocumentRecord's fields, in their order."""
    return queryset.values_list(*RECORD_FIELDS)


def _record(row: tuple[Any, ...]) -> DocumentRecord:
    return DocumentRecord(*row)


def _joined_rows(
    queryset: QuerySet[Document], columns: Columns
) -> QuerySet[Document, tuple[Any, ...]]:
    """The queryset's rows as DocumentRecord's fields, then the columns' values."""
    annotated = queryset.annotate(**columns.expressions)
    return annotated.values_list(*RECORD_FIELDS, *columns.expressions)


def _joined_page(
    workspace: WorkspaceFilter, limit: int, offset: int, columns: Columns
) -> QuerySet[Document, tuple[Any, ...]]:
    """A page of `_page`, as `_joined_rows`."""
    return _joined_rows(_page(workspace, limit, offset), columns)


def _split(row: tuple[Any, ...], columns: Columns) -> tuple[DocumentRecord, Joined]:
    fields = len(RECORD_FIELDS)
    return _record(row[:fields]), dict(zip(columns.expressions, row[fields:], strict=True))


def _fetched(queryset: QuerySet[Document, tuple[Any, ...]]) -> Sequence[tuple[Any, ...]]:
    return [*queryset]


@functools.cache
def _probe_sql() -> tuple[str, tuple[Any, ...]]:
    """What /health reads: one row of the table, compiled once."""
    return async_reads.select_sql(Document.objects.values("pk")[:1])


@functools.lru_cache(maxsize=256)
def _one_joined(columns: Columns) -> async_reads.Statement:
    """The read of one document and its columns, compiled once per Columns."""
    queryset = _joined_rows(Document.objects.filter(file_id=_FILE_ID), columns)
    return async_reads.compile_statement(queryset, file_id=_FILE_ID)


@functools.lru_cache(maxsize=1024)
def _page_joined(
    columns: Columns, workspace: frozenset[str] | None, limit: int, offset: int
) -> tuple[str, tuple[Any, ...]]:
    """A page, its columns and the total it is a page of in one statement (one round
    trip), compiled once per shape (the ORM writes LIMIT and OFFSET into the SQL). An
    empty page is one row of NULLs after the total."""
    page_sql, page_params = async_reads.select_sql(_joined_page(workspace, limit, offset, columns))
    count_sql, count_params = async_reads.count_sql(_in_workspace(workspace))
    # The page keeps its order through the join only if asked again, on its columns.
    order = ", ".join(
        f"page.{name.lstrip('-')} {'DESC' if name.startswith('-') else 'ASC'}"
        for name in NEWEST_FIRST
    )
    sql = (
        f"SELECT total.n, page.* FROM ({count_sql}) AS total(n)"  # noqa: S608 (the ORM's SQL)
        f" LEFT JOIN ({page_sql}) AS page ON true ORDER BY {order}"
    )
    return sql, (*count_params, *page_params)


class DatabaseRegistry(RegistryBackend):
    """The registry on the `documents` table."""

    name = DATABASE
    staff_may_write = True

    @property
    def label(self) -> str:
        return "the database registry (the documents table)"

    def upsert(self, record: DocumentRecord, *, journal: Journal | None = None) -> DocumentRecord:
        with _database_errors(), transaction.atomic():
            document, _ = Document.objects.update_or_create(
                file_id=record.file_id, defaults=Document.fields_from_record(record)
            )
            stored = document.to_record()
            if journal is not None:
                journal([stored])
        return stored

    def create(
        self, record: DocumentRecord, *, copy: bool = False, journal: Journal | None = None
    ) -> tuple[DocumentRecord, bool]:
        with _database_errors(), transaction.atomic():
            if record.sha256 and not copy:
                _lock_content(record.workspace, record.sha256)
                existing = self.find_by_sha256(workspace=record.workspace, sha256=record.sha256)
                if existing:
                    return existing, False
            document = Document.from_record(record)
            try:
                with transaction.atomic():  # a savepoint: the failure is answered, not fatal
                    document.save(force_insert=True)
            except IntegrityError as exc:
                if Document.objects.filter(file_id=record.file_id).exists():
                    raise FileIdTaken(record.file_id) from exc  # made while this was indexed
                raise  # any other refusal is the database's (a trigger, say)
            stored = document.to_record()
            if journal is not None:
                journal([stored])
            return stored, True

    def get_many(self, file_ids: Collection[str]) -> dict[str, DocumentRecord]:
        if not file_ids:
            return {}
        with _database_errors():
            documents = Document.objects.filter(file_id__in=list(file_ids)).order_by()
            return {document.file_id: document.to_record() for document in documents}

    def find_by_sha256(self, *, workspace: str, sha256: str) -> DocumentRecord | None:
        with _database_errors():
            document = (
                Document.objects.filter(workspace=workspace, sha256=sha256)
                .order_by("created_at", "file_id")
                .first()
            )
        return document.to_record() if document else None

    def list(
        self, *, workspace: WorkspaceFilter = None, limit: int = 50, offset: int = 0
    ) -> Records:
        with _database_errors():
            return [document.to_record() for document in _page(workspace, limit, offset)]

    def count(self, *, workspace: WorkspaceFilter = None) -> int:
        with _database_errors():
            return _in_workspace(workspace).count()

    # The API's reads, on the native async pool when it is available (common/db/async_reads.py);
    # the same querysets as the sync methods above.

    async def aget_many(self, file_ids: Collection[str]) -> dict[str, DocumentRecord]:
        if not async_reads.native_reads():
            return await super().aget_many(file_ids)
        if not file_ids:
            return {}
        queryset = _records(Document.objects.filter(file_id__in=list(file_ids)).order_by())
        with _database_errors():
            rows = await async_reads.fetch_rows(*async_reads.select_sql(queryset))
        return {record.file_id: record for record in map(_record, rows)}

    async def apage(
        self, *, workspace: WorkspaceFilter = None, limit: int = 50, offset: int = 0
    ) -> tuple[Records, int]:
        if not async_reads.native_reads():
            return await super().apage(workspace=workspace, limit=limit, offset=offset)
        items, _, total = await self.apage_joined(
            workspace=workspace, limit=limit, offset=offset, columns=NO_COLUMNS
        )
        return items, total

    async def aget_joined(
        self, file_id: str, columns: Columns
    ) -> tuple[DocumentRecord, Joined | None]:
        if async_reads.native_reads():
            with _database_errors():
                rows = await async_reads.fetch_rows(*_one_joined(columns).bind(file_id=file_id))
        else:
            queryset = _joined_rows(Document.objects.filter(file_id=file_id), columns)
            with _database_errors():
                rows = await self._async(_fetched, queryset)
        if not rows:
            raise DocumentNotFound(file_id)
        return _split(rows[0], columns)

    async def apage_joined(
        self, *, workspace: WorkspaceFilter, limit: int, offset: int, columns: Columns
    ) -> tuple[Records, JoinedRows | None, int]:
        if async_reads.native_reads():
            statement = _page_joined(columns, workspace_names(workspace), limit, offset)
            with _database_errors():
                rows = await async_reads.fetch_rows(*statement)
            total = rows[0][0] if rows else 0
            found = [_split(row[1:], columns) for row in rows if row[1] is not None]
        else:
            with _database_errors():
                found, total = await self._async(
                    self._page_with_columns, workspace, limit, offset, columns
                )
        return [record for record, _ in found], [joined for _, joined in found], int(total)

    def _page_with_columns(
        self, workspace: WorkspaceFilter, limit: int, offset: int, columns: Columns
    ) -> tuple[Sequence[tuple[DocumentRecord, Joined]], int]:
        rows = _joined_page(workspace, limit, offset, columns)
        return [_split(row, columns) for row in rows], _in_workspace(workspace).count()

    async def acheck(self) -> None:
        if not async_reads.native_reads():
            return await super().acheck()
        try:
            await async_reads.fetch_rows(*_probe_sql())
        except DatabaseError as exc:
            raise RegistryUnavailable(f"database unavailable: {exc}".strip()) from exc

    def delete_many(
        self,
        file_ids: Collection[str],
        *,
        on_deleted: OnDeleted | None = None,
        journal: Journal | None = None,
    ) -> Records:
        if not file_ids:
            return []
        with _database_errors(), transaction.atomic():
            rows = list(
                Document.objects.select_for_update()
                .filter(file_id__in=list(file_ids))
                .order_by("file_id")
            )
            removed = [document.to_record() for document in rows]
            if removed:
                Document.objects.filter(pk__in=[document.pk for document in rows]).delete()
                if journal is not None:
                    journal(removed)
                if on_deleted is not None:
                    transaction.on_commit(lambda: on_deleted(removed))
        return removed

    def check(self) -> None:
        try:
            Document.objects.exists()  # the connection, and the table the registry needs
        except DatabaseError as exc:
            raise RegistryUnavailable(f"database unavailable: {exc}".strip()) from exc

    def workspaces(self) -> Names:
        with _database_errors():
            return list(
                Document.objects.order_by("workspace")
                .values_list("workspace", flat=True)
                .distinct()
            )

    async def aprobe(self, timeout: float) -> Health:
        """On the native pool, one read of the table answers for the database too."""
        if not async_reads.native_reads():
            return await super().aprobe(timeout)
        try:
            async with asyncio.timeout(timeout):  # no task of its own, as wait_for makes
                await self.acheck()
            return Health(database=True, registry=True)
        except TimeoutError:
            logger.warning("health: the database did not answer within %.1fs", timeout)
            return Health(database=False, registry=False)
        except RegistryError as exc:
            logger.warning("health: database registry unavailable: %s", exc)
            # A table that is missing (not migrated) is on a database that answered.
            return Health(database=isinstance(exc.__cause__, ProgrammingError), registry=False)
