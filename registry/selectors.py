"""Reads of the registry, whichever backend is live, limited to what the caller's scope
may see (registry/scopes.py)."""

from __future__ import annotations

from dataclasses import dataclass

from registry.backends import get_backend
from registry.exceptions import DocumentNotFound
from registry.records import DocumentRecord
from registry.scopes import Scope


@dataclass(frozen=True)
class DocumentPage:
    """One page of documents, newest first, and the total they are a page of."""

    items: list[DocumentRecord]
    total: int
    limit: int
    offset: int


async def document_get(*, file_id: str, scope: Scope) -> DocumentRecord:
    """The document, or DocumentNotFound: also for one of a workspace outside the scope,
    in the same words, so that a key cannot tell the two apart."""
    record = await get_backend().aget(file_id)
    if not scope.sees(record.workspace):
        raise DocumentNotFound(file_id)
    return record


async def document_list(
    *, workspace: str | None, scope: Scope, limit: int, offset: int
) -> DocumentPage:
    """A page of the workspace's documents (`*`: of every workspace of the scope; None:
    see Scope.reads)."""
    names = scope.reads(workspace)
    items, total = await get_backend().apage(workspace=names, limit=limit, offset=offset)
    return DocumentPage(items=items, total=total, limit=limit, offset=offset)
