"""PDFs and images read in a child process, under a time and a memory limit.

A thread cannot be stopped; a process can. Each PDF or image is read by `python -m
ingest.sources.child` (pypdf, pypdfium2, Pillow and Tesseract; no Django: about 0.2 s to
start), which cannot allocate beyond PDF_MEMORY_LIMIT_MB (nor can the `tesseract` it
runs) and is killed, with its `tesseract`, once it runs past PDF_TIME_LIMIT for the
text layer plus OCR_PAGE_TIME_LIMIT for each page it reads by OCR (each `tesseract` is
also killed past OCR_PAGE_TIME_LIMIT by the child itself).

The child writes JSON lines on its stdout: how many pages are done of how many as each
is read (and, first, how many it will read by OCR), then the pages' text or the error
that refuses the document. The parent passes the counts on to `progress`, so a job
shows pages done while a scan is read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ingest.exceptions import (
    ContentTooLarge,
    EmptyDocument,
    IngestError,
    OcrUnavailable,
    UnreadableDocument,
)
from ingest.sources.ocr import OcrLimits

ROOT = Path(__file__).resolve().parents[2]  # the project, where `-m` finds the package
# The errors a child may answer, by name; anything else it says is a failed reader.
ERRORS: dict[str, type[IngestError]] = {
    error.__name__: error
    for error in (EmptyDocument, UnreadableDocument, ContentTooLarge, OcrUnavailable)
}

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Pages:
    """The text of each page (1-based by position), and why some were not read by OCR."""

    texts: list[str]
    not_read: str = ""


def read_in_child(
    kind: str,
    data: bytes,
    *,
    seconds: float,
    memory_mb: int,
    ocr: OcrLimits,
    progress: Callable[[int, int], None] | None = None,
) -> Pages:
    """The pages of a PDF (`kind` "pdf") or an image ("image"), read by a child process;
    the IngestError that refuses it otherwise, timeouts included."""
    config = {"kind": kind, "memory_mb": memory_mb, "ocr": dataclasses.asdict(ocr)}
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(
            [sys.executable, "-m", "ingest.sources.child", json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=ROOT,
            start_new_session=True,  # its own process group: its tesseract is killed with it
        )
        feeder = threading.Thread(target=_feed, args=(child.stdin, data), daemon=True)
        feeder.start()
        try:
            result = _listen(child, kind=kind, seconds=seconds, ocr=ocr, progress=progress)
        finally:
            _stop(child)
            feeder.join()
        if result is None:
            errors.seek(0)
            logger.warning(
                "%s reader exited %s: %s",
                kind,
                child.returncode,
                errors.read().decode(errors="replace")[-500:],
            )
            raise EmptyDocument(
                f"No text to index: the {_named(kind)} cannot be read (its reader failed)"
            )
    if "error" in result:
        raise ERRORS.get(result["error"], UnreadableDocument)(result["detail"])
    return Pages([str(text) for text in result["pages"]], str(result.get("not_read", "")))


def _listen(
    child: subprocess.Popen,
    *,
    kind: str,
    seconds: float,
    ocr: OcrLimits,
    progress: Callable[[int, int], None] | None,
) -> dict[str, Any] | None:
    """The child's messages until it ends: its counts passed to `progress`, its result
    returned (None if it gave none). Past the time limit, IngestError."""
    assert child.stdout is not None
    started = time.monotonic()
    deadline, by_ocr = started + seconds, None
    result, buffered = None, b""
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _too_slow(kind, seconds=seconds, ocr=ocr, by_ocr=by_ocr)
            if not selector.select(left):
                continue
            chunk = os.read(child.stdout.fileno(), 65536)
            if not chunk:
                return result
            *lines, buffered = (buffered + chunk).split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except ValueError:  # a library of the child's writing on its stdout
                    logger.warning("%s reader said: %r", kind, line[:200])
                    continue
                if "pages" in message or "error" in message:
                    result = message
                    continue
                if "ocr" in message:
                    by_ocr = int(message["ocr"])
                    deadline = started + seconds + by_ocr * ocr.page_seconds
                if progress is not None:
                    progress(int(message["done"]), int(message["total"]))


def _too_slow(kind: str, *, seconds: float, ocr: OcrLimits, by_ocr: int | None) -> IngestError:
    if not by_ocr:
        return EmptyDocument(
            f"No text to index: reading the {_named(kind)} took longer than {seconds:g} s "
            "(PDF_TIME_LIMIT); it may have been made to be slow"
        )
    limit = seconds + by_ocr * ocr.page_seconds
    return UnreadableDocument(
        f"No text to index: reading the {_named(kind)} took longer than {limit:g} s "
        f"({seconds:g} s, PDF_TIME_LIMIT, and {ocr.page_seconds:g} s, OCR_PAGE_TIME_LIMIT, "
        f"for each of the {by_ocr} pages read by OCR)"
    )


def _named(kind: str) -> str:
    return "PDF" if kind == "pdf" else "image"


def _feed(stdin: IO[bytes] | None, data: bytes) -> None:
    """Write the document to the child (in a thread: the pipe holds 64 KB)."""
    assert stdin is not None
    try:
        stdin.write(data)
        stdin.close()
    except OSError:  # the child has ended (refused, or killed)
        pass


def _stop(child: subprocess.Popen) -> None:
    """Kill the child and anything it started, unless it has ended; reap it."""
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


# -- the child -----------------------------------------------------------------------------


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def read_pdf(data: bytes, ocr: OcrLimits) -> dict[str, Any]:
    """A PDF's pages: their text layer as the PDF reader always read it, and where that is
    too thin (a scanned page), what OCR reads on the rendered page when it reads more."""
    from ingest.sources import ocr as scans
    from ingest.sources.pdf_text import pdf_layer, without_furniture

    layer = pdf_layer(data)
    texts = without_furniture(layer)
    thin = [number for number, text in enumerate(layer) if scans.is_thin(text)]
    not_read = ""
    if len(thin) > ocr.max_pages:
        raise ContentTooLarge(
            f"The PDF has {len(thin)} pages without a text layer; at most {ocr.max_pages} "
            "are read by OCR (OCR_MAX_PAGES)"
        )
    if thin:
        try:
            scans.check_tesseract(ocr)
        except OcrUnavailable as exc:
            if not any(text.strip() for text in texts):
                raise
            not_read, thin = f"{len(thin)} pages without a text layer were not read: {exc}", []
    total = len(layer)
    _say({"done": total - len(thin), "total": total, "ocr": len(thin)})
    read = []
    images = scans.pdf_page_images(data, thin, limits=ocr)
    for done, (number, (image, dpi)) in enumerate(zip(thin, images, strict=False), start=1):
        read.append(scans.read_image(image, limits=ocr, page=number + 1, dpi=dpi))
        _say({"done": total - len(thin) + done, "total": total})
    for number, text in zip(thin, without_furniture(read), strict=True):
        if scans.characters(text) > scans.characters(texts[number]):
            texts[number] = text
    return {"pages": texts, "not_read": not_read}


def read_image(data: bytes, ocr: OcrLimits) -> dict[str, Any]:
    """An image's pages (a TIFF's frames), each read by OCR."""
    from ingest.sources import ocr as scans
    from ingest.sources.pdf_text import without_furniture

    total, frames = scans.image_frames(data, limits=ocr)
    scans.check_tesseract(ocr)
    _say({"done": 0, "total": total, "ocr": total})
    read = []
    for done, (image, dpi) in enumerate(frames, start=1):
        read.append(scans.read_image(image, limits=ocr, page=done, dpi=dpi))
        _say({"done": done, "total": total})
    return {"pages": without_furniture(read)}


def main() -> None:
    """The child: the document on stdin, its configuration in argv[1], JSON lines on
    stdout (counts, then `{"pages": […]}` or `{"error": …, "detail": …}`)."""
    from ingest.sources.pdf_text import PdfRefused

    config = json.loads(sys.argv[1])
    memory = int(config["memory_mb"]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    data = sys.stdin.buffer.read()
    ocr = OcrLimits(**config["ocr"])
    named = _named(config["kind"])
    try:
        result = (read_pdf if config["kind"] == "pdf" else read_image)(data, ocr)
    except IngestError as exc:
        result = {"error": type(exc).__name__, "detail": str(exc)}
    except PdfRefused as exc:
        result = {"error": "EmptyDocument", "detail": str(exc)}
    except MemoryError:
        detail = f"No text to index: reading the {named} needs more than {config['memory_mb']} MB"
        result = {"error": "EmptyDocument", "detail": detail}
    _say(result)


if __name__ == "__main__":
    main()
