from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import (
    DatabaseError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connection,
    transaction,
)

from registry.backends.base import OnDeleted, RegistryBackend
from registry.exceptions import DocumentNotFound, RegistryUnavailable
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

    name = "database"

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
                    document = Document.objects.create(
                        file_id=record.file_id, **Document.fields_from_record(record)
                    )
                return document.to_record(), True
            except IntegrityError:
                existing = record.sha256 and self.find_by_sha256(
                    workspace=record.workspace, sha256=record.sha256
                )
                if existing:
                    return existing, False
                raise

    def get(self, file_id: str) -> DocumentRecord:
        with _database_errors():
            document = Document.objects.filter(file_id=file_id).first()
        if document is None:
            raise DocumentNotFound(file_id)
        return document.to_record()

    def find_by_sha256(self, *, workspace: str, sha256: str) -> DocumentRecord | None:
        with _database_errors():
            document = (
                Document.objects.filter(workspace=workspace, sha256=sha256)
                .order_by("created_at", "file_id")
                .first()
            )
        return document.to_record() if document else None

    def list(
        self, *, workspace: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[DocumentRecord]:
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

    def delete(self, file_id: str, *, on_deleted: OnDeleted | None = None) -> DocumentRecord:
        with _database_errors(), transaction.atomic():
            document = Document.objects.select_for_update().filter(file_id=file_id).first()
            if document is None:
                raise DocumentNotFound(file_id)
            record = document.to_record()
            document.delete()
            if on_deleted is not None:
                transaction.on_commit(lambda: on_deleted(record))
        return record

    def ping(self) -> bool:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            Document.objects.exists()
        except DatabaseError as exc:
            raise RegistryUnavailable(f"database unavailable: {exc}".strip()) from exc
        return True
