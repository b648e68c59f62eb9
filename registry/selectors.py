"""Reads of the registry, whichever backend is live."""

from __future__ import annotations

from dataclasses import dataclass

from registry.backends import get_backend
from registry.records import DocumentRecord, workspace_filter


@dataclass(frozen=True)
class DocumentPage:
    """One page of documents, newest first, and the total they are a page of."""

    items: list[DocumentRecord]
    total: int
    limit: int
    offset: int


async def document_get(*, file_id: str) -> DocumentRecord:
    return await get_backend().aget(file_id)


async def document_list(*, workspace: str, limit: int, offset: int) -> DocumentPage:
    """A page of the workspace's documents (`*`: of every workspace)."""
    scope = workspace_filter(workspace)
    items, total = await get_backend().apage(workspace=scope, limit=limit, offset=offset)
    return DocumentPage(items=items, total=total, limit=limit, offset=offset)
