"""PDFs and images of text: each page a section of its own, with its page number.

A PDF page's text comes from its text layer; a page whose layer is too thin (a scan) and
every page of an image (PNG, JPEG, each frame of a TIFF) are read by Tesseract. Both run
in a child process under a time and a memory limit (child.py), which reports each page
as it is read to `progress`.
"""

from __future__ import annotations

import logging

from django.conf import settings

from common.metrics import OCR_PAGES
from ingest.exceptions import EmptyDocument
from ingest.sources.child import Pages, read_in_child
from ingest.sources.extraction import PageProgress, Read, Section
from ingest.sources.ocr import OcrLimits

logger = logging.getLogger(__name__)


def read_pdf(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """The PDF's pages as sections, each with its page number (1-based)."""
    sections = _sections(_read("pdf", data, progress))
    if not sections:
        raise EmptyDocument(
            "No text to index: the PDF has no text layer, and OCR found no text on its pages"
        )
    return Read(sections)


def read_image(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """An image of text, read by OCR: each page (a TIFF's frame) a section."""
    sections = _sections(_read("image", data, progress))
    if not sections:
        raise EmptyDocument("No text to index: OCR found no text in the image")
    return Read(sections)


def ocr_limits() -> OcrLimits:
    """What OCR may take, from the settings."""
    return OcrLimits(
        command=settings.TESSERACT_COMMAND,
        languages=settings.OCR_LANGUAGES,
        page_seconds=settings.OCR_PAGE_TIME_LIMIT,
        max_pages=settings.OCR_MAX_PAGES,
        max_pixels=settings.MAX_IMAGE_PIXELS,
    )


def _read(kind: str, data: bytes, progress: PageProgress | None) -> Pages:
    pages = read_in_child(
        kind,
        data,
        seconds=settings.PDF_TIME_LIMIT,
        memory_mb=settings.PDF_MEMORY_LIMIT_MB,
        ocr=ocr_limits(),
        progress=_counting_ocr(progress),
    )
    if pages.not_read:
        logger.warning("PDF read in part: %s", pages.not_read)
    return pages


def _counting_ocr(progress: PageProgress | None) -> PageProgress:
    """`progress`, counting the pages read by OCR in docservice_ocr_pages_total as each is
    read. The child's first count is of the pages it will not read by OCR (their text
    layer is enough); each count after it is one more page read by OCR."""
    first: int | None = None
    counted = 0

    def count(done: int, total: int) -> None:
        nonlocal first, counted
        if first is None:
            first = done
        elif done - first > counted:
            OCR_PAGES.inc(done - first - counted)
            counted = done - first
        if progress is not None:
            progress(done, total)

    return count


def _sections(pages: Pages) -> list[Section]:
    return [
        Section((), text, (number, number))
        for number, text in enumerate(pages.texts, start=1)
        if text.strip()
    ]
