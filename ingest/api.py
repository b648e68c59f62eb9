"""The API's operations: ingest (now, or in the background), ask, the documents' list,
read and delete, and the background jobs. Thin: each parses, calls one service or
selector, and shapes the answer in camelCase."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from django.conf import settings
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from ninja import File, Form, Path, Query, Router, UploadedFile
from ninja.responses import Status

from ingest.answers.asking import AnswerEvent, answer_question, retrieve, stream_answer
from ingest.answers.extractive import Answer, Source
from ingest.exceptions import ContentTooLarge
from ingest.jobs import selectors as job_selectors
from ingest.jobs.queueing import Queued, ingest_in_background
from ingest.jobs.selectors import PendingJob
from ingest.models import IngestJob
from ingest.preparing import Upload, fetch_upload
from ingest.schemas import (
    NO_NUL,
    AskIn,
    AskOut,
    DeletedOut,
    DeleteIn,
    DocumentListOut,
    DocumentOut,
    IngestOut,
    JobFilters,
    JobListOut,
    JobOut,
    ListFilters,
    SourceOut,
    UploadForm,
    UrlIn,
    error_responses,
    responses,
)
from ingest.services import (
    Stored,
    adocument_delete_many,
    document_ingest,
    document_original,
    original_response,
)
from ingest.stores.base import Removed
from registry.audit import actor_of
from registry.auth import api_key_auth, delete_key_auth, ingest_key_auth, scope_of
from registry.exceptions import DocumentNotFound
from registry.records import FILE_ID_MAX, DocumentRecord

router = Router(tags=["ingest"], auth=api_key_auth, by_alias=True)
documents_router = Router(tags=["documents"], auth=api_key_auth, by_alias=True)
jobs_router = Router(tags=["jobs"], auth=api_key_auth, by_alias=True)

FileIdPath = Path(..., alias="fileId", max_length=FILE_ID_MAX, pattern=NO_NUL)
JobIdPath = Path(..., alias="jobId", max_length=64, pattern=NO_NUL)
TRUE = {"1", "true", "yes", "on"}
# The other two ways to ask for a background ingest, beside the body's `async`.
IN_BACKGROUND = {
    "parameters": [
        {
            "in": "query",
            "name": "async",
            "required": False,
            "schema": {"type": "boolean", "default": False},
            "description": "true: index in the background (202 and a job), as the body's async",
        },
        {
            "in": "header",
            "name": "Prefer",
            "required": False,
            "schema": {"type": "string"},
            "example": "respond-async",
            "description": "respond-async (RFC 7240): index in the background, as async",
        },
    ]
}


def _ingested(result: Stored) -> dict[str, Any]:
    document = result.document
    return {
        **document.fields(),
        "chunks": document.num_chunks,
        "created": result.created,
        "copy_of": result.copy_of,
    }


def _in_background(request: HttpRequest, asked: bool) -> bool:
    """Whether the client asked for a background ingest: the body's `async`, the query's
    `?async=true`, or `Prefer: respond-async` (RFC 7240)."""
    prefer = request.headers.get("Prefer", "")
    preferences = {part.split("=")[0].strip().lower() for part in prefer.split(",")}
    return asked or request.GET.get("async", "").lower() in TRUE or "respond-async" in preferences


def _job(job: IngestJob, document: DocumentRecord | None = None) -> dict[str, Any]:
    failed = job.status == IngestJob.Status.FAILED
    return {
        "job_id": job.job_id,
        "status": job.status,
        "file_id": job.file_id,
        "filename": job.name,
        "workspace": job.workspace,
        "progress": {
            "chunks_done": job.chunks_done,
            "chunks_total": job.chunks_total,
            "pages_done": job.pages_done,
            "pages_total": job.pages_total,
        },
        "attempts": job.attempts,
        "error": {"status": job.error_status, "detail": job.error_detail} if failed else None,
        "document": _document(document) if document is not None else None,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
    }


def _document(record: DocumentRecord, job: PendingJob | None = None) -> dict[str, Any]:
    pending = {"job_id": job.job_id, "status": job.status} if job is not None else None
    return {**record.fields(), "job": pending}


async def _accepted(queued: Queued, response: HttpResponse) -> Any:
    """202 with the job; or, when the workspace already holds these bytes indexed, the
    synchronous answer for them (200, `created: false`)."""
    if queued.job is None:
        return _ingested(Stored(queued.document, created=False))
    response["Location"] = f"/jobs/{queued.job.job_id}"
    response["Preference-Applied"] = "respond-async"
    return Status(202, _job(queued.job))


def _deleted(file_id: str, result: Removed) -> dict[str, Any]:
    document = result.documents[0] if result.documents else None
    return {
        "removed": result.chunks,
        "deleted": document is not None,
        "file_id": file_id,
        "filename": document.filename if document else None,
    }


@router.post(
    "/ingest/file",
    auth=ingest_key_auth,
    response=responses(IngestOut, 400, 409, 413, 415, accepted=JobOut),
    openapi_extra=IN_BACKGROUND,
)
async def ingest_file(
    request: HttpRequest,
    response: HttpResponse,
    file: File[UploadedFile],
    form: Form[UploadForm],
) -> Any:
    """Upload a document and index it: text, Markdown, HTML, PDF (scanned pages read by
    OCR), Word, PowerPoint, Excel, CSV/TSV, OpenDocument, EPUB, RTF, e-mail (.eml) or an
    image of text (PNG, JPEG, TIFF). Send scans with `async`: OCR takes seconds a page.
    When the same content is already in the workspace, that document is returned with
    `created: false`.

    With `async` (see the field), 202 at once with the job that indexes it (its
    `Location`), once what needs no parsing is checked (size, type, workspace, id); the
    same bytes sent while their job is pending get that job."""
    if file.size is not None and file.size > settings.MAX_UPLOAD_BYTES:
        raise ContentTooLarge(f"The file is over the {settings.MAX_UPLOAD_MB} MB upload limit")
    upload = Upload(
        data=await asyncio.to_thread(file.read),
        filename=file.name or "",
        workspace=form.workspace,
        content_type=file.content_type or "",
        charset=file.charset,
        file_id=form.file_id,
    )
    actor, scope = actor_of(request), scope_of(request)
    if _in_background(request, form.in_background):
        queued = await ingest_in_background(upload, actor=actor, scope=scope)
        return await _accepted(queued, response)
    return _ingested(await document_ingest(upload, actor=actor, scope=scope))


@router.post(
    "/ingest/url",
    auth=ingest_key_auth,
    response=responses(IngestOut, 400, 409, 413, 415, accepted=JobOut),
    openapi_extra=IN_BACKGROUND,
)
async def ingest_url(request: HttpRequest, response: HttpResponse, payload: UrlIn) -> Any:
    """Fetch a public http(s) URL and index it, like an upload. With `async`, the page is
    fetched now (its address and its answer are checked at once) and indexed by a job."""
    actor, scope = actor_of(request), scope_of(request)
    upload = await fetch_upload(
        url=payload.file_url,
        filename=payload.filename,
        workspace=payload.workspace,
        file_id=payload.file_id,
        scope=scope,
    )
    if _in_background(request, payload.in_background):
        queued = await ingest_in_background(upload, actor=actor, scope=scope)
        return await _accepted(queued, response)
    return _ingested(await document_ingest(upload, actor=actor, scope=scope))


@router.post("/ask", response=responses(AskOut, 400, 502))
async def ask(request: HttpRequest, payload: AskIn) -> Answer | StreamingHttpResponse:
    """Answer from the documents, with the sources the answer cites: extractive
    sentences, or a model's answer (ANSWER_GENERATOR). With `"stream": true` or `Accept:
    text/event-stream`, server-sent events instead (see `stream`)."""
    scope = scope_of(request)
    if payload.stream or "text/event-stream" in request.headers.get("Accept", ""):
        # Retrieval errors (a 503 store, say) are still plain JSON errors: they happen
        # before the first event.
        retrieved = await retrieve(
            question=payload.q, workspace=payload.workspace, top_k=payload.k, scope=scope
        )
        response = StreamingHttpResponse(
            _server_sent(stream_answer(retrieved)), content_type="text/event-stream"
        )
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
        return response
    return await answer_question(
        question=payload.q, workspace=payload.workspace, top_k=payload.k, scope=scope
    )


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
async def list_documents(request: HttpRequest, filters: Query[ListFilters]) -> dict[str, Any]:
    """Documents newest first; `total` counts every document matching the filter. One
    being ingested in the background is listed with `indexed: false` and its `job`."""
    page, jobs = await job_selectors.documents_with_jobs(
        workspace=filters.workspace,
        scope=scope_of(request),
        limit=filters.limit,
        offset=filters.offset,
    )
    return {
        "items": [_document(record, job) for record, job in zip(page.items, jobs, strict=True)],
        "total": page.total,
        "limit": page.limit,
        "offset": page.offset,
    }


@documents_router.get("/documents/{fileId}", response=responses(DocumentOut, 404))
async def get_document(request: HttpRequest, file_id: str = FileIdPath) -> dict[str, Any]:
    record, job = await job_selectors.document_with_job(file_id=file_id, scope=scope_of(request))
    return _document(record, job)


@documents_router.get(
    "/documents/{fileId}/file",
    response=error_responses(404),
    openapi_extra={
        "responses": {
            200: {
                "description": "The file as it was uploaded, with its content type and "
                "its name in Content-Disposition (PDFs and images inline: a PDF "
                "opens at a cited page with #page=N).",
                "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            }
        }
    },
)
async def get_document_file(request: HttpRequest, file_id: str = FileIdPath) -> HttpResponse:
    """The document's original file; 404 for an unknown id (or one of a workspace the key
    cannot see), or when no original was kept (a document imported from the old
    registry)."""
    record, data = await document_original(file_id=file_id, scope=scope_of(request))
    return original_response(record, data)


@documents_router.delete(
    "/documents/{fileId}", auth=delete_key_auth, response=responses(DeletedOut, 400, 404)
)
async def delete_document(request: HttpRequest, file_id: str = FileIdPath) -> dict[str, Any]:
    """Remove the document and all its vectors; 404 for an unknown id (or one of a
    workspace the key cannot see)."""
    result = await adocument_delete_many(
        file_ids=[file_id], actor=actor_of(request), scope=scope_of(request)
    )
    if not result.documents:
        raise DocumentNotFound(file_id)
    return _deleted(file_id, result)


@documents_router.post("/delete", auth=delete_key_auth, response=responses(DeletedOut, 400))
async def delete(request: HttpRequest, payload: DeleteIn) -> dict[str, Any]:
    """Remove the document and all its vectors. An unknown id (or one of a workspace the
    key cannot see) is not an error here, as in the old service: the answer says
    `removed: 0, deleted: false`."""
    result = await adocument_delete_many(
        file_ids=[payload.file_id], actor=actor_of(request), scope=scope_of(request)
    )
    return _deleted(payload.file_id, result)


@jobs_router.get("/jobs/{jobId}", response=responses(JobOut, 404))
async def get_job(request: HttpRequest, job_id: str = JobIdPath) -> dict[str, Any]:
    """A background ingest: its status, progress, attempts, and how it ended (the
    document, or the error the synchronous ingest would have answered)."""
    scope = scope_of(request)
    job = await job_selectors.job_get(job_id, scope=scope)
    document = (await job_selectors.documents_of([job], scope=scope)).get(job.file_id)
    return _job(job, document)


@jobs_router.get("/jobs", response=responses(JobListOut, 400))
async def list_jobs(request: HttpRequest, filters: Query[JobFilters]) -> dict[str, Any]:
    """Background ingests newest first, by status and workspace if given."""
    scope = scope_of(request)
    page, total = await job_selectors.job_page(
        status=filters.status,
        workspace=filters.workspace,
        limit=filters.limit,
        offset=filters.offset,
        scope=scope,
    )
    documents = await job_selectors.documents_of(page, scope=scope)
    return {
        "items": [_job(job, documents.get(job.file_id)) for job in page],
        "total": total,
        "limit": filters.limit,
        "offset": filters.offset,
    }
