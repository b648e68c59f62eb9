"""A workspace's background: how near its chunks come to questions it cannot answer.

A large manual holds a chunk somewhat like almost any question, a handful of notes does
not, so one similarity floor refuses too little in the first and too much in the second.
The background is measured, not assumed: PROBES are everyday questions no document of
this service is about, and a scope's background is the mean of each probe's highest
similarity to a chunk of the scope (0.27 for the 11,842 chunks of the PostgreSQL manual,
0.13 for eleven licences, with all-MiniLM-L6-v2). The answering rule compares a passage's
similarity with it (ingest/answers/extractive.py).

Measuring takes one pass of the probes over the scope (a matrix product for the store
file, one statement of index scans for pgvector), so it is kept per scope for SECONDS, and
for the store file only while the file is unchanged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from asgiref.sync import sync_to_async

from common.singletons import Singleton
from ingest.search.embeddings import Embedder
from ingest.stores.base import VectorStore
from registry.records import WorkspaceFilter, workspace_names

# Questions about everyday things: what no workspace of a document service answers.
PROBES = (
    "How long should I boil an egg for a soft yolk?",
    "What is the best time of year to visit Japan?",
    "How many players are on a football team?",
    "Why is the sky blue?",
    "How do I get red wine out of a carpet?",
    "What should I feed a new puppy?",
    "How do I train for a marathon?",
    "Who painted the ceiling of the Sistine Chapel?",
    "How do I change a flat tyre on a bicycle?",
    "What is the capital of Australia?",
    "How much water should I drink each day?",
    "When do tulip bulbs need to be planted?",
    "How do I make bread rise faster?",
    "What causes thunder during a storm?",
    "How can I stop my glasses from fogging up?",
    "Which vaccines does a baby need in the first year?",
    "How do I knit a scarf for beginners?",
    "What is a good stretch for lower back pain?",
    "How far is the moon from the earth?",
    "How do I descale a kettle with vinegar?",
    "What are the rules of chess castling?",
    "How should I store fresh basil?",
    "When was the Eiffel Tower built?",
    "How do I write a cover letter for a job?",
    "What is the difference between a crocodile and an alligator?",
    "How can I improve my sleep at night?",
    "How do I repot an orchid?",
    "What wine goes well with salmon?",
    "How do I remove rust from garden tools?",
    "What is the plot of Pride and Prejudice?",
)
SECONDS = 300.0


@dataclass
class _Backgrounds:
    probes: dict[str, np.ndarray] = field(default_factory=dict)  # by embedder name
    measured: dict[tuple[object, ...], tuple[float, float]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_backgrounds: Singleton[_Backgrounds] = Singleton(_Backgrounds)


async def background(store: VectorStore, embedder: Embedder, workspace: WorkspaceFilter) -> float:
    """The scope's background similarity (0 for a scope without chunks)."""
    kept = _backgrounds.get()
    key = (store.label, embedder.name, workspace_names(workspace), store.version())
    now = time.monotonic()
    found = kept.measured.get(key)
    if found is not None and found[1] > now:
        return found[0]
    probes = kept.probes.get(embedder.name)
    if probes is None:
        probes = await sync_to_async(embedder.embed, thread_sensitive=False)(list(PROBES))
        kept.probes[embedder.name] = probes
    nearest = await store.anearest(probes, workspace=workspace)
    value = float(nearest.mean()) if len(nearest) else 0.0
    with kept.lock:
        kept.measured[key] = (value, now + SECONDS)
    return value
