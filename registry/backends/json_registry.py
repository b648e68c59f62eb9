from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import TypeVar

from common.fileio import ParsedFile, locked
from registry.backends import JSON
from registry.backends.base import Health, Journal, Names, OnDeleted, Records, RegistryBackend
from registry.exceptions import (
    FileIdTaken,
    InvalidRecord,
    InvalidRegistryFile,
    RegistryUnavailable,
)
from registry.legacy import dump_legacy_file, parse_legacy_file, record_from_legacy
from registry.records import DocumentRecord, WorkspaceFilter, workspace_names

ById = dict[str, DocumentRecord]
Result = TypeVar("Result")


class JsonFileRegistry(RegistryBackend):
    """The legacy registry file, kept in its legacy format so the old service can read it.

    Every change is a read-modify-write under an flock, replaced atomically, so several
    processes can write at once and a killed writer leaves the previous file intact.
    Reads reuse the parsed file until it changes on disk.
    """

    name = JSON
    in_database = False
    thread_sensitive = False

    @property
    def label(self) -> str:
        return f"the JSON registry {self.path}"

    def exists(self) -> bool:
        return self.path.exists()

    def stands_in_for(self) -> RegistryBackend:
        from registry.backends.database import DatabaseRegistry

        return DatabaseRegistry()

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._file: ParsedFile[ById] = ParsedFile(
            self.path,
            parse=self._parse,
            empty=dict,
            unreadable=lambda exc: RegistryUnavailable(
                f"registry file {self.path} cannot be read: {exc}"
            ),
        )

    # -- reading -------------------------------------------------------------------------
    def _records(self) -> ById:
        return self._file.read()

    def _parse(self, data: bytes) -> ById:
        try:
            items = parse_legacy_file(data)
        except InvalidRegistryFile as exc:
            raise RegistryUnavailable(f"registry file {self.path} {exc}") from exc
        records: ById = {}
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

    def _change(
        self, mutate: Callable[[ById], tuple[Result, Records]], journal: Journal | None
    ) -> Result:
        """Apply `mutate` under the lock; it returns its result and the documents it
        changed. Only a change is written, once `journal` has been told of them."""
        with locked(self.path):
            records = dict(self._records())
            result, changed = mutate(records)
            if changed:
                if journal is not None:
                    journal(changed)
                try:
                    self._file.write(dump_legacy_file(list(records.values())), records)
                except OSError as exc:
                    raise RegistryUnavailable(
                        f"registry file {self.path} cannot be written: {exc}"
                    ) from exc
        return result

    # -- the interface -------------------------------------------------------------------
    def upsert(self, record: DocumentRecord, *, journal: Journal | None = None) -> DocumentRecord:
        def put(records: ById) -> tuple[DocumentRecord, Records]:
            records[record.file_id] = record
            return record, [record]

        return self._change(put, journal)

    def create(
        self, record: DocumentRecord, *, copy: bool = False, journal: Journal | None = None
    ) -> tuple[DocumentRecord, bool]:
        def add(records: ById) -> tuple[tuple[DocumentRecord, bool], Records]:
            existing = (
                record.sha256
                and not copy
                and _oldest_with_content(records, workspace=record.workspace, sha256=record.sha256)
            )
            if existing:
                return (existing, False), []
            if record.file_id in records:  # made while this one was being indexed
                raise FileIdTaken(record.file_id)
            records[record.file_id] = record
            return (record, True), [record]

        return self._change(add, journal)

    def get_many(self, file_ids: Collection[str]) -> dict[str, DocumentRecord]:
        records = self._records()
        return {file_id: records[file_id] for file_id in file_ids if file_id in records}

    def find_by_sha256(self, *, workspace: str, sha256: str) -> DocumentRecord | None:
        return _oldest_with_content(self._records(), workspace=workspace, sha256=sha256)

    def list(
        self, *, workspace: WorkspaceFilter = None, limit: int = 50, offset: int = 0
    ) -> Records:
        names = workspace_names(workspace)
        records = [
            record
            for record in self._records().values()
            if names is None or record.workspace in names
        ]
        records.sort(key=lambda r: (r.created_at, r.file_id), reverse=True)
        return records[offset : offset + limit]

    def count(self, *, workspace: WorkspaceFilter = None) -> int:
        records = self._records().values()
        names = workspace_names(workspace)
        if names is None:
            return len(records)
        return sum(1 for record in records if record.workspace in names)

    def delete_many(
        self,
        file_ids: Collection[str],
        *,
        on_deleted: OnDeleted | None = None,
        journal: Journal | None = None,
    ) -> Records:
        def remove(records: ById) -> tuple[Records, Records]:
            removed = [records.pop(file_id) for file_id in sorted(set(file_ids) & records.keys())]
            return removed, removed

        removed = self._change(remove, journal)
        if removed and on_deleted is not None:
            on_deleted(removed)
        return removed

    def check(self) -> None:
        self._records()
        if not self.path.parent.is_dir():
            raise RegistryUnavailable(f"registry directory {self.path.parent} does not exist")

    def workspaces(self) -> Names:
        return sorted({record.workspace for record in self._records().values()})

    async def aprobe(self, timeout: float) -> Health:
        found = await super().aprobe(timeout)
        return Health(found.database, found.registry, named=self.name)


def _oldest_with_content(records: ById, *, workspace: str, sha256: str) -> DocumentRecord | None:
    matches = [r for r in records.values() if r.workspace == workspace and r.sha256 == sha256]
    return min(matches, key=lambda r: (r.created_at, r.file_id)) if matches else None
