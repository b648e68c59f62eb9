"""Text embeddings behind one small interface.

The default, `hashing-v1`, needs no model and no network: hashed word and word-pair
features with sublinear term weights, L2-normalised. It hashes with BLAKE2b, never
Python's `hash()`, which is salted per process: the same text gives the same vector in
every process and after every restart.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections import Counter
from functools import lru_cache
from typing import Protocol

import numpy as np
from django.conf import settings

WORD_RE = re.compile(r"\w+", re.UNICODE)

# Words that carry no meaning of their own; without this, "what is the" would match
# every English sentence.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves""".split()
)


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32 array of shape (len(texts), dim), rows L2-normalised (or all zero)."""
        ...


def tokenize(text: str) -> list[str]:
    """Lower-case words without stopwords: what the embedder and the answerer compare."""
    return [w for w in WORD_RE.findall(text.lower()) if w not in STOPWORDS]


@lru_cache(maxsize=200_000)
def _slot(feature: str, dim: int) -> tuple[int, float]:
    digest = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return digest % dim, (1.0 if digest >> 63 else -1.0)


class HashingEmbedder:
    """Feature hashing of words and adjacent word pairs, weight 1 + log(tf)."""

    name = "hashing-v1"
    PAIR_WEIGHT = 0.5

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = tokenize(text)
            features = Counter(words)
            pairs = Counter(f"{a} {b}" for a, b in itertools.pairwise(words))
            for counts, weight in ((features, 1.0), (pairs, self.PAIR_WEIGHT)):
                for feature, count in counts.items():
                    index, sign = _slot(feature, self.dim)
                    out[row, index] += sign * weight * (1.0 + math.log(count))
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


def get_embedder() -> Embedder:
    return HashingEmbedder(dim=settings.EMBEDDING_DIM)
