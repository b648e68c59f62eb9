"""Recognise a document's type from its content and name, and extract its text.

Accepted: plain text (.txt), Markdown (.md), HTML (.html, .htm) and PDF (.pdf). The content
decides the parser; the name may only narrow it. A PDF named .txt is read as a PDF, a PNG
named .txt is refused, and a file named .pdf that is not a PDF is refused.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from bs4 import BeautifulSoup
from charset_normalizer import from_bytes
from pypdf import PdfReader

from ingest.exceptions import EmptyDocument, UnsupportedFileType

logger = logging.getLogger(__name__)

ACCEPTED = "text (.txt), Markdown (.md), HTML (.html, .htm) and PDF (.pdf)"
EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
CONTENT_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}
MEDIA_TYPES = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
}
# Signatures of binary formats people upload by mistake, for a precise refusal.
_BINARY_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"PK\x03\x04": "a ZIP archive (or a .docx/.xlsx/.odt document)",
    b"\xd0\xcf\x11\xe0": "a legacy Microsoft Office document",
    b"\x7fELF": "an executable",
    b"MZ": "a Windows executable",
    b"\x1f\x8b": "a gzip archive",
}
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
MAX_PDF_PAGES = 2000


@dataclass(frozen=True)
class Extracted:
    kind: str  # text, markdown, html or pdf
    content_type: str
    text: str
    title: str = ""


def detect_kind(data: bytes, *, filename: str = "", content_type: str = "") -> str:
    """The document kind, or UnsupportedFileType naming the accepted types."""
    suffix = PurePosixPath(filename).suffix.lower() if filename else ""
    named = EXTENSIONS.get(suffix)
    if suffix and named is None:
        raise UnsupportedFileType(f"{filename!r} is not an accepted type: accepted are {ACCEPTED}")
    declared = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())

    if data.startswith(b"%PDF-"):
        return "pdf"
    for signature, what in _BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise UnsupportedFileType(f"the content is {what}: accepted are {ACCEPTED}")
    if named == "pdf" or (declared == "pdf" and not named):
        raise UnsupportedFileType(
            f"{filename or 'the document'} is not a PDF (it does not start with %PDF-): "
            f"accepted are {ACCEPTED}"
        )
    if not _looks_like_text(data):
        raise UnsupportedFileType(f"the content is binary, not text: accepted are {ACCEPTED}")
    if named:
        return named
    if declared:
        return declared
    return "html" if _HTML_START.match(data[:2048]) else "text"


def extract(
    data: bytes, *, filename: str = "", content_type: str = "", charset: str | None = None
) -> Extracted:
    """Text of the document, or EmptyDocument when there is none to index."""
    kind = detect_kind(data, filename=filename, content_type=content_type)
    title = ""
    if kind == "pdf":
        text = _pdf_text(data)
    elif kind == "html":
        text, title = _html_text(data, charset)
    else:
        text = decode_text(data, charset)
    text = normalise_whitespace(text)
    if not text:
        reason = (
            "the PDF has no text layer (a scanned document needs OCR, which this service "
            "does not do)"
            if kind == "pdf"
            else "the document is empty"
        )
        raise EmptyDocument(f"No text to index: {reason}")
    return Extracted(kind=kind, content_type=MEDIA_TYPES[kind], text=text, title=title)


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
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _looks_like_text(data: bytes) -> bool:
    sample = data[:8192]
    if not sample:
        return True
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return True  # UTF-16 with a byte-order mark
    if b"\x00" in sample:
        return False
    control = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 12, 13))
    return control / len(sample) < 0.05


def _html_text(data: bytes, charset: str | None) -> tuple[str, str]:
    soup = BeautifulSoup(data, "html.parser", from_encoding=charset)
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "svg", "head", "iframe"]):
        tag.decompose()
    return soup.get_text("\n"), title


def _pdf_text(data: bytes) -> str:
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise EmptyDocument("No text to index: the PDF is encrypted with a password")
        pages = reader.pages
        if len(pages) > MAX_PDF_PAGES:
            raise EmptyDocument(f"The PDF has {len(pages)} pages; at most {MAX_PDF_PAGES} are read")
        return "\n\n".join(page.extract_text() or "" for page in pages)
    except EmptyDocument:
        raise
    except Exception as exc:
        # Hostile or broken PDFs make pypdf raise nearly anything; each is the upload's
        # fault, never the service's, so each is a 422 rather than a 500.
        logger.info("unreadable PDF: %r", exc)
        raise EmptyDocument(f"No text to index: the PDF cannot be read ({exc})") from None
