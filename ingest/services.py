"""Writes and questions that span the registry and the vectors: one service per operation,
called by the API, the admin and the commands alike.

The registry and the vector store never disagree for long: a document's row and its
chunks are written, and deleted, through one unit of work of the store
(ingest/stores/base.py), which keeps them in step. CPU-heavy steps (parsing,
embedding, writing the store) run in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import unicodedata
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from ingest.answers.extractive import (
    NO_ANSWER,
    Answer,
    EmbedSentences,
    Relevance,
    extractive_answer,
)
from ingest.answers.generation import EMPTY_RESPONSE, Prompt, build_prompt, cited, get_generator
from ingest.exceptions import (
    ContentConflict,
    ContentTooLarge,
    EmptyDocument,
    GenerationFailed,
)
from ingest.models import REPLACED, IngestJob
from ingest.search.embeddings import get_embedder
from ingest.search.fusion import searchable
from ingest.search.lexical import terms
from ingest.sources.chunking import chunk_sections
from ingest.sources.extraction import Extracted, extract
from ingest.sources.fetching import fetch_url
from ingest.stores import get_vector_store
from ingest.stores.base import ChunkHit, Removed, StoredChunks
from registry.backends import get_backend
from registry.backends.base import RegistryBackend
from registry.exceptions import FileIdTaken
from registry.models import AuditEvent, new_file_id
from registry.records import (
    FILENAME_MAX,
    DocumentRecord,
    SourceKind,
    check_file_id,
    now_seconds,
)
from registry.scopes import EVERYTHING, Scope

logger = logging.getLogger(__name__)

_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


@dataclass(frozen=True)
class Ingested:
    document: DocumentRecord
    created: bool
    copy_of: str | None = None  # the document that held these bytes when a new id was asked
    # What the audit trail records of it (ingest, re-ingest), None when nothing was stored.
    action: str | None = None


def clean_filename(name: str, *, fallback: str = "document") -> str:
    """A display name safe to store and show: no path, no control characters."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE_FILENAME.sub(" ", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[:FILENAME_MAX] or fallback


@dataclass(frozen=True)
class Cut:
    """A document read and cut into chunks, each carrying its section's headings."""

    extracted: Extracted
    texts: list[str]
    contexts: list[str]

    def searchable(self) -> list[str]:
        """What is embedded for each chunk: its headings, then its text."""
        return [searchable(c, t) for c, t in zip(self.contexts, self.texts, strict=True)]


@dataclass(frozen=True)
class Prepared:
    """A document read, cut and embedded, before anything is stored."""

    extracted: Extracted
    texts: list[str]
    contexts: list[str]
    vectors: np.ndarray


def cut(data: bytes, filename: str, content_type: str, charset: str | None) -> Cut:
    """Extract the text and cut each section into chunks; EmptyDocument if none."""
    extracted = extract(data, filename=filename, content_type=content_type, charset=charset)
    texts, contexts = chunk_sections(
        extracted.sections, size=settings.CHUNK_SIZE_WORDS, overlap=settings.CHUNK_OVERLAP_WORDS
    )
    if not texts:
        raise EmptyDocument("No text to index: the document is empty")
    return Cut(extracted, texts, contexts)


def prepare(data: bytes, filename: str, content_type: str, charset: str | None) -> Prepared:
    """cut(), then embed each chunk with its headings."""
    pieces = cut(data, filename, content_type, charset)
    vectors = get_embedder().embed(pieces.searchable())
    return Prepared(pieces.extracted, pieces.texts, pieces.contexts, vectors)


@dataclass(frozen=True)
class Admitted:
    """An upload that may be ingested: its checksum, and what the registry holds of it."""

    sha256: str
    same_content: DocumentRecord | None  # holds these bytes in the workspace (no id given)
    previous: DocumentRecord | None  # the document a client-chosen id re-ingests
    copy_of: str | None = None  # a new id asked for bytes this document holds


async def admit(
    *, data: bytes, workspace: str, file_id: str | None, scope: Scope = EVERYTHING
) -> Admitted:
    """The checks an upload passes before it is read: the workspace, the id, the size,
    and that no other document of the workspace holds the content a client-chosen id
    would re-ingest (ContentConflict). A new id asked for content the workspace holds is
    a copy, made as asked (the old service's behaviour). An id of a document the scope
    cannot see is taken (FileIdTaken), in words that do not say where."""
    scope.writes(workspace)
    if file_id is not None:
        check_file_id(file_id)
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise ContentTooLarge(f"The document is over the {settings.MAX_UPLOAD_MB} MB limit")
    sha256 = hashlib.sha256(data).hexdigest()
    backend = get_backend()
    same_content = await backend.afind_by_sha256(workspace=workspace, sha256=sha256)
    if file_id is None:
        return Admitted(sha256, same_content, None)
    previous = (await backend.aget_many([file_id])).get(file_id)
    if previous is not None and not scope.sees(previous.workspace):
        raise FileIdTaken(file_id)
    if same_content is None or same_content.file_id == file_id:
        return Admitted(sha256, None, previous)
    if previous is None:
        return Admitted(sha256, None, None, copy_of=same_content.file_id)
    raise ContentConflict(
        f"Document {same_content.file_id!r} already holds this content in workspace "
        f"{workspace!r}; re-ingest that id or delete it first"
    )


def document_name(filename: str, *, source: str, url: str, title: str = "") -> str:
    """The name a document is listed under: the client's, or for a URL without one the
    page's title, else its host."""
    if source == SourceKind.URL and not filename:
        filename = title or urlsplit(url).hostname or "page"
    return clean_filename(filename)


async def document_ingest(
    *,
    data: bytes,
    filename: str,
    workspace: str | None,
    content_type: str = "",
    charset: str | None = None,
    source: SourceKind = SourceKind.FILE,
    url: str = "",
    file_id: str | None = None,
    scope: Scope = EVERYTHING,
) -> Ingested:
    """Index a document, or return the one already holding the same bytes in this
    workspace (`created` False; one still awaiting its background job is indexed now).
    `workspace` None: the scope's (Scope.writes).

    With a `file_id` the client chose, that document is re-ingested: an existing one's
    chunks and row are replaced (its created_at kept), a new one is created under that
    id (`copy_of` names the document already holding the same bytes, if one does).
    """
    workspace = scope.writes(workspace)
    admitted = await admit(data=data, workspace=workspace, file_id=file_id, scope=scope)
    same = admitted.same_content
    if same is not None and not same.awaiting_chunks:
        return Ingested(same, created=False)
    # A document still awaiting its background job: these bytes are indexed now, in its
    # place (the job is cancelled when the row is written), as for one already there.
    previous = admitted.previous or same
    file_id = previous.file_id if previous else file_id
    prepared = await asyncio.to_thread(prepare, data, filename, content_type, charset)
    now = now_seconds()
    record = DocumentRecord(
        file_id=file_id or new_file_id(),
        filename=document_name(filename, source=source, url=url, title=prepared.extracted.title),
        size_bytes=len(data),
        workspace=workspace,
        num_chunks=len(prepared.texts),
        indexed=True,
        created_at=previous.created_at if previous else now,
        updated_at=now,
        source=source,
        url=url,
        content_type=prepared.extracted.content_type,
        sha256=admitted.sha256,
    )
    backend = get_backend()

    def write_row() -> tuple[DocumentRecord, bool]:
        if previous is None:  # an identical upload may have won the race, unless a copy
            return backend.create(record, copy=admitted.copy_of is not None)
        with transaction.atomic():  # a job still pending for this id is older: it goes
            IngestJob.objects.cancel_for([record.file_id], detail=REPLACED)
            return backend.upsert(record), True

    store = await asyncio.to_thread(get_vector_store)  # may load a model: off the loop
    stored, kept = await store.awrite_document(
        chunks_of(record, prepared.texts, prepared.contexts, prepared.vectors), write_row
    )
    if not kept:
        action = None
    elif previous is None or previous.awaiting_chunks:  # new, or a placeholder filled now
        action = AuditEvent.Action.INGEST
    else:
        action = AuditEvent.Action.REINGEST
    return Ingested(
        stored, created=kept and previous is None, copy_of=admitted.copy_of, action=action
    )


def chunks_of(
    record: DocumentRecord, texts: list[str], contexts: list[str], vectors: np.ndarray
) -> StoredChunks:
    """The chunks a document's record and its embedded texts make."""
    return StoredChunks(
        file_id=record.file_id,
        workspace=record.workspace,
        indexes=list(range(len(texts))),
        texts=texts,
        vectors=vectors,
        contexts=contexts,
    )


async def document_ingest_url(
    *,
    url: str,
    workspace: str | None,
    filename: str | None = None,
    file_id: str | None = None,
    scope: Scope = EVERYTHING,
) -> Ingested:
    workspace = scope.writes(workspace)  # refused before anything is fetched
    if file_id is not None:
        check_file_id(file_id)
    resource = await fetch_url(url)
    return await document_ingest(
        data=resource.data,
        filename=filename or resource.filename,
        workspace=workspace,
        content_type=resource.content_type,
        charset=resource.charset,
        source=SourceKind.URL,
        url=resource.url,
        file_id=file_id,
        scope=scope,
    )


def document_delete_many(
    *,
    file_ids: Collection[str],
    registry: RegistryBackend | None = None,
    scope: Scope = EVERYTHING,
) -> Removed:
    """Delete the documents of these ids that exist, their registry rows and their
    chunks, cancelling their background jobs. Unknown ids, and ids of documents the
    scope cannot see, are skipped. `registry`: the one to delete from, if not the live
    one (import_registry --sync: the database)."""
    scope.require_write("deleting")
    registry = registry or get_backend()
    if scope.workspaces is not None:
        found = registry.get_many(file_ids)
        file_ids = [file_id for file_id, d in found.items() if scope.sees(d.workspace)]
    rows = registry.delete_many
    removed = get_vector_store().remove_documents(file_ids, rows)
    # After: a delete refused (503) cancels nothing. Should this fail, a job finds its
    # document gone when it comes to write it, and is cancelled then.
    IngestJob.objects.cancel_for(file_ids)
    return removed


async def adocument_delete_many(*, file_ids: Collection[str], scope: Scope = EVERYTHING) -> Removed:
    # On the request's sync thread: the rows are the database's (and the store's, for
    # pgvector), and deleting them is one unit of work.
    delete = sync_to_async(document_delete_many, thread_sensitive=True)
    return await delete(file_ids=file_ids, scope=scope)


@dataclass(frozen=True)
class Retrieved:
    """The ranked chunks of a question, with what answering them needs."""

    question: str
    ranked: list[tuple[ChunkHit, DocumentRecord]]
    weights: dict[str, float]
    relevance: Relevance
    embed: EmbedSentences


async def retrieve(
    *, question: str, workspace: str | None, top_k: int, scope: Scope = EVERYTHING
) -> Retrieved:
    """The best chunks of the workspace (`*`: of every workspace of the scope; None: see
    Scope.reads) by hybrid ranking, of documents that exist, best first."""
    names = scope.reads(workspace)
    embedder = get_embedder()
    store = await asyncio.to_thread(get_vector_store)  # may load a model: off the loop
    query_terms = terms(question)
    query = (await asyncio.to_thread(embedder.embed, [question]))[0]
    # Ask for more than top_k: hits of documents deleted a moment ago are dropped below.
    found = await store.asearch(query, query_terms, workspace=names, top_k=top_k * 3)
    documents = await get_backend().aget_many({hit.file_id for hit in found.hits})
    # A document being ingested in the background may have chunks a moment before its
    # row counts them: never cite it before.
    ranked = [
        (hit, documents[hit.file_id])
        for hit in found.hits
        if hit.file_id in documents and not documents[hit.file_id].awaiting_chunks
    ]
    relevance = Relevance(embedder.relevance_floor, embedder.alone_floor)
    return Retrieved(question, ranked[:top_k], found.weights, relevance, embedder.embed)


async def answer_question(
    *, question: str, workspace: str | None, top_k: int, scope: Scope = EVERYTHING
) -> Answer:
    """The answer to a question from the workspace's documents: extractive, or written
    by the ANSWER_GENERATOR model from the retrieved chunks, citing them."""
    retrieved = await retrieve(question=question, workspace=workspace, top_k=top_k, scope=scope)
    generator = get_generator()
    if generator is None:
        return await asyncio.to_thread(_extract, retrieved)
    prompt = await asyncio.to_thread(_prompt, retrieved)  # may embed sentences: off the loop
    if prompt is None:
        return Answer(NO_ANSWER, [])
    text = await generator.complete(prompt)
    return Answer(text, cited(text, prompt.sources))


def _extract(retrieved: Retrieved) -> Answer:
    return extractive_answer(
        retrieved.question,
        retrieved.ranked,
        weights=retrieved.weights,
        relevance=retrieved.relevance,
        embed=retrieved.embed,
    )


def _prompt(retrieved: Retrieved) -> Prompt | None:
    """The prompt for a model, or None when no chunk is evidence (no model is asked)."""
    found = _extract(retrieved)
    if not found.sources:
        return None
    return build_prompt(
        retrieved.question, found.sources, budget_tokens=settings.GENERATION_CONTEXT_TOKENS
    )


@dataclass(frozen=True)
class AnswerEvent:
    """One server-sent event of a streamed answer."""

    event: str  # sources, token, done or error
    data: dict[str, Any]


async def stream_answer(retrieved: Retrieved) -> AsyncIterator[AnswerEvent]:
    """A retrieved question's answer as events: the sources first, then the answer's
    text as the model writes it, then `done` with the whole answer and the sources it
    cites (or `error` with a detail). Cancelling the iteration cancels the model call."""
    generator = get_generator()
    if generator is None:
        extracted = await asyncio.to_thread(_extract, retrieved)
        yield AnswerEvent("sources", {"sources": extracted.sources})
        yield AnswerEvent("token", {"text": extracted.answer})
        yield AnswerEvent("done", {"answer": extracted.answer, "sources": extracted.sources})
        return
    prompt = await asyncio.to_thread(_prompt, retrieved)
    if prompt is None:
        yield AnswerEvent("sources", {"sources": []})
        yield AnswerEvent("token", {"text": NO_ANSWER})
        yield AnswerEvent("done", {"answer": NO_ANSWER, "sources": []})
        return
    yield AnswerEvent("sources", {"sources": prompt.sources})
    parts: list[str] = []
    try:
        async for text in generator.stream(prompt):
            parts.append(text)
            yield AnswerEvent("token", {"text": text})
        if not "".join(parts).strip():
            raise GenerationFailed(EMPTY_RESPONSE)
    except GenerationFailed as exc:
        yield AnswerEvent("error", {"status": 502, "detail": str(exc)})
        return
    written = "".join(parts).strip()
    yield AnswerEvent("done", {"answer": written, "sources": cited(written, prompt.sources)})
