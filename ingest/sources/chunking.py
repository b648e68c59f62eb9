"""Split text into overlapping chunks of whole sentences, sized in words."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from ingest.sources.extraction import Section

# A sentence ends at . ! ? (optionally closed by quotes or brackets) before white space,
# or at a blank line. Good enough for extractive answers; not a linguistic parser.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+|\n\s*\n")
_SPACE = re.compile(r"\s+")


def split_sentences(text: str) -> list[str]:
    sentences = (_SPACE.sub(" ", part).strip() for part in _SENTENCE_END.split(text))
    return [sentence for sentence in sentences if sentence]


def chunk_sentences(chunk: str) -> list[str]:
    """The sentences of a stored chunk (one per line; older chunks have no lines)."""
    return [sentence for line in chunk.split("\n") for sentence in split_sentences(line)]


def chunk_text(text: str, *, size: int, overlap: int) -> list[str]:
    """Chunks of at most `size` words made of whole sentences, one per line, each
    starting with up to `overlap` words of the previous chunk's last sentences. A
    sentence longer than `size` is cut into word windows.
    """
    if not 0 <= overlap < size:
        raise ValueError("overlap must be at least 0 and smaller than size")
    pieces: list[list[str]] = []
    for sentence in split_sentences(text):
        words = sentence.split(" ")
        step = size - overlap
        if len(words) <= size:
            pieces.append(words)
        else:
            pieces.extend(words[i : i + size] for i in range(0, len(words) - overlap, step))

    chunks: list[str] = []
    current: list[list[str]] = []
    current_words = 0
    for piece in pieces:
        if current and current_words + len(piece) > size:
            chunks.append("\n".join(" ".join(p) for p in current))
            # Carry whole trailing sentences into the next chunk, up to `overlap` words.
            carried: list[list[str]] = []
            carried_words = 0
            for previous in reversed(current):
                if carried_words + len(previous) > overlap:
                    break
                carried.insert(0, previous)
                carried_words += len(previous)
            if carried_words + len(piece) > size:
                carried, carried_words = [], 0
            current, current_words = carried, carried_words
        current.append(piece)
        current_words += len(piece)
    if current:
        chunks.append("\n".join(" ".join(p) for p in current))
    return chunks


@dataclass(frozen=True)
class Chunked:
    """A document's chunks: each one's text, its section's headings, and the pages it
    spans (None for a format without pages)."""

    texts: list[str]
    contexts: list[str]
    pages: list[tuple[int, int] | None]


def chunk_sections(sections: Iterable[Section], *, size: int, overlap: int) -> Chunked:
    """Each section cut into chunks (chunk_text). A paged document's sections are its
    pages (or a slide each), so its chunks do not cross a page break: each cites the
    page it is on."""
    chunked = Chunked([], [], [])
    for section in sections:
        chunks = chunk_text(section.text, size=size, overlap=overlap)
        chunked.texts.extend(chunks)
        chunked.contexts.extend([section.context] * len(chunks))
        chunked.pages.extend([section.pages] * len(chunks))
    return chunked
