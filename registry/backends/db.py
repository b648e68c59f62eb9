from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterator

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    transaction,
)

from registry.backends import DATABASE
from registry.backends.base import OnDeleted, Records, RegistryBackend
from registry.exceptions import RegistryUnavailable
from registry.models import Document
from registry.records import DocumentRecord


@contextlib.contextmanager
def _database_errors() -> Iterator[None]:
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        raise RegistryUnavailable(f"database unavailable: {exc}".strip()) from exc


class DatabaseRegistry(RegistryBackend):
    """The registry on the `documents` table."""

    name = DATABASE

    def upsert(self, record: DocumentRecord) -> DocumentRecord:
        with _database_errors():
            document, _ = Document.objects.update_or_create(
                file_id=record.file_id, defaults=Document.fields_from_record(record)
            )
        return document.to_record()

    def create(self, record: DocumentRecord) -> tuple[DocumentRecord, bool]:
        with _database_errors():
            try:
                with transaction.atomic():
                    document = Document.from_record(record)
                    document.save(force_insert=True)
                return document.to_record(), True
            except IntegrityError:
                existing = record.sha256 and self.find_by_sha256(
                    workspace=record.workspace, sha256=record.sha256
                )
                if existing:
                    return existing, False
                raise

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

    def list(self, *, workspace: str | None = None, limit: int = 50, offset: int = 0) -> Records:
        queryset = Document.objects.order_by("-created_at", "-file_id")
        if workspace is not None:
            queryset = queryset.filter(workspace=workspace)
        with _database_errors():
            return [document.to_record() for document in queryset[offset : offset + limit]]

    def count(self, *, workspace: str | None = None) -> int:
        queryset = Document.objects.all()
        if workspace is not None:
            queryset = queryset.filter(workspace=workspace)
        with _database_errors():
            return queryset.count()

    def delete_many(
        self, file_ids: Collection[str], *, on_deleted: OnDeleted | None = None
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
                if on_deleted is not None:
                    transaction.on_commit(lambda: on_deleted(removed))
        return removed

    def check(self) -> None:
        try:
            Document.objects.exists()  # the connection, and the table the registry needs
        except DatabaseError as exc:
            raise RegistryUnavailable(f"database unavailable: {exc}".strip()) from exc
