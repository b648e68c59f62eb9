"""Asking: a question's chunks retrieved from the workspace's documents (`retrieve`),
and its answer, extractive or written by a model, whole (`answer_question`) or as
server-sent events (`stream_answer`). Read-only; called by the API and the admin."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from common.metrics import ASK_PHASE_SECONDS, ask_phase
from ingest.answers.extractive import (
    NO_ANSWER,
    Answer,
    EmbedSentences,
    Relevance,
    extractive_answer,
)
from ingest.answers.generation import EMPTY_RESPONSE, Prompt, build_prompt, cited, get_generator
from ingest.exceptions import GenerationFailed
from ingest.search.embeddings import get_embedder
from ingest.search.lexical import terms
from ingest.stores import get_vector_store
from ingest.stores.base import ChunkHit
from registry.backends import get_backend
from registry.records import DocumentRecord
from registry.scopes import EVERYTHING, Scope


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
    with ask_phase("embedding"):
        query = (await asyncio.to_thread(embedder.embed, [question]))[0]
    with ask_phase("search"):
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
    with ask_phase("answering"):
        return await _answer(retrieved)


async def _answer(retrieved: Retrieved) -> Answer:
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
    events = _events(retrieved)
    spent = 0.0  # answering: making the events, not the client's reading them
    try:
        while True:
            started = time.perf_counter()
            try:
                event = await anext(events)
            except StopAsyncIteration:
                return
            finally:
                spent += time.perf_counter() - started
            yield event
    finally:
        await events.aclose()
        ASK_PHASE_SECONDS["answering"].observe(spent)


async def _events(retrieved: Retrieved) -> AsyncGenerator[AnswerEvent, None]:
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
