from __future__ import annotations

from collections.abc import Callable

from asgiref.sync import sync_to_async

from registry.records import DocumentRecord

OnDeleted = Callable[[DocumentRecord], None]


class RegistryBackend:
    """The registry interface. Backends implement the sync methods; async callers use
    the `a`-prefixed twins, which run the sync work off the event loop.
    """

    name: str = ""
    # Database work must stay on Django's one sync thread per request; file work need not.
    thread_sensitive: bool = True

    def upsert(self, record: DocumentRecord) -> DocumentRecord:
        """Create the document, or replace every field of the one with its file_id."""
        raise NotImplementedError

    def create(self, record: DocumentRecord) -> tuple[DocumentRecord, bool]:
        """Add a new document unless one with the same content (workspace and sha256)
        exists: returns (the stored document, whether it was created). Atomic, so two
        identical uploads at once store one document."""
        raise NotImplementedError

    def get(self, file_id: str) -> DocumentRecord:
        """The document, or DocumentNotFound."""
        raise NotImplementedError

    def find_by_sha256(self, *, workspace: str, sha256: str) -> DocumentRecord | None:
        raise NotImplementedError

    def list(
        self, *, workspace: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[DocumentRecord]:
        """Newest first (created_at, then file_id, both descending)."""
        raise NotImplementedError

    def count(self, *, workspace: str | None = None) -> int:
        raise NotImplementedError

    def delete(self, file_id: str, *, on_deleted: OnDeleted | None = None) -> DocumentRecord:
        """Remove the document; call `on_deleted` once the removal is durable."""
        raise NotImplementedError

    def ping(self) -> bool:
        """True when the backend can be read; raises RegistryUnavailable with the reason."""
        raise NotImplementedError

    def _async(self, method: Callable, *args: object, **kwargs: object):
        return sync_to_async(method, thread_sensitive=self.thread_sensitive)(*args, **kwargs)

    async def aupsert(self, record: DocumentRecord) -> DocumentRecord:
        return await self._async(self.upsert, record)

    async def acreate(self, record: DocumentRecord) -> tuple[DocumentRecord, bool]:
        return await self._async(self.create, record)

    async def aget(self, file_id: str) -> DocumentRecord:
        return await self._async(self.get, file_id)

    async def afind_by_sha256(self, *, workspace: str, sha256: str) -> DocumentRecord | None:
        return await self._async(self.find_by_sha256, workspace=workspace, sha256=sha256)

    async def alist(
        self, *, workspace: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[DocumentRecord]:
        return await self._async(self.list, workspace=workspace, limit=limit, offset=offset)

    async def acount(self, *, workspace: str | None = None) -> int:
        return await self._async(self.count, workspace=workspace)

    async def adelete(self, file_id: str, *, on_deleted: OnDeleted | None = None) -> DocumentRecord:
        return await self._async(self.delete, file_id, on_deleted=on_deleted)

    async def aping(self) -> bool:
        return await self._async(self.ping)
