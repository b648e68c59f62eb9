"""OCR on real PDF pages: the character error rate of the service's OCR against the pages'
own text layer, retrieval MRR@10 over the pages read by OCR against the same pages read
from their text layer, and the service's OCR speed beside `tesseract` run by hand.

    .venv/bin/python bench/bench_ocr.py [--embedder minilm] [--no-hand]

Run from the project root. The pages are the 20 pages of prose and reference of the two
PDF manuals Debian ships on this machine (libtasn1-doc's libtasn1.pdf, pages 4-15, and
shared-mime-info's shared-mime-info-spec.pdf, pages 2-9; their table of contents left
out). Each is rendered by pypdfium2 at 300 dpi in grayscale without its text layer, as a
scanner at 300 dpi would see it, and saved as a PNG under bench/out/bench-ocr/.

- CER: Levenshtein distance over characters between the service's OCR text of a page
  (`ingest.sources.scans.read_image`) and the page's text layer (pypdf, as the service
  reads a text PDF), whitespace collapsed, divided by the text layer's length; all pages
  pooled (the sum of the distances over the sum of the lengths), and the worst page.
- MRR@10: each page is ingested as a document of its own through `POST /ingest/file`,
  once as the one-page PDF with its text layer and once as the PNG, each set in a vector
  store of its own; each question of bench/data/ocr_questions.json (written from the
  pages' text, each labelled with its page) is ranked by the store's search (hybrid,
  dense, BM25) and a question scores 1/rank of its page among the first 10 documents.
- Speed: pages/s of the service reading the PNGs one upload at a time (its child process,
  Pillow, Tesseract), and reading the 20 pages as one scanned PDF (rendered again by
  pypdfium2), beside `tesseract page.png stdout` run by hand on the same PNGs, with
  OMP_THREAD_LIMIT=1 as the service runs it (the floor) and with Tesseract's own threads.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / "bench" / "out" / "bench-ocr"
QUESTIONS = ROOT / "bench" / "data" / "ocr_questions.json"
SOURCES = {
    "libtasn1.pdf": (Path("/usr/share/doc/libtasn1-doc/libtasn1.pdf"), range(4, 16)),
    "shared-mime-info-spec.pdf": (
        Path("/usr/share/doc/shared-mime-info/shared-mime-info-spec.pdf"),
        range(2, 10),
    ),
}
DPI = 300
K = 10

ARGS = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
ARGS.add_argument("--embedder", default="minilm", help="minilm (default) or hashing-v1")
ARGS.add_argument("--no-hand", action="store_true", help="skip tesseract run by hand")
ARGS = ARGS.parse_args()

sys.path.insert(0, str(ROOT))
shutil.rmtree(WORKDIR, ignore_errors=True)
WORKDIR.mkdir(parents=True)
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "ENV_FILE": "",
        "EMBEDDER": ARGS.embedder,
        "API_KEYS_REQUIRED": "false",
        "DATABASE_URL": f"sqlite:///{WORKDIR / 'db.sqlite3'}",
        "DATA_DIR": str(WORKDIR),
    }
)

import django  # noqa: E402

django.setup()

import pypdfium2  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from PIL import Image  # noqa: E402
from pypdf import PdfReader, PdfWriter  # noqa: E402

from ingest.search.embeddings import get_embedder  # noqa: E402
from ingest.search.lexical import terms  # noqa: E402
from ingest.sources.extraction import normalise_whitespace  # noqa: E402
from ingest.sources.scans import read_image, read_pdf  # noqa: E402
from ingest.stores import get_vector_store  # noqa: E402

METHODS = {"hybrid": "hybrid (RRF)", "dense": "dense", "lexical": "BM25"}


def page_name(source: str, number: int) -> str:
    return f"{source.removesuffix('.pdf')}-p{number:02d}"


def pages() -> list[tuple[str, bytes, bytes, str]]:
    """Each page: its name, a one-page PDF with its text layer, its 300 dpi PNG, and its
    text layer as the service reads it."""
    made = []
    for source, (path, numbers) in SOURCES.items():
        if not path.exists():
            sys.exit(f"{path} is missing: apt-get install libtasn1-doc shared-mime-info")
        reader = PdfReader(path)
        document = pypdfium2.PdfDocument(str(path))
        for number in numbers:
            single = PdfWriter()
            single.add_page(reader.pages[number - 1])
            pdf = io.BytesIO()
            single.write(pdf)
            image = document[number - 1].render(scale=DPI / 72, grayscale=True).to_pil()
            png = io.BytesIO()
            image.convert("L").save(png, "PNG", dpi=(DPI, DPI))
            name = page_name(source, number)
            (WORKDIR / f"{name}.png").write_bytes(png.getvalue())
            layer = read_pdf(pdf.getvalue(), charset=None).sections[0].text
            made.append((name, pdf.getvalue(), png.getvalue(), normalise_whitespace(layer)))
    return made


def distance(a: str, b: str) -> int:
    """Levenshtein distance over characters (one row at a time)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, start=1):
        current = [i]
        for j, y in enumerate(b, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def flat(text: str) -> str:
    return " ".join(text.split())


def hand_tesseract(png: Path, *, one_thread: bool) -> float:
    """Seconds `tesseract page.png stdout` takes on a page."""
    env = dict(os.environ)
    if one_thread:
        env["OMP_THREAD_LIMIT"] = "1"
    else:
        env.pop("OMP_THREAD_LIMIT", None)
    started = time.perf_counter()
    command = ["tesseract", str(png), "stdout", "-l", "eng", "--psm", "3"]
    subprocess.run(command, env=env, capture_output=True, check=True)
    return time.perf_counter() - started


def ranks(client: Client, mode: str, files: dict[str, bytes], questions: list[dict]) -> dict:
    """Ingest the pages as documents of their own into a store of their own; the rank of
    each question's page under each method (None past K)."""
    with override_settings(VECTOR_JSON_PATH=WORKDIR / mode / "vectors.json"):
        (WORKDIR / mode).mkdir()
        started = time.perf_counter()
        for name, data in files.items():
            response = client.post(
                "/ingest/file",
                {"file": _named(name, data), "workspace": mode},
            )
            if response.status_code != 200:
                sys.exit(f"{name}: {response.status_code} {response.content[:300]!r}")
        ingest_seconds = time.perf_counter() - started
        store, embedder = get_vector_store(), get_embedder()
        found: dict[str, list[int | None]] = {method: [] for method in METHODS}
        names = {document["fileId"]: document["filename"] for document in _listed(client, mode)}
        for question in questions:
            query = embedder.embed([question["q"]])[0]
            for method in METHODS:
                hits = store.search(
                    query, terms(question["q"]), workspace=mode, top_k=60, method=method
                ).hits
                found[method].append(first_rank([names[h.file_id] for h in hits], question))
    return {"ranks": found, "ingest_seconds": ingest_seconds}


def _named(name: str, data: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)


def _listed(client: Client, workspace: str) -> list[dict]:
    return client.get("/documents", {"workspace": workspace, "limit": 500}).json()["items"]


def first_rank(filenames: list[str], question: dict) -> int | None:
    seen: list[str] = []
    for filename in filenames:
        stem = filename.rsplit(".", 1)[0]
        if stem not in seen:
            seen.append(stem)
            if stem == question["page"]:
                return len(seen) if len(seen) <= K else None
    return None


def mrr(found: list[int | None]) -> float:
    return sum(1 / rank for rank in found if rank) / len(found)


def main() -> None:
    call_command("migrate", verbosity=0)
    made = pages()
    pngs = [WORKDIR / f"{name}.png" for name, *_ in made]
    print(f"{len(made)} pages rendered at {DPI} dpi into {WORKDIR}", flush=True)

    # The service's reader, one PNG at a time (as a client uploading photos of pages),
    # and tesseract by hand on the same page right after it: the machine is shared, so
    # each page is timed three ways under the same load.
    ocr_text: dict[str, str] = {}
    seconds = {"service": 0.0, "hand": 0.0, "threads": 0.0}
    if ARGS.no_hand:
        seconds.update(hand=float("nan"), threads=float("nan"))
    for (name, _, png, _), path in zip(made, pngs, strict=True):
        started = time.perf_counter()
        sections = read_image(png, charset=None).sections
        seconds["service"] += time.perf_counter() - started
        ocr_text[name] = normalise_whitespace("\n".join(s.text for s in sections))
        if not ARGS.no_hand:
            seconds["hand"] += hand_tesseract(path, one_thread=True)
            seconds["threads"] += hand_tesseract(path, one_thread=False)

    # The service's reader on the pages as one scanned PDF, and the floor just after.
    scanned = io.BytesIO()
    images = [Image.open(png) for png in pngs]
    images[0].save(scanned, "PDF", save_all=True, append_images=images[1:], resolution=DPI)
    heard: list[tuple[int, int]] = []
    started = time.perf_counter()
    read = read_pdf(scanned.getvalue(), charset=None, progress=lambda *n: heard.append(n))
    service_pdf = time.perf_counter() - started
    assert len(read.sections) == len(made) and heard[-1] == (len(made), len(made)), heard
    hand_after_pdf = float("nan")
    if not ARGS.no_hand:
        hand_after_pdf = sum(hand_tesseract(path, one_thread=True) for path in pngs)

    # Character error rate.
    edits, lengths, per_page = 0, 0, []
    for name, _, _, layer in made:
        reference, hypothesis = flat(layer), flat(ocr_text[name])
        edit = distance(reference, hypothesis)
        edits, lengths = edits + edit, lengths + len(reference)
        per_page.append((edit / len(reference), name))

    # Retrieval over the pages read by OCR and read from their text layer.
    questions = json.loads(QUESTIONS.read_text())["questions"]
    client = Client()
    layer_run = ranks(client, "layer", {f"{n}.pdf": pdf for n, pdf, _, _ in made}, questions)
    ocr_run = ranks(client, "ocr", {f"{n}.png": png for n, _, png, _ in made}, questions)

    n = len(made)
    print(f"\nOCR quality on {n} real pages ({lengths:,} characters of text layer)")
    print(f"  CER, all pages pooled: {edits / lengths:.2%}")
    worst = max(per_page)
    print(
        f"  CER per page: median {statistics.median(r for r, _ in per_page):.2%}, "
        f"worst {worst[0]:.2%} ({worst[1]})"
    )
    print(f"\nMRR@{K} over {len(questions)} questions, each answered by one page ({ARGS.embedder})")
    print(f"  {'ranking':<14} {'text layer':>10} {'OCR':>8}   hit@1 layer / OCR")
    for method, label in METHODS.items():
        layer_ranks, ocr_ranks = layer_run["ranks"][method], ocr_run["ranks"][method]
        print(
            f"  {label:<14} {mrr(layer_ranks):>10.3f} {mrr(ocr_ranks):>8.3f}   "
            f"{layer_ranks.count(1)} / {ocr_ranks.count(1)}"
        )
    print(f"\nOCR speed on {os.cpu_count()} cores, {n} pages at {DPI} dpi (pages/s)")
    rows = [
        ("service, each page a PNG upload (read_image)", seconds["service"]),
        ("  tesseract by hand, OMP_THREAD_LIMIT=1 (floor)", seconds["hand"]),
        ("  tesseract by hand, its own threads", seconds["threads"]),
        ("service, the pages as one scanned PDF (read_pdf)", service_pdf),
        ("  tesseract by hand just after, OMP_THREAD_LIMIT=1", hand_after_pdf),
    ]
    for label, spent in rows:
        print(f"  {label:<50} {n / spent:6.2f}  ({spent:.1f} s)")
    print(
        "  POST /ingest/file, read and embedded: the PNGs "
        f"{n / ocr_run['ingest_seconds']:.2f}, the text-layer PDFs "
        f"{n / layer_run['ingest_seconds']:.2f}"
    )


if __name__ == "__main__":
    main()
