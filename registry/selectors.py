"""Reads of the registry, whichever backend is live, limited to what the caller's scope
may see (registry/scopes.py)."""

from __future__ import annotations

from dataclasses import dataclass

from registry.backends import get_backend
from registry.backends.base import NO_COLUMNS, Columns, Joined
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
    record, _ = await document_get_joined(file_id=file_id, scope=scope, columns=NO_COLUMNS)
    return record


async def document_get_joined(
    *, file_id: str, scope: Scope, columns: Columns
) -> tuple[DocumentRecord, Joined | None]:
    """`document_get`, and the columns' values read with it where the registry can
    (RegistryBackend.aget_joined; None: read them yourself)."""
    record, joined = await get_backend().aget_joined(file_id, columns)
    if not scope.sees(record.workspace):
        raise DocumentNotFound(file_id)
    return record, joined


async def document_list(
    *, workspace: str | None, scope: Scope, limit: int, offset: int
) -> DocumentPage:
    """A page of the workspace's documents (`*`: of every workspace of the scope; None:
    see Scope.reads)."""
    page, _ = await document_list_joined(
        workspace=workspace, scope=scope, limit=limit, offset=offset, columns=NO_COLUMNS
    )
    return page


async def document_list_joined(
    *, workspace: str | None, scope: Scope, limit: int, offset: int, columns: Columns
) -> tuple[DocumentPage, list[Joined] | None]:
    """`document_list`, and each document's columns read with it where the registry can
    (RegistryBackend.apage_joined; None: read them yourself)."""
    names = scope.reads(workspace)
    items, joined, total = await get_backend().apage_joined(
        workspace=names, limit=limit, offset=offset, columns=columns
    )
    return DocumentPage(items=items, total=total, limit=limit, offset=offset), joined
