from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from registry.backends.base import OnDeleted, RegistryBackend
from registry.exceptions import (
    DocumentNotFound,
    InvalidRecord,
    InvalidRegistryFile,
    RegistryUnavailable,
)
from registry.fileio import ParsedFile, locked
from registry.legacy import dump_legacy_file, parse_legacy_file, record_from_legacy
from registry.records import DocumentRecord

Records = dict[str, DocumentRecord]


class JsonFileRegistry(RegistryBackend):
    """The legacy registry file, kept in its legacy format so the old service can read it.

    Every change is a read-modify-write under an flock, replaced atomically, so several
    processes can write at once and a killed writer leaves the previous file intact.
    Reads reuse the parsed file until it changes on disk.
    """

    name = "json"
    thread_sensitive = False

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: ParsedFile[Records] = ParsedFile(
            self.path,
            parse=self._parse,
            empty=dict,
            unreadable=lambda exc: RegistryUnavailable(
                f"registry file {self.path} cannot be read: {exc}"
            ),
        )

    # -- reading -------------------------------------------------------------------------
    def _records(self) -> Records:
        return self._file.read()

    def _parse(self, data: bytes) -> Records:
        try:
            items = parse_legacy_file(data)
        except InvalidRegistryFile as exc:
            raise RegistryUnavailable(f"registry file {self.path} {exc}") from exc
        records: Records = {}
        for position, item in enumerate(items):
            try:
                record = record_from_legacy(item)
            except InvalidRecord as exc:
                raise RegistryUnavailable(
                    f"registry file {self.path}: record {position} is invalid ({exc}); "
                    "fix or remove it"
                ) from exc
            records[record.file_id] = record
        return records

    def _change(self, mutate: Callable[[Records], DocumentRecord | None]) -> DocumentRecord | None:
        """Apply `mutate` under the lock and write the result; `mutate` returning None
        means nothing changed, and nothing is written."""
        with locked(self.path):
            records = dict(self._records())
            result = mutate(records)
            if result is None:
                return None
            try:
                self._file.write(dump_legacy_file(list(records.values())), records)
            except OSError as exc:
                raise RegistryUnavailable(
                    f"registry file {self.path} cannot be written: {exc}"
                ) from exc
        return result

    # -- the interface -------------------------------------------------------------------
    def upsert(self, record: DocumentRecord) -> DocumentRecord:
        def put(records: Records) -> DocumentRecord:
            records[record.file_id] = record
            return record

        return self._change(put)

    def create(self, record: DocumentRecord) -> tuple[DocumentRecord, bool]:
        existing: list[DocumentRecord] = []

        def add(records: Records) -> DocumentRecord | None:
            if record.sha256:
                existing.extend(
                    r
                    for r in records.values()
                    if r.workspace == record.workspace and r.sha256 == record.sha256
                )
                if existing:
                    return None
            records[record.file_id] = record
            return record

        created = self._change(add)
        if created is None:
            return min(existing, key=lambda r: (r.created_at, r.file_id)), False
        return created, True

    def get(self, file_id: str) -> DocumentRecord:
        try:
            return self._records()[file_id]
        except KeyError:
            raise DocumentNotFound(file_id) from None

    def find_by_sha256(self, *, workspace: str, sha256: str) -> DocumentRecord | None:
        matches = [
            record
            for record in self._records().values()
            if record.workspace == workspace and record.sha256 == sha256
        ]
        return min(matches, key=lambda r: (r.created_at, r.file_id)) if matches else None

    def list(
        self, *, workspace: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[DocumentRecord]:
        records = [
            record
            for record in self._records().values()
            if workspace is None or record.workspace == workspace
        ]
        records.sort(key=lambda r: (r.created_at, r.file_id), reverse=True)
        return records[offset : offset + limit]

    def count(self, *, workspace: str | None = None) -> int:
        records = self._records().values()
        if workspace is None:
            return len(records)
        return sum(1 for record in records if record.workspace == workspace)

    def delete(self, file_id: str, *, on_deleted: OnDeleted | None = None) -> DocumentRecord:
        def remove(records: Records) -> DocumentRecord:
            try:
                return records.pop(file_id)
            except KeyError:
                raise DocumentNotFound(file_id) from None

        record = self._change(remove)
        if on_deleted is not None:
            on_deleted(record)
        return record

    def ping(self) -> bool:
        self._records()
        if not self.path.parent.is_dir():
            raise RegistryUnavailable(f"registry directory {self.path.parent} does not exist")
        return True
