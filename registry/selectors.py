"""Reads of the registry, whichever backend is live."""

from __future__ import annotations

from registry.backends import get_backend
from registry.records import DocumentRecord


async def document_get(*, file_id: str) -> DocumentRecord:
    return await get_backend().aget(file_id)


async def document_list(
    *, workspace: str | None, limit: int, offset: int
) -> tuple[list[DocumentRecord], int]:
    """One page of documents, newest first, and the total they are a page of."""
    backend = get_backend()
    items = await backend.alist(workspace=workspace, limit=limit, offset=offset)
    return items, await backend.acount(workspace=workspace)
