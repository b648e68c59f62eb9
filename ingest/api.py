"""The API's operations: ingest, ask, and the documents' list, read and delete. Thin: each
parses, calls one service or selector, and shapes the answer in camelCase."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, StreamingHttpResponse
from ninja import File, Form, Path, Query, Router, UploadedFile

from ingest.answers.extractive import Answer, Source
from ingest.exceptions import ContentTooLarge
from ingest.schemas import (
    NO_NUL,
    AskIn,
    AskOut,
    DeletedOut,
    DeleteIn,
    DocumentListOut,
    DocumentOut,
    IngestOut,
    ListFilters,
    SourceOut,
    UploadForm,
    UrlIn,
    responses,
)
from ingest.services import (
    AnswerEvent,
    Ingested,
    adocument_delete_many,
    answer_question,
    document_ingest,
    document_ingest_url,
    retrieve,
    stream_answer,
)
from ingest.stores.base import Removed
from registry.auth import api_key_auth
from registry.exceptions import DocumentNotFound
from registry.records import FILE_ID_MAX, DocumentRecord
from registry.selectors import DocumentPage, document_get, document_list

router = Router(tags=["ingest"], auth=api_key_auth, by_alias=True)
documents_router = Router(tags=["documents"], auth=api_key_auth, by_alias=True)

FileIdPath = Path(..., alias="fileId", max_length=FILE_ID_MAX, pattern=NO_NUL)


def _ingested(result: Ingested) -> dict[str, Any]:
    document = result.document
    return {
        **dataclasses.asdict(document),
        "chunks": document.num_chunks,
        "created": result.created,
    }


def _deleted(file_id: str, result: Removed) -> dict[str, Any]:
    document = result.documents[0] if result.documents else None
    return {
        "removed": result.chunks,
        "deleted": document is not None,
        "file_id": file_id,
        "filename": document.filename if document else None,
    }


@router.post("/ingest/file", response=responses(IngestOut, 400, 409, 413, 415))
async def ingest_file(
    request: HttpRequest,
    file: File[UploadedFile],
    form: Form[UploadForm],
) -> dict[str, Any]:
    """Upload a .txt, .md, .html or .pdf document and index it. When the same content is
    already in the workspace, that document is returned with `created: false`."""
    if file.size is not None and file.size > settings.MAX_UPLOAD_BYTES:
        raise ContentTooLarge(f"The file is over the {settings.MAX_UPLOAD_MB} MB upload limit")
    data = await asyncio.to_thread(file.read)
    result = await document_ingest(
        data=data,
        filename=file.name or "",
        workspace=form.workspace,
        content_type=file.content_type or "",
        charset=file.charset,
        file_id=form.file_id,
    )
    return _ingested(result)


@router.post("/ingest/url", response=responses(IngestOut, 400, 409, 413, 415))
async def ingest_url(request: HttpRequest, payload: UrlIn) -> dict[str, Any]:
    """Fetch a public http(s) URL and index it, like an upload."""
    result = await document_ingest_url(
        url=payload.file_url,
        workspace=payload.workspace,
        filename=payload.filename,
        file_id=payload.file_id,
    )
    return _ingested(result)


@router.post("/ask", response=responses(AskOut, 400, 502))
async def ask(request: HttpRequest, payload: AskIn) -> Answer | StreamingHttpResponse:
    """Answer from the documents, with the sources the answer cites: extractive
    sentences, or a model's answer (ANSWER_GENERATOR). With `"stream": true` or `Accept:
    text/event-stream`, server-sent events instead (see `stream`)."""
    if payload.stream or "text/event-stream" in request.headers.get("Accept", ""):
        # Retrieval errors (a 503 store, say) are still plain JSON errors: they happen
        # before the first event.
        retrieved = await retrieve(question=payload.q, workspace=payload.workspace, top_k=payload.k)
        response = StreamingHttpResponse(
            _server_sent(stream_answer(retrieved)), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response
    return await answer_question(question=payload.q, workspace=payload.workspace, top_k=payload.k)


async def _server_sent(events: AsyncIterator[AnswerEvent]) -> AsyncIterator[bytes]:
    async for event in events:
        data = {
            key: [_source(source) for source in value] if key == "sources" else value
            for key, value in event.data.items()
        }
        yield b"event: " + event.event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _source(source: Source) -> dict[str, Any]:
    return SourceOut.model_validate(source, from_attributes=True).model_dump(by_alias=True)


@documents_router.get("/documents", response=responses(DocumentListOut, 400))
async def list_documents(request: HttpRequest, filters: Query[ListFilters]) -> DocumentPage:
    """Documents newest first; `total` counts every document matching the filter."""
    return await document_list(
        workspace=filters.workspace, limit=filters.limit, offset=filters.offset
    )


@documents_router.get("/documents/{fileId}", response=responses(DocumentOut, 404))
async def get_document(request: HttpRequest, file_id: str = FileIdPath) -> DocumentRecord:
    return await document_get(file_id=file_id)


@documents_router.delete("/documents/{fileId}", response=responses(DeletedOut, 400, 404))
async def delete_document(request: HttpRequest, file_id: str = FileIdPath) -> dict[str, Any]:
    """Remove the document and all its vectors; 404 for an unknown id."""
    result = await adocument_delete_many(file_ids=[file_id])
    if not result.documents:
        raise DocumentNotFound(file_id)
    return _deleted(file_id, result)


@documents_router.post("/delete", response=responses(DeletedOut, 400))
async def delete(request: HttpRequest, payload: DeleteIn) -> dict[str, Any]:
    """Remove the document and all its vectors. An unknown id is not an error here (as in
    the old service): the answer says `removed: 0, deleted: false`."""
    return _deleted(payload.file_id, await adocument_delete_many(file_ids=[payload.file_id]))
