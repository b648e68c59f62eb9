"""Fusing rankings: reciprocal rank fusion of the dense and the lexical ranking.

RRF (Cormack, Clarke and Büttcher, SIGIR 2009) adds 1 / (K + rank) over the rankings a
chunk appears in. It needs no score calibration between cosine similarities and BM25
scores, which live on unrelated scales, and K = 60 is the paper's constant, which the
retrieval evaluation (bench/eval_retrieval.py) confirmed rather than tuned.
"""

from __future__ import annotations

from collections.abc import Iterable

# A ranking: (row, score) pairs, best first.
Ranking = list[tuple[int, float]]

K = 60


def fuse(rankings: Iterable[Ranking], *, k: int = K) -> Ranking:
    """The rows of all rankings by fused score, best first; ties keep the earlier row."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (row, _) in enumerate(ranking, start=1):
            fused[row] = fused.get(row, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))


def searchable(context: str, text: str) -> str:
    """What is embedded and counted for a chunk: its headings, then its text."""
    return f"{context}\n{text}" if context else text
