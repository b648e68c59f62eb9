from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from asgiref.sync import sync_to_async

from common.db import probes
from registry.exceptions import DocumentNotFound, RegistryError
from registry.records import DocumentRecord, WorkspaceFilter

logger = logging.getLogger(__name__)

# A method named `list` hides the builtin inside the classes: annotations use this.
Records = list[DocumentRecord]
Names = list[str]
# Called with the removed documents once their removal is durable.
OnDeleted = Callable[[Records], None]
# Called with the documents a write changes, before the change is durable: inside the
# table's transaction, or under the file's lock before the file is replaced. What it
# writes to the database (the audit trail) then stands or falls with the change.
Journal = Callable[[Records], None]
R = TypeVar("R")
Joined = dict[str, Any]
JoinedRows = list[Joined]  # (`list` is a method's name inside the classes)


@dataclass(frozen=True, eq=False)
class Columns:
    """Values read beside each document, by name: ORM expressions over the documents row
    (a Subquery on OuterRef("file_id"), say), which the registry on the table reads in
    the same query; the registry knows nothing of what they are. It compiles that query
    once per Columns object: give the same object for the same columns."""

    expressions: Mapping[str, Any]


NO_COLUMNS = Columns({})


@dataclass(frozen=True)
class Health:
    """What a health probe found: whether the database and the registry answer, and the
    registry's name when it is not the database's (as /health reports it)."""

    database: bool
    registry: bool
    named: str | None = None


class RegistryBackend(abc.ABC):
    """The registry interface, implemented by the `documents` table and the JSON file.

    Backends implement the sync methods; async callers use the `a`-prefixed twins, which
    run the sync work off the event loop.
    """

    name: ClassVar[str]
    # Whether its writes are rows of the database, inside the caller's transaction (the
    # table), or not (the JSON file: see ingest/services.py for what that guarantees).
    in_database: ClassVar[bool] = True
    # Database work must stay on Django's one sync thread per request; file work need not.
    thread_sensitive: ClassVar[bool] = True
    # Whether staff may add and delete documents through the admin, which shows the
    # `documents` table: only while that table is this registry. During a rollback (the
    # JSON file live) the admin's pages say why they are read-only.
    staff_may_write: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def label(self) -> str:
        """The registry in a message, saying where it is (the table, the file)."""

    def exists(self) -> bool:
        """Whether the registry is there to compare with another (a file may not be)."""
        return True

    def stands_in_for(self) -> RegistryBackend | None:
        """The registry this one replaces while it is live, which a check of one
        document compares it with: none for the table; the table for the JSON file."""
        return None

    @abc.abstractmethod
    def upsert(self, record: DocumentRecord, *, journal: Journal | None = None) -> DocumentRecord:
        """Create the document, or replace every field of the one with its file_id;
        `journal` is told of it (see Journal)."""

    @abc.abstractmethod
    def create(
        self, record: DocumentRecord, *, copy: bool = False, journal: Journal | None = None
    ) -> tuple[DocumentRecord, bool]:
        """Add a new document unless one with the same content (workspace and sha256)
        exists: returns (the stored document, whether it was created). Atomic, so two
        identical uploads at once store one document. A `copy` (a new id a client chose
        for content the workspace holds) is added all the same. `journal` is told of a
        document created, not of one found."""

    @abc.abstractmethod
    def get_many(self, file_ids: Collection[str]) -> dict[str, DocumentRecord]:
        """The documents of these ids that exist, by file_id, in one read."""

    @abc.abstractmethod
    def find_by_sha256(self, *, workspace: str, sha256: str) -> DocumentRecord | None:
        """The oldest document holding this content in this workspace."""

    @abc.abstractmethod
    def list(
        self, *, workspace: WorkspaceFilter = None, limit: int = 50, offset: int = 0
    ) -> Records:
        """Newest first (created_at, then file_id, both descending), of the workspace,
        of the set of workspaces, or (None) of every one."""

    @abc.abstractmethod
    def count(self, *, workspace: WorkspaceFilter = None) -> int: ...

    @abc.abstractmethod
    def delete_many(
        self,
        file_ids: Collection[str],
        *,
        on_deleted: OnDeleted | None = None,
        journal: Journal | None = None,
    ) -> Records:
        """Remove the documents of these ids that exist and return them; tell `journal`
        of them before the removal is durable, and call `on_deleted` with them once it
        is (neither, if none was removed)."""

    @abc.abstractmethod
    def check(self) -> None:
        """Return when the backend can be read; raise RegistryUnavailable saying why."""

    @abc.abstractmethod
    def workspaces(self) -> Names:
        """The workspaces holding documents, sorted."""

    def _answers(self) -> bool:
        try:
            self.check()
            return True
        except RegistryError as exc:
            logger.warning("health: %s registry unavailable: %s", self.name, exc)
            return False

    async def aprobe(self, timeout: float) -> Health:
        """Whether the database and this registry answer, each within `timeout`."""
        database, registry = await asyncio.gather(
            probes.database_answers(timeout),
            probes.in_thread(self._answers, f"the {self.name} registry", timeout),
        )
        return Health(database, registry)

    def get(self, file_id: str) -> DocumentRecord:
        """The document, or DocumentNotFound."""
        found = self.get_many([file_id]).get(file_id)
        if found is None:
            raise DocumentNotFound(file_id)
        return found

    def _async(self, method: Callable[..., R], *args: Any, **kwargs: Any) -> Any:
        return sync_to_async(method, thread_sensitive=self.thread_sensitive)(*args, **kwargs)

    async def aget(self, file_id: str) -> DocumentRecord:
        found = (await self.aget_many([file_id])).get(file_id)
        if found is None:
            raise DocumentNotFound(file_id)
        return found

    async def aget_many(self, file_ids: Collection[str]) -> dict[str, DocumentRecord]:
        return await self._async(self.get_many, file_ids)

    async def afind_by_sha256(self, *, workspace: str, sha256: str) -> DocumentRecord | None:
        return await self._async(self.find_by_sha256, workspace=workspace, sha256=sha256)

    async def alist(
        self, *, workspace: WorkspaceFilter = None, limit: int = 50, offset: int = 0
    ) -> Records:
        return await self._async(self.list, workspace=workspace, limit=limit, offset=offset)

    async def acount(self, *, workspace: WorkspaceFilter = None) -> int:
        return await self._async(self.count, workspace=workspace)

    async def apage(
        self, *, workspace: WorkspaceFilter = None, limit: int = 50, offset: int = 0
    ) -> tuple[Records, int]:
        """`alist()` and the `acount()` it is a page of."""
        items = await self.alist(workspace=workspace, limit=limit, offset=offset)
        return items, await self.acount(workspace=workspace)

    async def aget_joined(
        self, file_id: str, columns: Columns
    ) -> tuple[DocumentRecord, Joined | None]:
        """The document (or DocumentNotFound) and the values of `columns` read in the same
        query; None where this registry cannot join them (the caller reads them itself)."""
        return await self.aget(file_id), None

    async def apage_joined(
        self, *, workspace: WorkspaceFilter, limit: int, offset: int, columns: Columns
    ) -> tuple[Records, JoinedRows | None, int]:
        """`apage()` with the values of `columns` for each document, as `aget_joined`."""
        items, total = await self.apage(workspace=workspace, limit=limit, offset=offset)
        return items, None, total

    async def acheck(self) -> None:
        await self._async(self.check)

    async def adelete_many(
        self, file_ids: Collection[str], *, on_deleted: OnDeleted | None = None
    ) -> Records:
        return await self._async(self.delete_many, file_ids, on_deleted=on_deleted)
