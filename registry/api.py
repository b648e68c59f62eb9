from __future__ import annotations

from django.http import HttpRequest
from ninja import Query, Router, Schema
from pydantic import Field

from ingest.services import adocument_delete, check_workspace
from registry.auth import api_key_auth
from registry.schemas import DeletedOut, DeleteIn, DocumentListOut, DocumentOut
from registry.selectors import document_get, document_list

router = Router(tags=["documents"], auth=api_key_auth)


class ListFilters(Schema):
    workspace: str | None = Field(None, max_length=64)
    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0)


@router.get("/documents", response=DocumentListOut)
async def list_documents(request: HttpRequest, filters: Query[ListFilters]) -> DocumentListOut:
    """Documents newest first; `total` counts every document matching the filter."""
    if filters.workspace is not None:
        check_workspace(filters.workspace)
    items, total = await document_list(
        workspace=filters.workspace, limit=filters.limit, offset=filters.offset
    )
    return DocumentListOut(items=items, total=total, limit=filters.limit, offset=filters.offset)


@router.get("/documents/{file_id}", response=DocumentOut)
async def get_document(request: HttpRequest, file_id: str) -> DocumentOut:
    return await document_get(file_id=file_id)


@router.delete("/documents/{file_id}", response=DeletedOut)
async def delete_document(request: HttpRequest, file_id: str) -> DeletedOut:
    """Remove the document and all its vectors."""
    record = await adocument_delete(file_id=file_id)
    return DeletedOut(file_id=record.file_id, filename=record.filename)


@router.post("/delete", response=DeletedOut)
async def delete(request: HttpRequest, payload: DeleteIn) -> DeletedOut:
    """Remove the document and all its vectors (the legacy spelling of DELETE)."""
    record = await adocument_delete(file_id=payload.file_id)
    return DeletedOut(file_id=record.file_id, filename=record.filename)
