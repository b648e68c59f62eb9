"""Extractive answers: the sentences of the best chunks that are about the question, each
marked with the number of the source it comes from.

No language model is involved, so an answer only ever says what a document says. Three
rules keep it on the question:

- **Evidence first.** A chunk is evidence when it is close to the question in meaning
  (cosine similarity at least the embedder's `relevance_floor`) and shares a word with
  it, or is very close in meaning alone (`alone_floor`). A short query (at most
  SHORT_WORDS words besides stopwords, and not a question: what people type into a
  search box) is judged on its own words instead, which a sentence model places poorly
  and an identifier's parts match by accident: a chunk is evidence when it holds
  SHORT_COVER of the query's words by IDF weight, headings included (a word no chunk has
  weighs as much as the rarest one, so it is never covered), or is closer in meaning
  than `alone_floor` by SHORT_MARGIN. With no evidence in the ranking the answer is that
  nothing was found, whatever the fused ranking put first. The floors come from
  bench/eval_retrieval.py: the lowest similarity of a right answer to its question
  against the highest of the questions the documents cannot answer; the short-query rule
  from its short queries (terms of the PostgreSQL manual's index, and terms of the Python
  docs' index found nowhere in the manual): at 0.6 and 0.1 it refused 1 of 200
  answerable and 193 of 200 foreign terms, where the rule for questions refused 0 and
  117. bench/eval_relevance.py measured the rule on seven real corpora and the
  alternatives to it (the workspace's background, lexical coverage of questions, the
  rankings' agreement): docs/answers.md has the figures; none refused more questions
  nothing answers without refusing more answerable ones.
- **Sentences about the question.** A sentence is scored by the share of the question's
  weight (BM25's IDF of each question term) that it contains; only sentences within
  half of the best score are taken, so a common word alone never pads an answer.
- **Quoted exactly.** Every sentence shown is a span of the chunk it cites, its white
  space folded at most: an answer that misquotes an identifier is wrong however well it
  ranks. Markup is removed when a document is read (ingest/sources/markup.py), so a
  chunk is the text a reader sees; here a sentence may only lose the list, quote, table
  or heading marks at its ends (a legacy chunk's raw Markdown), never a character inside.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from ingest.search.lexical import terms, word_terms, words
from ingest.sources.chunking import chunk_sentences
from ingest.stores.base import ChunkHit, PageSpan
from registry.records import DocumentRecord

NO_ANSWER = "I couldn't find relevant context."  # the old service's words
MAX_SENTENCES = 3
EVIDENCE_CHUNKS = 3  # sentences come from this many of the best chunks
SENTENCE_SHARE = 0.5  # of the best sentence's score
MIN_SENTENCE_WORDS = 4
SHORT_WORDS = 4  # a query of at most this many words (stopwords aside) is short
SHORT_COVER = 0.6  # the share of a short query's word weight a chunk must hold
SHORT_MARGIN = 0.1  # how much closer than alone_floor a chunk must be to a short query

# Marks a sentence of raw Markdown may start or end with: headings, quotes, list items,
# table pipes.
_LEADING_MARKS = re.compile(r"^(?:(?:#{1,6}|[>*+|-]|\d{1,3}[.)])\s+)+")
_TRAILING_MARKS = re.compile(r"(?:\s+(?:\||#{1,6}))+$")
_SPACE = re.compile(r"\s+")


class Query:
    """What a question asks for, word by word: each word's stem and its weight (its IDF
    among the chunks; a word no chunk has weighs as much as the rarest one)."""

    def __init__(self, question: str, weights: Mapping[str, float]) -> None:
        stems = set(word_terms(question))
        rarest = max(weights.values(), default=1.0) or 1.0
        self.words = {stem: weights.get(stem) or rarest for stem in stems}
        # Keywords, not a question: a question's words are the asker's, not the text's
        # ("What colour are bananas?"), and the rule for questions reads them.
        self.short = 0 < len(self.words) <= SHORT_WORDS and not question.rstrip().endswith("?")
        self._covered: dict[str, float] = {}

    def coverage(self, hit: ChunkHit) -> float:
        """The share of the query's word weight found in the chunk, headings included."""
        covered = self._covered.get(hit.chunk_id)
        if covered is None:
            present = set(terms(f"{hit.context}\n{hit.text}"))
            found = sum(weight for stem, weight in self.words.items() if stem in present)
            covered = self._covered[hit.chunk_id] = found / (sum(self.words.values()) or 1.0)
        return covered


@dataclass(frozen=True)
class Relevance:
    """When a chunk counts as evidence for a question (see the module's docstring)."""

    floor: float  # cosine similarity, with a shared word
    alone: float  # cosine similarity, with no shared word
    cover: float = SHORT_COVER  # of a short query's word weight

    def admits(self, hit: ChunkHit, query: Query | None = None) -> bool:
        """Evidence: enough to answer from."""
        if query is not None and query.short:
            return query.coverage(hit) >= self.cover or hit.dense >= self.alone + SHORT_MARGIN
        return (hit.lexical > 0 and hit.dense >= self.floor) or hit.dense >= self.alone

    def relates(self, hit: ChunkHit) -> bool:
        """Worth listing among the sources once there is evidence: a shared word, or as
        close in meaning as evidence is."""
        return hit.lexical > 0 or hit.dense >= self.floor


@dataclass(frozen=True)
class Source:
    number: int
    file_id: str
    filename: str
    chunk_index: int
    context: str
    score: float
    text: str
    pages: PageSpan = None  # the first and last page it is on, where the format has pages


@dataclass(frozen=True)
class Answer:
    answer: str
    sources: list[Source]


# Embeds the given sentences and the question last; used only when no sentence shares a
# word with the question (a match in meaning alone).
EmbedSentences = Callable[[list[str]], np.ndarray]


def extractive_answer(
    question: str,
    ranked: list[tuple[ChunkHit, DocumentRecord]],
    *,
    weights: Mapping[str, float],
    relevance: Relevance,
    embed: EmbedSentences | None = None,
) -> Answer:
    """The answer from chunks ranked best first (with their documents): up to three
    sentences about the question from the best evidence, marked [n] with the number of
    their source. The sources are the ranked chunks that relate to the question, in rank
    order (a right chunk that falls short of evidence still keeps its place)."""
    query = Query(question, weights)
    if not any(relevance.admits(hit, query) for hit, _ in ranked):
        return Answer(NO_ANSWER, [])
    related = [(hit, document) for hit, document in _distinct(ranked) if relevance.relates(hit)]
    sources = [
        Source(
            number=number,
            file_id=document.file_id,
            filename=document.filename,
            chunk_index=hit.chunk_index,
            context=hit.context,
            score=round(hit.score, 6),
            text=hit.text,
            pages=hit.pages,
        )
        for number, (hit, document) in enumerate(related, start=1)
    ]
    evidence = [
        s for s, (hit, _) in zip(sources, related, strict=True) if relevance.admits(hit, query)
    ]
    chosen = _sentences(question, evidence[:EVIDENCE_CHUNKS], weights, embed)
    if not chosen:
        return Answer(NO_ANSWER, [])
    return Answer(" ".join(f"{sentence} [{number}]" for number, sentence in chosen), sources)


def _distinct(
    ranked: list[tuple[ChunkHit, DocumentRecord]],
) -> list[tuple[ChunkHit, DocumentRecord]]:
    """The ranking without a chunk whose text an earlier one has (the same file under two
    ids, as the old service's data holds): a source is never cited twice."""
    seen: set[str] = set()
    kept = []
    for hit, document in ranked:
        text = folded(hit.text).casefold()
        if text not in seen:
            seen.add(text)
            kept.append((hit, document))
    return kept


def _sentences(
    question: str,
    sources: list[Source],
    weights: Mapping[str, float],
    embed: EmbedSentences | None,
) -> list[tuple[int, str]]:
    """(source number, sentence) pairs to answer with, in reading order."""
    wanted = {term: weights.get(term, 0.0) for term in set(terms(question))}
    total = sum(wanted.values()) or 1.0
    candidates: list[tuple[float, int, int, str]] = []  # score, source, position, text
    every: dict[tuple[int, int], str] = {}  # (source, position): each sentence
    seen: set[str] = set()
    for source in sources:
        text = folded(source.text)
        for position, raw in enumerate(chunk_sentences(source.text)):
            sentence = clean_sentence(raw)
            if sentence and sentence in text:
                every[(source.number, position)] = sentence
            key = sentence.casefold()
            if len(words(sentence)) < 2 or key in seen or sentence not in text:
                continue
            seen.add(key)
            found = set(terms(sentence))
            share = sum(weight for term, weight in wanted.items() if term in found) / total
            if len(sentence.split()) < MIN_SENTENCE_WORDS:
                share /= 2  # a label or a table cell says less than a sentence
            candidates.append((share, source.number, position, sentence))
    if not candidates:
        return []
    best = max(candidate[0] for candidate in candidates)
    if best > 0:
        picked = sorted(
            (c for c in candidates if c[0] >= SENTENCE_SHARE * best),
            key=lambda c: (-c[0], c[1], c[2]),
        )[:MAX_SENTENCES]
    elif embed is not None:
        # Related in meaning only: the sentence closest to the question of the first
        # source that has sentences (a chunk may be a title alone).
        number = min(c[1] for c in candidates)
        first = [c for c in candidates if c[1] == number]
        vectors = embed([c[3] for c in first] + [question])
        picked = [first[int(np.argmax(vectors[:-1] @ vectors[-1]))]]
    else:
        picked = [candidates[0]]
    # A sentence that announces what follows ("… would look like:") brings it along.
    taken = {(number, position) for _, number, position, _ in picked}
    for _, number, position, sentence in list(picked):
        after = every.get((number, position + 1))
        if sentence.endswith(":") and after and (number, position + 1) not in taken:
            picked.append((0.0, number, position + 1, after))
    return [(number, sentence) for _, number, _, sentence in sorted(picked, key=lambda c: c[1:3])]


def clean_sentence(sentence: str) -> str:
    """A sentence as a reader should see it: its white space folded and the marks at its
    ends gone; what remains is a span of the sentence, character for character."""
    sentence = _SPACE.sub(" ", sentence).strip()
    return _TRAILING_MARKS.sub("", _LEADING_MARKS.sub("", sentence))


def folded(text: str) -> str:
    """Text with its white space folded, as answers quote it."""
    return _SPACE.sub(" ", text).strip()


def cited_sentences(answer: str) -> list[tuple[str, int]]:
    """An extractive answer's sentences, each with the number of the source it cites."""
    return [(sentence, int(number)) for sentence, number in _CITED.findall(answer)]


def quotes_exactly(answer: str, sources: list[Source]) -> bool:
    """Whether each sentence of an extractive answer is found, word for word, in the
    chunk its [n] cites (white space folded)."""
    texts = {source.number: folded(source.text) for source in sources}
    return all(folded(s) in texts.get(number, "") for s, number in cited_sentences(answer))


_CITED = re.compile(r"\s*(.+?) \[(\d+)\](?=\s|$)")
