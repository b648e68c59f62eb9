"""A PDF's text, read in a child process under a time and a memory limit.

pypdf is pure Python, and a PDF can be made to be slow: a page of a million tiny text
operators costs about ten seconds and compresses to a few kilobytes, so a small upload
of such pages could hold a worker thread (and a share of its process's GIL) for hours.
A thread cannot be stopped; a process can. Each PDF is read by `python -m
ingest.sources.pdf_text` (pypdf only, no Django: about 0.2 s to start), which is killed
when it runs past PDF_TIME_LIMIT and cannot allocate beyond PDF_MEMORY_LIMIT_MB.
"""

from __future__ import annotations

import io
import json
import logging
import re
import resource
import subprocess
import sys
from pathlib import Path

MAX_PDF_PAGES = 2000
EDGE_LINES = 2  # lines at the top and at the bottom of a page where furniture sits
FURNITURE_SHARE = 0.5  # of the pages (at least 3) a line must recur on to be furniture
# A table of contents' entry: a title, dot leaders, a page number ("1 Introduction .... 3").
_DOT_LEADER = re.compile(r"(?:\.\s*){4,}\s*[\divxlcIVXLC]+\s*$|(?:\s\.){3,}")
_DIGITS = re.compile(r"\d+")
ROOT = Path(__file__).resolve().parents[2]  # the project, where `-m` finds the package

logger = logging.getLogger(__name__)


class PdfRefused(Exception):
    """The PDF cannot be read, or not within the limits; the message says why."""


def pdf_pages(data: bytes) -> list[str]:
    """The text of every page, in order (in this process: the child's work)."""
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise PdfRefused("No text to index: the PDF is encrypted with a password")
        pages = reader.pages
        if len(pages) > MAX_PDF_PAGES:
            raise PdfRefused(f"The PDF has {len(pages)} pages; at most {MAX_PDF_PAGES} are read")
        return without_furniture([page.extract_text() or "" for page in pages])
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


def read_pdf_pages(data: bytes, *, seconds: float, memory_mb: int) -> list[str]:
    """The text of each of the PDF's pages, read by a child process; PdfRefused when it
    cannot be read, runs past `seconds` or needs more than `memory_mb`."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ingest.sources.pdf_text", str(memory_mb)],
            input=data,
            capture_output=True,
            timeout=seconds,
            cwd=ROOT,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed the child
        raise PdfRefused(
            f"No text to index: reading the PDF took longer than {seconds:g} s "
            "(PDF_TIME_LIMIT); it may have been made to be slow"
        ) from None
    try:
        result = json.loads(done.stdout)
    except ValueError:
        logger.warning(
            "PDF reader exited %s: %s", done.returncode, done.stderr.decode(errors="replace")[-500:]
        )
        raise PdfRefused("No text to index: the PDF cannot be read (its reader failed)") from None
    if "refused" in result:
        raise PdfRefused(result["refused"])
    return [str(page) for page in result["pages"]]


def main() -> None:
    """The child: the PDF on stdin, `{"pages": […]}` or `{"refused": …}` on stdout."""
    memory = int(sys.argv[1]) * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    data = sys.stdin.buffer.read()
    try:
        result: dict[str, object] = {"pages": pdf_pages(data)}
    except PdfRefused as exc:
        result = {"refused": str(exc)}
    except MemoryError:
        result = {"refused": f"No text to index: reading the PDF needs more than {sys.argv[1]} MB"}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
