"""A PDF's text layer, page by page, without its page furniture: the reading child's work
(child.py), in pypdf.

pypdf is pure Python, and a PDF can be made to be slow: a page of a million tiny text
operators costs about ten seconds and compresses to a few kilobytes, so a small upload
of such pages could hold a worker thread (and a share of its process's GIL) for hours.
That is why it runs in a child process, which is killed past PDF_TIME_LIMIT.
"""

from __future__ import annotations

import io
import re

MAX_PDF_PAGES = 2000
EDGE_LINES = 2  # lines at the top and at the bottom of a page where furniture sits
FURNITURE_SHARE = 0.5  # of the pages (at least 3) a line must recur on to be furniture
# A table of contents' entry: a title, dot leaders, a page number ("1 Introduction .... 3").
_DOT_LEADER = re.compile(r"(?:\.\s*){4,}\s*[\divxlcIVXLC]+\s*$|(?:\s\.){3,}")
_DIGITS = re.compile(r"\d+")


class PdfRefused(Exception):
    """The PDF cannot be read, or not within the limits; the message says why."""


def pdf_layer(data: bytes) -> list[str]:
    """The text layer of every page, in order, as pypdf extracts it."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfRefused("No text to index: the PDF is encrypted with a password")
        pages = reader.pages
        if len(pages) > MAX_PDF_PAGES:
            raise PdfRefused(f"The PDF has {len(pages)} pages; at most {MAX_PDF_PAGES} are read")
        return [page.extract_text() or "" for page in pages]
    except (PdfRefused, MemoryError):
        raise
    except Exception as exc:
        # Hostile or broken PDFs make pypdf raise nearly anything; each is the upload's
        # fault, never the service's, so each is a 422 rather than a 500.
        raise PdfRefused(f"No text to index: the PDF cannot be read ({exc})") from None


def without_furniture(pages: list[str]) -> list[str]:
    """The pages without what is page furniture rather than content: lines at a page's
    top or bottom that recur on most pages (a running title, "Page 3 of 12", a lone page
    number; numbers compared as any number), and tables of contents' entries (dot
    leaders and a page number). Nothing inside a line is changed."""

    def key(line: str) -> str:
        return _DIGITS.sub("#", " ".join(line.split()).casefold())

    lines = [[line for line in page.split("\n")] for page in pages]
    seen: dict[str, int] = {}
    for page in lines:
        filled = [line for line in page if line.strip()]
        for line in {key(line) for line in filled[:EDGE_LINES] + filled[-EDGE_LINES:]}:
            seen[line] = seen.get(line, 0) + 1
    needed = max(3, FURNITURE_SHARE * len(pages))
    furniture = {line for line, count in seen.items() if count >= needed}
    kept = []
    for page in lines:
        numbered = [n for n, line in enumerate(page) if line.strip()]
        edges = set(numbered[:EDGE_LINES] + numbered[-EDGE_LINES:])
        kept.append(
            "\n".join(
                line
                for n, line in enumerate(page)
                if not (n in edges and key(line) in furniture) and not _DOT_LEADER.search(line)
            )
        )
    return kept
