from __future__ import annotations

import asyncio

from django.conf import settings
from django.http import HttpRequest
from ninja import File, Form, Router, UploadedFile
from ninja.responses import Status

from ingest.exceptions import ContentTooLarge
from ingest.schemas import AskIn, AskOut, UrlIn
from ingest.services import Ingested, answer_question, document_ingest, document_ingest_url
from registry.auth import api_key_auth
from registry.records import DEFAULT_WORKSPACE
from registry.schemas import DocumentOut

router = Router(tags=["ingest"], auth=api_key_auth)


def _created_or_existing(result: Ingested) -> Status[DocumentOut]:
    return Status(201 if result.created else 200, DocumentOut.from_orm(result.document))


@router.post("/ingest/file", response={200: DocumentOut, 201: DocumentOut})
async def ingest_file(
    request: HttpRequest,
    file: File[UploadedFile],
    workspace: Form[str] = DEFAULT_WORKSPACE,
) -> Status[DocumentOut]:
    """Upload a .txt, .md, .html or .pdf document. 201 when indexed, 200 when the same
    content is already in the workspace (the existing document is returned)."""
    if file.size is not None and file.size > settings.MAX_UPLOAD_BYTES:
        raise ContentTooLarge(f"The file is over the {settings.MAX_UPLOAD_MB} MB upload limit")
    data = await asyncio.to_thread(file.read)
    result = await document_ingest(
        data=data,
        filename=file.name or "",
        workspace=workspace,
        content_type=file.content_type or "",
        charset=file.charset,
    )
    return _created_or_existing(result)


@router.post("/ingest/url", response={200: DocumentOut, 201: DocumentOut})
async def ingest_url(request: HttpRequest, payload: UrlIn) -> Status[DocumentOut]:
    """Fetch a public http(s) URL and index it, like an upload."""
    result = await document_ingest_url(url=payload.url, workspace=payload.workspace)
    return _created_or_existing(result)


@router.post("/ask", response=AskOut)
async def ask(request: HttpRequest, payload: AskIn) -> AskOut:
    """Answer from the documents: the best-matching sentences, with their sources."""
    answer = await answer_question(
        question=payload.question, workspace=payload.workspace, top_k=payload.top_k
    )
    return AskOut(answer=answer.answer, sources=answer.sources)
