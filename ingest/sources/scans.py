"""PDFs and images of text: each page a section of its own, with its page number.

A page's text comes from the PDF's text layer, read in a child process under a time and
a memory limit (pdf_text.py).
"""

from __future__ import annotations

import logging

from django.conf import settings

from ingest.exceptions import EmptyDocument
from ingest.sources.extraction import PageProgress, Read, Section
from ingest.sources.pdf_text import PdfRefused, read_pdf_pages

logger = logging.getLogger(__name__)


def read_pdf(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """The PDF's pages as sections, each with its page number (1-based)."""
    try:
        pages = read_pdf_pages(
            data, seconds=settings.PDF_TIME_LIMIT, memory_mb=settings.PDF_MEMORY_LIMIT_MB
        )
    except PdfRefused as exc:
        logger.info("PDF refused: %s", exc)
        raise EmptyDocument(str(exc)) from None
    sections = [
        Section((), text, (number, number))
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]
    if not sections:
        raise EmptyDocument(
            "No text to index: the PDF has no text layer (a scanned document needs OCR, "
            "which this service does not do)"
        )
    return Read(sections)


def read_image(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """An image of text, read by OCR (not yet: issue 33)."""
    raise EmptyDocument("No text to index: images are read by OCR, which is not ready yet")
