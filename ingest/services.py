"""Writes and questions that span the registry and the vectors.

The registry and data/vec.json never disagree for long: vectors are written before the
registry row and removed again if the row cannot be written; a delete removes vectors
only once the row's deletion is durable. CPU-heavy steps (parsing, embedding, writing
vec.json) run in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
from django.conf import settings

from ingest.answering import Answer, extractive_answer
from ingest.chunking import chunk_text
from ingest.embeddings import get_embedder
from ingest.exceptions import ContentTooLarge, EmptyDocument
from ingest.extraction import Extracted, extract
from ingest.fetching import fetch_url
from ingest.vector_store import get_vector_store
from registry.backends import get_backend
from registry.exceptions import DocumentNotFound, RegistryError
from registry.models import new_file_id
from registry.records import FILENAME_MAX, DocumentRecord, is_valid_workspace, now_seconds

logger = logging.getLogger(__name__)

_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


class InvalidWorkspace(RegistryError):
    def __init__(self, workspace: str) -> None:
        super().__init__(
            f"Invalid workspace {workspace!r}: use 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )


@dataclass(frozen=True)
class Ingested:
    document: DocumentRecord
    created: bool


def check_workspace(workspace: str) -> str:
    if not is_valid_workspace(workspace):
        raise InvalidWorkspace(workspace)
    return workspace


def clean_filename(name: str, *, fallback: str = "document") -> str:
    """A display name safe to store and show: no path, no control characters."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE_FILENAME.sub(" ", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[:FILENAME_MAX] or fallback


def _prepare(
    data: bytes, filename: str, content_type: str, charset: str | None
) -> tuple[Extracted, list[str], np.ndarray]:
    extracted = extract(data, filename=filename, content_type=content_type, charset=charset)
    chunks = chunk_text(
        extracted.text, size=settings.CHUNK_SIZE_WORDS, overlap=settings.CHUNK_OVERLAP_WORDS
    )
    if not chunks:
        raise EmptyDocument("No text to index: the document is empty")
    return extracted, chunks, get_embedder().embed(chunks)


async def document_ingest(
    *,
    data: bytes,
    filename: str,
    workspace: str,
    content_type: str = "",
    charset: str | None = None,
    source: str = "file",
    url: str = "",
) -> Ingested:
    """Index a document, or return the one already holding the same bytes in this
    workspace (`created` False)."""
    check_workspace(workspace)
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise ContentTooLarge(f"The document is over the {settings.MAX_UPLOAD_MB} MB limit")
    sha256 = hashlib.sha256(data).hexdigest()
    backend = get_backend()
    existing = await backend.afind_by_sha256(workspace=workspace, sha256=sha256)
    if existing is not None:
        return Ingested(existing, created=False)

    extracted, chunks, vectors = await asyncio.to_thread(
        _prepare, data, filename, content_type, charset
    )
    if source == "url" and not filename:
        filename = extracted.title or urlsplit(url).hostname or "page"
    file_id = new_file_id()
    store = get_vector_store()
    await asyncio.to_thread(
        store.add, file_id=file_id, workspace=workspace, texts=chunks, vectors=vectors
    )
    now = now_seconds()
    record = DocumentRecord(
        file_id=file_id,
        filename=clean_filename(filename),
        size_bytes=len(data),
        workspace=workspace,
        num_chunks=len(chunks),
        indexed=True,
        created_at=now,
        updated_at=now,
        source=source,
        url=url,
        content_type=extracted.content_type,
        sha256=sha256,
    )
    try:
        stored, created = await backend.acreate(record)
    except BaseException:
        await asyncio.to_thread(store.remove, file_id)
        raise
    if not created:
        # An identical upload won the race: keep its vectors, drop ours.
        await asyncio.to_thread(store.remove, file_id)
    return Ingested(stored, created)


async def document_ingest_url(*, url: str, workspace: str) -> Ingested:
    check_workspace(workspace)
    resource = await fetch_url(url)
    return await document_ingest(
        data=resource.data,
        filename=resource.filename,
        workspace=workspace,
        content_type=resource.content_type,
        charset=resource.charset,
        source="url",
        url=resource.url,
    )


def remove_vectors(file_ids: list[str]) -> None:
    """Remove these documents' vectors after their rows are gone. A failure is logged,
    not raised: the rows are already deleted, orphan vectors are never cited (answers
    check the registry) and `check_registry --fix` removes them."""
    try:
        get_vector_store().remove_many(file_ids)
    except Exception:
        logger.exception("vectors of deleted documents %s were not removed", file_ids)


def _remove_vectors(record: DocumentRecord) -> None:
    remove_vectors([record.file_id])


def document_delete(*, file_id: str) -> DocumentRecord:
    """Delete the registry row, then (once that is durable) the document's vectors."""
    return get_backend().delete(file_id, on_deleted=_remove_vectors)


async def adocument_delete(*, file_id: str) -> DocumentRecord:
    return await get_backend().adelete(file_id, on_deleted=_remove_vectors)


async def answer_question(*, question: str, workspace: str | None, top_k: int) -> Answer:
    """An extractive answer from the best chunks, citing only documents that exist."""
    if workspace is not None:
        check_workspace(workspace)
    embedder = get_embedder()
    store = get_vector_store()
    query = (await asyncio.to_thread(embedder.embed, [question]))[0]
    if not query.any():
        return extractive_answer(question, [], embedder)
    # Ask for more than top_k: hits of documents deleted a moment ago are dropped below.
    hits = await asyncio.to_thread(store.search, query, workspace=workspace, top_k=top_k * 3)
    backend = get_backend()
    documents: dict[str, DocumentRecord | None] = {}
    for hit in hits:
        if hit.file_id not in documents:
            try:
                documents[hit.file_id] = await backend.aget(hit.file_id)
            except DocumentNotFound:
                documents[hit.file_id] = None
    cited = [(hit, documents[hit.file_id]) for hit in hits if documents[hit.file_id]]
    return await asyncio.to_thread(extractive_answer, question, cited[:top_k], embedder)
