"""Words, stems and BM25: the lexical half of retrieval.

Every chunk's terms are counted once, at ingest, and kept in the vector store beside its
vector, so the BM25 index is rebuilt from stored counts (vectorised, no text is read
again) whenever the store file changes, and can never be stale. bm25s was measured for
this: at 100,000 chunks it tokenises in 3.7 s and indexes in 4.2 s, against a goal of
loading the whole store in 2 s and an ingest that must not redo either.

Terms are lower-case words without stopwords, an identifier's parts beside it
(`statement_timeout` also gives `statement` and `timeout`), stemmed with the Snowball
English stemmer (PyStemmer).

A chunk is counted as three fields (BM25F in its simple form: each field's counts times
its weight, one length normalisation over the sum): its text, its headings (`context`,
which every chunk of a section carries) at CONTEXT_WEIGHT and the document's name at
TITLE_WEIGHT, so a section about a term outranks a passing mention of it. The weights
were set on the calibration corpora of bench/eval_relevance.py.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import Stemmer
from scipy import sparse

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

# BM25 as Lucene computes it: k1 saturates term frequency, b normalises for length.
K1 = 1.2
B = 0.75

# Each field's weight in a chunk's term counts; the text's is 1.
CONTEXT_WEIGHT = 3
TITLE_WEIGHT = 3


def analyzer() -> str:
    """The analyser's identity, stored with the counts; the store file counts again the
    terms of a file another one counted when it reads it (weights included)."""
    return f"snowball-english-v2-fields-{CONTEXT_WEIGHT}-{TITLE_WEIGHT}"


# A document name's extension, which says nothing about what it is about.
_EXTENSION = re.compile(r"\.[^\W_]{1,5}$")

_stemmers = threading.local()  # a PyStemmer stemmer must not be shared between threads


def words(text: str) -> list[str]:
    """Lower-case words without stopwords, in order."""
    return [word for word in WORD_RE.findall(text.lower()) if word not in STOPWORDS]


def terms(text: str) -> list[str]:
    """The stems BM25 counts: words, identifiers' parts beside them, stemmed."""
    found = []
    for word in words(text):
        found.append(word)
        if "_" in word:
            found.extend(part for part in word.split("_") if part and part not in STOPWORDS)
    return _stemmer().stemWords(found)


def word_terms(text: str) -> list[str]:
    """The stems of the words alone, identifiers whole: what a query asks for."""
    return _stemmer().stemWords(words(text))


def title_words(name: str) -> str:
    """A document's name as words: "git-rebase.html" reads "git rebase"."""
    return re.sub(r"[\W_]+", " ", _EXTENSION.sub("", name)).strip()


def field_counts(text: str, context: str = "", title: str = "") -> Counter[str]:
    """A chunk's term counts: its text's, its headings' at CONTEXT_WEIGHT and its
    document name's at TITLE_WEIGHT."""
    counted = Counter(terms(text))
    for field, weight in ((context, CONTEXT_WEIGHT), (title_words(title), TITLE_WEIGHT)):
        for term, count in Counter(terms(field)).items():
            counted[term] += weight * count
    return counted


def _stemmer() -> Stemmer.Stemmer:
    stemmer = getattr(_stemmers, "english", None)
    if stemmer is None:
        stemmer = _stemmers.english = Stemmer.Stemmer("english")
    return stemmer


class Vocabulary:
    """Term ids, append-only: a term keeps its id for the life of the store."""

    def __init__(self, known: Sequence[str] = ()) -> None:
        self.terms = list(known)
        self._ids = {term: index for index, term in enumerate(self.terms)}

    def __len__(self) -> int:
        return len(self.terms)

    def ids_and_counts(self, counted: Mapping[str, int]) -> tuple[np.ndarray, np.ndarray]:
        """Counted terms as (distinct term ids, their counts), adding new terms."""
        ids = np.fromiter((self._id(term) for term in counted), np.uint32, len(counted))
        counts = np.fromiter((min(n, 65535) for n in counted.values()), np.uint16, len(counted))
        return ids, counts

    def known(self, stems: Iterable[str]) -> list[int]:
        """The ids of those stems the vocabulary has, each once."""
        return sorted({self._ids[stem] for stem in stems if stem in self._ids})

    def ids_of(self, stems: Iterable[str]) -> dict[str, int | None]:
        """Each stem's id, None for a stem the vocabulary does not have."""
        return {stem: self._ids.get(stem) for stem in stems}

    def _id(self, term: str) -> int:
        index = self._ids.get(term)
        if index is None:
            index = self._ids[term] = len(self.terms)
            self.terms.append(term)
        return index


class BM25:
    """BM25 scores of every chunk for a query, from the chunks' term counts.

    `ids` and `counts` hold each chunk's distinct terms one chunk after the other;
    `lengths[i]` says how many belong to chunk i.
    """

    def __init__(
        self, ids: np.ndarray, counts: np.ndarray, lengths: np.ndarray, vocabulary: int
    ) -> None:
        chunks = len(lengths)
        self.chunks = chunks
        if chunks == 0:
            self._weights = sparse.csc_matrix((0, vocabulary), dtype=np.float32)
            self.idf = np.zeros(vocabulary, dtype=np.float32)
            return
        indptr = np.zeros(chunks + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        tf = counts.astype(np.float32)
        chunk_of = np.repeat(np.arange(chunks), lengths)
        size = np.bincount(chunk_of, weights=tf, minlength=chunks).astype(np.float32)
        average = float(size.mean()) or 1.0
        df = np.bincount(ids, minlength=vocabulary).astype(np.float32)
        self.idf = np.log1p((chunks - df + 0.5) / (df + 0.5)).astype(np.float32)
        norm = K1 * (1 - B + B * size / average)
        weight = self.idf[ids] * tf * (K1 + 1) / (tf + norm[chunk_of])
        rows = sparse.csr_matrix((weight, ids, indptr), shape=(chunks, vocabulary))
        self._weights = rows.tocsc()  # a query reads the columns of its terms

    def scores(self, term_ids: Sequence[int]) -> np.ndarray:
        """Every chunk's score for a query of these (known, distinct) term ids."""
        if not term_ids or self.chunks == 0:
            return np.zeros(self.chunks, dtype=np.float32)
        return np.asarray(self._weights[:, list(term_ids)].sum(axis=1)).ravel()
