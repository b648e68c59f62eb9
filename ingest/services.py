"""Writes and questions that span the registry and the vectors: one service per operation,
called by the API, the admin and the commands alike.

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
from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import numpy as np
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction

from ingest.answering import NO_ANSWER, Answer, EmbedSentences, Relevance, extractive_answer
from ingest.chunking import chunk_text
from ingest.embeddings import get_embedder
from ingest.exceptions import ContentConflict, ContentTooLarge, EmptyDocument, GenerationFailed
from ingest.extraction import Extracted, extract
from ingest.fetching import fetch_url
from ingest.generation import EMPTY_RESPONSE, Prompt, build_prompt, cited, get_generator
from ingest.lexical import terms
from ingest.retrieval import searchable
from ingest.vector_store import ChunkHit, StoredChunks, VectorStore, get_vector_store
from registry.backends import get_backend
from registry.models import new_file_id
from registry.records import (
    FILENAME_MAX,
    DocumentRecord,
    Source,
    check_file_id,
    check_workspace,
    now_seconds,
    workspace_filter,
)

logger = logging.getLogger(__name__)
R = TypeVar("R")

_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


@dataclass(frozen=True)
class Ingested:
    document: DocumentRecord
    created: bool


@dataclass(frozen=True)
class Deleted:
    documents: list[DocumentRecord]
    chunks_removed: int


def clean_filename(name: str, *, fallback: str = "document") -> str:
    """A display name safe to store and show: no path, no control characters."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE_FILENAME.sub(" ", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[:FILENAME_MAX] or fallback


@dataclass(frozen=True)
class Prepared:
    """A document read, cut and embedded, before anything is stored."""

    extracted: Extracted
    texts: list[str]
    contexts: list[str]
    vectors: np.ndarray


def prepare(data: bytes, filename: str, content_type: str, charset: str | None) -> Prepared:
    """Extract the text, cut each section into chunks (carrying the section's headings)
    and embed each chunk with its headings."""
    extracted = extract(data, filename=filename, content_type=content_type, charset=charset)
    texts: list[str] = []
    contexts: list[str] = []
    for section in extracted.sections:
        chunks = chunk_text(
            section.text, size=settings.CHUNK_SIZE_WORDS, overlap=settings.CHUNK_OVERLAP_WORDS
        )
        texts.extend(chunks)
        contexts.extend([section.context] * len(chunks))
    if not texts:
        raise EmptyDocument("No text to index: the document is empty")
    vectors = get_embedder().embed(
        [searchable(context, text) for context, text in zip(contexts, texts, strict=True)]
    )
    return Prepared(extracted, texts, contexts, vectors)


async def document_ingest(
    *,
    data: bytes,
    filename: str,
    workspace: str,
    content_type: str = "",
    charset: str | None = None,
    source: Source = Source.FILE,
    url: str = "",
    file_id: str | None = None,
) -> Ingested:
    """Index a document, or return the one already holding the same bytes in this
    workspace (`created` False).

    With a `file_id` the client chose, that document is re-ingested: an existing one's
    chunks and row are replaced (its created_at kept), a new one is created under that
    id; the same content under another id in the workspace is ContentConflict.
    """
    check_workspace(workspace)
    if file_id is not None:
        check_file_id(file_id)
    if len(data) > settings.MAX_UPLOAD_BYTES:
        raise ContentTooLarge(f"The document is over the {settings.MAX_UPLOAD_MB} MB limit")
    sha256 = hashlib.sha256(data).hexdigest()
    backend = get_backend()
    same_content = await backend.afind_by_sha256(workspace=workspace, sha256=sha256)
    previous = None
    if file_id is None:
        if same_content is not None:
            return Ingested(same_content, created=False)
    else:
        if same_content is not None and same_content.file_id != file_id:
            raise ContentConflict(
                f"Document {same_content.file_id!r} already holds this content in workspace "
                f"{workspace!r}; re-ingest that id or delete it first"
            )
        previous = (await backend.aget_many([file_id])).get(file_id)

    prepared = await asyncio.to_thread(prepare, data, filename, content_type, charset)
    if source == Source.URL and not filename:
        filename = prepared.extracted.title or urlsplit(url).hostname or "page"
    now = now_seconds()
    record = DocumentRecord(
        file_id=file_id or new_file_id(),
        filename=clean_filename(filename),
        size_bytes=len(data),
        workspace=workspace,
        num_chunks=len(prepared.texts),
        indexed=True,
        created_at=previous.created_at if previous else now,
        updated_at=now,
        source=source,
        url=url,
        content_type=prepared.extracted.content_type,
        sha256=sha256,
    )
    store = await asyncio.to_thread(get_vector_store)  # may load a model: off the loop
    if previous is None:
        return await _store_new(store, record, prepared)
    return await _replace(store, record, prepared)


def _chunks(record: DocumentRecord, prepared: Prepared) -> StoredChunks:
    return StoredChunks(
        file_id=record.file_id,
        workspace=record.workspace,
        indexes=list(range(len(prepared.texts))),
        texts=prepared.texts,
        vectors=prepared.vectors,
        contexts=prepared.contexts,
    )


async def _store_new(store: VectorStore, record: DocumentRecord, prepared: Prepared) -> Ingested:
    """Vectors first, then the row; the vectors go again if the row cannot be written.
    A transactional store (pgvector) writes the row, then its chunks, in one transaction."""
    if store.transactional:
        return await sync_to_async(_write_atomically, thread_sensitive=True)(
            store, record, prepared, replace=False
        )
    file_id = record.file_id
    await asyncio.to_thread(store.replace, [_chunks(record, prepared)])
    try:
        stored, created = await get_backend().acreate(record)
    except BaseException:
        await asyncio.to_thread(store.remove, file_id)
        raise
    if not created:
        # An identical upload won the race: keep its vectors, drop ours.
        await asyncio.to_thread(store.remove, file_id)
    return Ingested(stored, created)


async def _replace(store: VectorStore, record: DocumentRecord, prepared: Prepared) -> Ingested:
    """New vectors, then the new row; the old vectors come back if the row cannot be
    written, so the registry and the store still agree."""
    if store.transactional:
        return await sync_to_async(_write_atomically, thread_sensitive=True)(
            store, record, prepared, replace=True
        )
    file_id = record.file_id
    old = await asyncio.to_thread(store.chunks_of, file_id)
    await asyncio.to_thread(store.replace, [_chunks(record, prepared)])
    try:
        stored = await get_backend().aupsert(record)
    except BaseException:
        if old is None:
            await asyncio.to_thread(store.remove, file_id)
        else:
            await asyncio.to_thread(store.replace, [old])
        raise
    return Ingested(stored, created=False)


def _write_atomically(
    store: VectorStore, record: DocumentRecord, prepared: Prepared, *, replace: bool
) -> Ingested:
    backend = get_backend()
    with transaction.atomic():
        if replace:
            stored, created = backend.upsert(record), False
        else:
            stored, created = backend.create(record)
            if not created:  # an identical upload won the race: its chunks stay
                return Ingested(stored, created)
        store.replace([_chunks(record, prepared)])
    return Ingested(stored, created)


async def document_ingest_url(
    *, url: str, workspace: str, filename: str | None = None, file_id: str | None = None
) -> Ingested:
    check_workspace(workspace)
    if file_id is not None:
        check_file_id(file_id)
    resource = await fetch_url(url)
    return await document_ingest(
        data=resource.data,
        filename=filename or resource.filename,
        workspace=workspace,
        content_type=resource.content_type,
        charset=resource.charset,
        source=Source.URL,
        url=resource.url,
        file_id=file_id,
    )


def document_delete_many(*, file_ids: Collection[str]) -> Deleted:
    """Delete the documents of these ids that exist: their registry rows, then (once that
    is durable) their vectors. Unknown ids are skipped."""
    store = get_vector_store()
    if store.transactional:
        # The chunks go with their rows (the foreign key cascades), in one transaction.
        with transaction.atomic():
            counts = store.count_of(file_ids)
            documents = get_backend().delete_many(file_ids)
        return Deleted(documents, sum(counts.get(d.file_id, 0) for d in documents))
    removed: list[int] = []
    documents = get_backend().delete_many(
        file_ids, on_deleted=lambda gone: removed.append(_remove_vectors(gone))
    )
    return Deleted(documents, sum(removed))


async def adocument_delete_many(*, file_ids: Collection[str]) -> Deleted:
    backend = get_backend()
    return await sync_to_async(document_delete_many, thread_sensitive=backend.thread_sensitive)(
        file_ids=file_ids
    )


def _remove_vectors(documents: list[DocumentRecord]) -> int:
    """Remove the vectors of documents whose rows are gone; how many chunks went. A
    failure is logged, not raised: the rows are already deleted, orphan vectors are never
    cited (answers check the registry) and `check_registry --fix` removes them."""
    file_ids = [document.file_id for document in documents]
    try:
        return get_vector_store().remove_many(file_ids)
    except Exception:
        logger.exception("vectors of deleted documents %s were not removed", file_ids)
        return 0


@dataclass(frozen=True)
class Retrieved:
    """The ranked chunks of a question, with what answering them needs."""

    question: str
    ranked: list[tuple[ChunkHit, DocumentRecord]]
    weights: dict[str, float]
    relevance: Relevance
    embed: EmbedSentences


async def _on_store(store: VectorStore, method: Callable[..., R], *args: Any, **kwargs: Any) -> R:
    """Run a store method off the event loop: in a worker thread for the json store, on
    the thread that holds this request's database connection (and its transaction) for
    a database store, as Django runs the ORM."""
    if store.transactional:
        return await sync_to_async(method, thread_sensitive=True)(*args, **kwargs)
    return await asyncio.to_thread(method, *args, **kwargs)


async def retrieve(*, question: str, workspace: str, top_k: int) -> Retrieved:
    """The best chunks of the workspace (`*`: of every workspace) by hybrid ranking, of
    documents that exist, best first."""
    scope = workspace_filter(workspace)
    embedder = get_embedder()
    store = await asyncio.to_thread(get_vector_store)  # may load a model: off the loop
    query_terms = terms(question)
    query = (await asyncio.to_thread(embedder.embed, [question]))[0]
    # Ask for more than top_k: hits of documents deleted a moment ago are dropped below.
    hits, weights = await _on_store(
        store, store.search_weighted, query, query_terms, workspace=scope, top_k=top_k * 3
    )
    documents = await get_backend().aget_many({hit.file_id for hit in hits})
    ranked = [(hit, documents[hit.file_id]) for hit in hits if hit.file_id in documents]
    relevance = Relevance(embedder.relevance_floor, embedder.alone_floor)
    return Retrieved(question, ranked[:top_k], weights, relevance, embedder.embed)


async def answer_question(*, question: str, workspace: str, top_k: int) -> Answer:
    """The answer to a question from the workspace's documents: extractive, or written
    by the ANSWER_GENERATOR model from the retrieved chunks, citing them."""
    retrieved = await retrieve(question=question, workspace=workspace, top_k=top_k)
    generator = get_generator()
    if generator is None:
        return await asyncio.to_thread(_extract, retrieved)
    prompt = _prompt(retrieved)
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
