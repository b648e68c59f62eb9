"""Extractive answers: the sentences of the best chunks that best match the question.

No language model is involved, so an answer only ever says what a document says.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.chunking import split_sentences
from ingest.embeddings import Embedder, tokenize
from ingest.vector_store import ChunkHit
from registry.records import DocumentRecord

NO_ANSWER = "I could not find anything about that in the documents."
# Below this cosine similarity a chunk shares no more than chance with the question.
MIN_CHUNK_SCORE = 0.05
MAX_SENTENCES = 3


@dataclass(frozen=True)
class Source:
    file_id: str
    filename: str
    chunk_index: int
    score: float
    text: str


@dataclass(frozen=True)
class Answer:
    answer: str
    sources: list[Source]


def extractive_answer(
    question: str, cited: list[tuple[ChunkHit, DocumentRecord]], embedder: Embedder
) -> Answer:
    """Pick up to three sentences from the cited chunks; cite the chunks that had a
    word of the question in them. With nothing relevant, say so and cite nothing."""
    words = set(tokenize(question))
    relevant = [
        (hit, document)
        for hit, document in cited
        if hit.score >= MIN_CHUNK_SCORE and words & set(tokenize(hit.text))
    ]
    if not relevant:
        return Answer(NO_ANSWER, [])

    candidates: list[tuple[int, int, str, float]] = []
    for rank, (hit, _) in enumerate(relevant):
        for position, sentence in enumerate(split_sentences(hit.text)):
            shared = words & set(tokenize(sentence))
            if shared:
                candidates.append((rank, position, sentence, len(shared) / len(words)))
    vectors = embedder.embed([question] + [c[2] for c in candidates])
    similarity = vectors[1:] @ vectors[0]
    scores = similarity + 0.25 * np.array([c[3] for c in candidates])
    chosen: list[int] = []
    seen: set[str] = set()
    for index in np.argsort(-scores, kind="stable").tolist():
        sentence = candidates[index][2]
        if sentence not in seen:
            seen.add(sentence)
            chosen.append(index)
        if len(chosen) == MAX_SENTENCES:
            break
    # Read in document order: by the chunk's rank, then the sentence's place in it.
    chosen.sort(key=lambda index: candidates[index][:2])
    answer = " ".join(candidates[index][2] for index in chosen)
    sources = [
        Source(
            file_id=document.file_id,
            filename=document.filename,
            chunk_index=hit.chunk_index,
            score=round(hit.score, 4),
            text=hit.text,
        )
        for hit, document in relevant
    ]
    return Answer(answer, sources)
