"""Extractive answering on chunks as a store returns them, with the hashing embedder's
vectors: the cases a live corpus met that the API tests' documents do not."""

from __future__ import annotations

from ingest.answers.extractive import NO_ANSWER, Relevance, extractive_answer, quotes_exactly
from ingest.search.embeddings import HashingEmbedder
from ingest.stores.base import ChunkHit
from registry.records import DocumentRecord

# Evidence by meaning alone: any chunk this close, whatever words it shares.
BY_MEANING = Relevance(floor=0.35, alone=0.4)


def hit(index: int, text: str, dense: float) -> tuple[ChunkHit, DocumentRecord]:
    chunk = ChunkHit(f"faq:{index}", "faq", "default", index, "", text, dense, dense, 0.0)
    return chunk, DocumentRecord("faq", "gitfaq.html")


def test_a_first_source_of_a_title_alone_leaves_the_answer_to_the_next():
    """The git manual's page title ("gitfaq") was the best chunk by meaning of a question
    none of whose words it held: the answer once failed with a 500 looking for a sentence
    in it (a title is no sentence), where the next chunk had one."""
    question = "Under what terms may I copy and change this manual itself?"
    ranked = [
        hit(0, "gitfaq", 0.45),
        hit(1, "This document is licensed under the GNU General Public License.", 0.44),
    ]
    answer = extractive_answer(
        question, ranked, weights={}, relevance=BY_MEANING, embed=HashingEmbedder().embed
    )
    assert answer.answer == "This document is licensed under the GNU General Public License. [2]"
    assert [source.number for source in answer.sources] == [1, 2]
    assert quotes_exactly(answer.answer, answer.sources)


def test_titles_alone_are_no_answer():
    ranked = [hit(0, "gitfaq", 0.45), hit(1, "gitglossary", 0.44)]
    answer = extractive_answer(
        "What is this manual?", ranked, weights={}, relevance=BY_MEANING, embed=None
    )
    assert answer.answer == NO_ANSWER
