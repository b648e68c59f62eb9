"""Extract a document's text: its kind recognised (detection.py), then read by that
kind's reader into sections.

Each reader gives the document as sections: the text under each heading, with the path
of headings above it ("Title > Chapter > Section"), which chunks carry as context, and
for formats with pages (PDF, slides, images) the pages it spans. Markup and page
furniture (navigation, headers, footers) never reach the text.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from charset_normalizer import from_bytes

from ingest.exceptions import EmptyDocument
from ingest.sources.detection import MEDIA_TYPES, detect_kind

SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")

HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]  # the headings above the text, outermost first
    text: str
    # The first and last page the text is on, 1-based as a PDF viewer counts them (not
    # the printed numbers); None for a format without pages.
    pages: tuple[int, int] | None = None

    @property
    def context(self) -> str:
        return HEADING_SEPARATOR.join(self.headings)


@dataclass(frozen=True)
class Read:
    """What a reader makes of a document: its sections, and its title if it names one."""

    sections: list[Section]
    title: str = ""


# Pages read so far and the document's pages: a reader of slow pages (OCR) reports each.
PageProgress = Callable[[int, int], None]


class Reader(Protocol):
    def __call__(
        self, data: bytes, *, charset: str | None, progress: PageProgress | None
    ) -> Read: ...


@dataclass(frozen=True)
class Extracted:
    kind: str  # a key of MEDIA_TYPES
    content_type: str
    sections: list[Section]
    title: str = ""

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


# Each kind's reader, imported when a document of the kind first comes: "module:function".
READERS: dict[str, str] = {
    "text": "ingest.sources.extraction:read_text",
    "markdown": "ingest.sources.markup:read_markdown",
    "html": "ingest.sources.markup:read_html",
    "pdf": "ingest.sources.scans:read_pdf",
    "png": "ingest.sources.scans:read_image",
    "jpeg": "ingest.sources.scans:read_image",
    "tiff": "ingest.sources.scans:read_image",
    "docx": "ingest.sources.office:read_docx",
    "pptx": "ingest.sources.office:read_pptx",
    "xlsx": "ingest.sources.spreadsheets:read_xlsx",
    "xls": "ingest.sources.spreadsheets:read_xls",
    "csv": "ingest.sources.spreadsheets:read_csv",
    "tsv": "ingest.sources.spreadsheets:read_tsv",
    "odt": "ingest.sources.opendocument:read_odt",
    "ods": "ingest.sources.spreadsheets:read_ods",
    "odp": "ingest.sources.opendocument:read_odp",
    "epub": "ingest.sources.ebooks:read_epub",
    "rtf": "ingest.sources.rtf:read_rtf",
    "eml": "ingest.sources.mail:read_eml",
}


def reader_of(kind: str) -> Reader:
    module, _, name = READERS[kind].partition(":")
    reader: Reader = getattr(importlib.import_module(module), name)
    return reader


def extract(
    data: bytes,
    *,
    filename: str = "",
    content_type: str = "",
    charset: str | None = None,
    progress: PageProgress | None = None,
) -> Extracted:
    """Text of the document, or EmptyDocument when there is none to index. `progress`
    hears of each page read, from readers whose pages are slow (OCR)."""
    kind = detect_kind(data, filename=filename, content_type=content_type)
    read = reader_of(kind)(data, charset=charset, progress=progress)
    sections = [
        Section(section.headings, text, section.pages)
        for section in read.sections
        if (text := normalise_whitespace(section.text))
    ]
    if not sections:
        raise EmptyDocument("No text to index: the document is empty")
    return Extracted(kind=kind, content_type=MEDIA_TYPES[kind], sections=sections, title=read.title)


def read_text(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    return Read([Section((), decode_text(data, charset))])


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Decode bytes whatever their encoding: declared charset, UTF-8, detection, then
    Latin-1, which decodes anything. Never raises."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    for encoding in (charset, "utf-8"):
        if encoding:
            try:
                return data.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                continue
    matches = from_bytes(data[:200_000])
    best = matches.best()
    if best is not None and best.encoding:
        encoding = best.encoding
        # Short Western text scores the same in several code pages; Windows-1252 is by
        # far the most common of them, so it wins a tie.
        tied = {
            m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)
        }
        if "cp1252" in tied:
            encoding = "cp1252"
        try:
            return data.decode(encoding, errors="replace")
        except LookupError:
            pass
    return data.decode("latin-1")


def normalise_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = (SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
