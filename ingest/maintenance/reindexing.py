"""Embed every stored chunk again, from the text the vector store already holds.

The chunks are embedded outside the store's lock, so the service keeps answering from
the old vectors meanwhile; the lock is taken only to swap the new vectors in. Chunks that
an ingest added or changed during the long step are embedded then, under the lock, and
chunks deleted meanwhile are simply not there any more: the new store is the old one as
it is at the moment of the swap, with every vector from the new embedder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from common.progress import Progress
from ingest.search.embeddings import Embedder
from ingest.search.fusion import searchable
from ingest.stores import build_vector_store


@dataclass(frozen=True)
class Reindexed:
    chunks: int
    late: int  # chunks added or changed during the reindex, embedded at the swap
    embedder: str
    dim: int
    previous: tuple[str, int] | None  # the embedder and dimension the store had
    seconds: float


def _key(chunk: dict[str, Any]) -> tuple[str, str, str]:
    return chunk["chunk_id"], chunk["context"], chunk["text"]


def reindex(embedder: Embedder, *, progress: Progress | None = None) -> Reindexed:
    """Re-embed every chunk of the vector store with `embedder`."""
    started = time.monotonic()
    store = build_vector_store(embedder.name, embedder.dim)
    previous = store.built_by()
    chunks = store.chunks()
    if not chunks:
        return Reindexed(0, 0, embedder.name, embedder.dim, previous, time.monotonic() - started)
    texts = [searchable(chunk["context"], chunk["text"]) for chunk in chunks]
    vectors = embedder.embed(texts, progress=progress)
    embedded = {_key(chunk): row for row, chunk in enumerate(chunks)}
    late: list[int] = []

    def vectors_for(current: list[dict[str, Any]]) -> np.ndarray:
        out = np.zeros((len(current), embedder.dim), dtype=np.float32)
        missing = []
        for position, chunk in enumerate(current):
            row = embedded.get(_key(chunk))
            if row is None:
                missing.append(position)
            else:
                out[position] = vectors[row]
        if missing:
            out[missing] = embedder.embed(
                [searchable(current[p]["context"], current[p]["text"]) for p in missing]
            )
        late.extend(missing)
        return out

    count = store.reembed(vectors_for, embedder=embedder.name, dim=embedder.dim)
    return Reindexed(
        chunks=count,
        late=len(late),
        embedder=embedder.name,
        dim=embedder.dim,
        previous=previous,
        seconds=time.monotonic() - started,
    )
