"""Scans read by OCR through the API: images of text (PNG, JPEG, each frame of a TIFF) and
PDF pages without a text layer, each page cited by its number; a mixed PDF's text pages
kept as they are; and every hostile scan refused with nothing stored (issue 33).

The scans are made as a scanner would: text drawn on a white page by Pillow with a real
TrueType font, saved as an image or as a PDF page with no text layer.
"""

from __future__ import annotations

import io
import struct
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image, ImageDraw, ImageFont
from pypdf import PdfReader, PdfWriter

from ingest.sources.extraction import extract
from tests.support.client import ask, upload
from tests.support.documents import HANDBOOK_PDF_PAGES, make_pdf
from tests.support.inspection import stored_chunks, stored_text, vector_file_ids
from tests.support.live import LiveService, multipart
from tests.support.processes import running_worker

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
BOILER = "The boiler room key is kept by the night porter."
PAGES = [
    "Maintenance notes\nThe boiler room key is kept\nby the night porter.",
    "Fire drills\nFire drills are held on the first\nMonday of every quarter.",
    "Deliveries\nDeliveries arrive at the north gate\nbefore seven in the morning.",
]


def scanned_page(text: str) -> Image.Image:
    """A page of text as a scanner at 150 dpi sees it: black on white, half a letter page."""
    font = ImageFont.truetype(str(FONT), 32) if FONT.exists() else ImageFont.load_default(size=32)
    page = Image.new("L", (1275, 600), 255)
    ImageDraw.Draw(page).multiline_text((80, 80), text, fill=0, font=font, spacing=14)
    return page


def saved(pages: list[Image.Image], format: str, **options: object) -> bytes:
    """The pages saved in one file (TIFF and PDF: a page each)."""
    out = io.BytesIO()
    more = {"save_all": True, "append_images": pages[1:]} if len(pages) > 1 else {}
    pages[0].save(out, format, **more, **options)
    return out.getvalue()


def scanned_pdf(texts: list[str]) -> bytes:
    """A PDF of scanned pages: an image each, no text layer."""
    return saved([scanned_page(text) for text in texts], "PDF", resolution=150)


def tiff_of_frames(count: int) -> bytes:
    """A TIFF of `count` white 8 by 8 frames sharing one strip, written directly (Pillow
    takes half a minute to save 5,000 frames)."""
    strip, first = 8, 16
    entries = [(256, 8), (257, 8), (258, 1), (259, 1), (262, 0), (273, strip), (278, 8)]
    entries.append((279, 8))
    size = 2 + 12 * len(entries) + 4
    out = bytearray(b"II*\x00" + struct.pack("<I", first) + b"\x00" * 8)
    for frame in range(count):
        following = first + (frame + 1) * size if frame + 1 < count else 0
        out += struct.pack("<H", len(entries))
        out += b"".join(struct.pack("<HHII", tag, 4, 1, value) for tag, value in entries)
        out += struct.pack("<I", following)
    return bytes(out)


def read_pages(name: str, data: bytes, progress: Callable[[int, int], None] | None = None):
    """The sections a reader makes of the file, (pages, text) each, as the API reads it."""
    extracted = extract(data, filename=name, progress=progress)
    return [(section.pages, section.text) for section in extracted.sections]


def refused(api, data_dir: Path, name: str, data: bytes, status: int) -> str:
    """Upload a file that must be refused with `status`; its message, once it is certain
    nothing was stored."""
    response = upload(api, name, data)
    assert response.status_code == status, response.json()
    assert vector_file_ids(data_dir) == []
    assert api.get("/documents").json()["total"] == 0
    return response.json()["detail"]


class TestImages:
    def test_a_png_is_read_by_ocr_and_answers_a_question_with_an_exact_quote(
        self, api, registry_mode, data_dir: Path
    ):
        response = upload(api, "notes.png", saved([scanned_page(PAGES[0])], "PNG"))
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == "image/png"
        assert BOILER in " ".join(stored_text(data_dir).split())
        answer = ask(api, "Who keeps the boiler room key?")
        assert BOILER in answer["answer"]
        assert answer["sources"][0]["fileId"] == response.json()["fileId"]
        assert answer["sources"][0]["pageSpan"] == {"firstPage": 1, "lastPage": 1}

    def test_a_jpeg_photo_of_a_page_is_read(self, api, data_dir: Path):
        response = upload(api, "drills.jpg", saved([scanned_page(PAGES[1])], "JPEG", quality=85))
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == "image/jpeg"
        assert "first Monday of every quarter" in " ".join(stored_text(data_dir).split())

    def test_each_frame_of_a_tiff_is_a_page_of_its_own(self, api, data_dir: Path):
        tiff = saved([scanned_page(text) for text in PAGES], "TIFF", compression="tiff_lzw")
        heard: list[tuple[int, int]] = []
        pages = read_pages("notes.tiff", tiff, progress=lambda *count: heard.append(count))
        assert [span for span, _ in pages] == [(1, 1), (2, 2), (3, 3)]
        assert "night porter" in pages[0][1] and "north gate" in pages[2][1]
        assert heard == [(0, 3), (1, 3), (2, 3), (3, 3)]  # each page as it is read
        response = upload(api, "notes.tiff", tiff)
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == "image/tiff"
        chunks = stored_chunks(data_dir)
        assert [chunk["pages"] for chunk in chunks] == [[1, 1], [2, 2], [3, 3]]
        assert ["night porter" in " ".join(chunk["text"].split()) for chunk in chunks] == [
            True,
            False,
            False,
        ]
        assert "north gate" in " ".join(chunks[2]["text"].split())


class TestScannedPdfs:
    def test_a_pdf_page_without_a_text_layer_is_read_by_ocr_and_cited_by_page(
        self, api, registry_mode, data_dir: Path
    ):
        pdf = scanned_pdf(PAGES[:2])
        assert [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages] == ["", ""]
        pages = read_pages("scan.pdf", pdf)
        assert [span for span, _ in pages] == [(1, 1), (2, 2)]
        assert "Fire drills" in pages[1][1]
        response = upload(api, "scan.pdf", pdf)
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == "application/pdf"
        assert [chunk["pages"] for chunk in stored_chunks(data_dir)] == [[1, 1], [2, 2]]
        answer = ask(api, "When are fire drills held?")
        assert "Fire drills are held on the first Monday of every quarter." in answer["answer"]
        assert answer["sources"][0]["pageSpan"] == {"firstPage": 2, "lastPage": 2}

    def test_a_mixed_pdf_keeps_its_text_pages_and_reads_only_its_scan_by_ocr(
        self, api, data_dir: Path
    ):
        text_pdf = make_pdf(HANDBOOK_PDF_PAGES)
        mixed = PdfWriter()
        for part in (text_pdf, scanned_pdf(PAGES[2:])):
            mixed.append(io.BytesIO(part))
        out = io.BytesIO()
        mixed.write(out)
        heard: list[tuple[int, int]] = []
        pages = read_pages("mixed.pdf", out.getvalue(), lambda *count: heard.append(count))
        assert pages[:2] == read_pages("handbook.pdf", text_pdf)  # exactly as before
        assert pages[2][0] == (3, 3) and "north gate" in pages[2][1]
        assert heard == [(2, 3), (3, 3)]  # two pages from their layer, one by OCR
        response = upload(api, "mixed.pdf", out.getvalue())
        assert response.status_code == 200, response.json()
        chunks = stored_chunks(data_dir)
        assert [chunk["pages"] for chunk in chunks] == [[1, 1], [2, 2], [3, 3]]
        assert "Parking is free for employees in lot B." in chunks[0]["text"]
        assert "north gate" in " ".join(chunks[2]["text"].split())

    def test_a_blank_page_is_not_read_and_a_pdf_of_them_is_explained(self, api, data_dir: Path):
        detail = refused(api, data_dir, "blank.pdf", make_pdf(["", ""]), 422)
        assert detail.startswith("No text to index") and "no text layer" in detail


class TestHostileScans:
    def test_an_image_bomb_is_refused_413_without_being_decoded(self, api, data_dir: Path):
        """A PNG of a hundred bytes declaring 100,000 by 100,000 pixels."""

        def chunk(kind: bytes, body: bytes) -> bytes:
            crc = zlib.crc32(kind + body)
            return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

        header = struct.pack(">IIBBBBB", 100_000, 100_000, 1, 0, 0, 0, 0)
        bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        bomb += chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
        detail = refused(api, data_dir, "bomb.png", bomb, 413)
        assert "MAX_IMAGE_PIXELS" in detail

    def test_an_image_past_a_lowered_pixel_limit_is_refused_413(
        self, api, settings, data_dir: Path
    ):
        settings.MAX_IMAGE_PIXELS = 200_000
        page = saved([scanned_page(PAGES[0])], "PNG")  # 765,000 pixels
        assert "MAX_IMAGE_PIXELS" in refused(api, data_dir, "large.png", page, 413)

    def test_a_tiff_of_5000_frames_is_refused_413_before_any_is_read(self, api, data_dir: Path):
        tiff = tiff_of_frames(5000)
        assert Image.open(io.BytesIO(tiff)).n_frames == 5000
        started = time.monotonic()
        detail = refused(api, data_dir, "many.tiff", tiff, 413)
        assert "OCR_MAX_PAGES" in detail and "500" in detail
        assert time.monotonic() - started < 10  # not 5,000 pages of OCR

    @pytest.mark.parametrize(
        ("name", "format"), [("cut.png", "PNG"), ("cut.jpg", "JPEG"), ("cut.tiff", "TIFF")]
    )
    def test_a_truncated_image_is_refused_422(self, api, data_dir: Path, name, format):
        whole = saved([scanned_page(PAGES[0])], format)
        detail = refused(api, data_dir, name, whole[: len(whole) // 2], 422)
        assert "image cannot be read" in detail

    def test_a_truncated_scanned_pdf_is_refused_422(self, api, data_dir: Path):
        whole = scanned_pdf(PAGES[:2])
        detail = refused(api, data_dir, "cut.pdf", whole[: len(whole) // 2], 422)
        assert detail.startswith("No text to index")

    def test_without_tesseract_a_scan_is_503_naming_the_package_but_text_pdfs_read(
        self, api, settings, data_dir: Path
    ):
        settings.TESSERACT_COMMAND = str(data_dir / "no-such-tesseract")
        scans = {"notes.png": saved([scanned_page(PAGES[0])], "PNG")}
        scans["scan.pdf"] = scanned_pdf(PAGES[:1])
        for name, data in scans.items():
            detail = refused(api, data_dir, name, data, 503)
            assert "tesseract-ocr and tesseract-ocr-eng" in detail
        response = upload(api, "handbook.pdf", make_pdf(HANDBOOK_PDF_PAGES))
        assert response.status_code == 200, response.json()

    def test_a_missing_language_pack_is_503_naming_its_package(self, api, settings, data_dir: Path):
        settings.OCR_LANGUAGES = "eng+chi_sim"
        page = saved([scanned_page(PAGES[0])], "PNG")
        detail = refused(api, data_dir, "notes.png", page, 503)
        assert "tesseract-ocr-chi-sim" in detail and "OCR_LANGUAGES" in detail


@pytest.mark.django_db(transaction=True)  # the server and its worker commit
def test_a_scan_ingested_in_the_background_reports_its_pages(
    start_live_service: Callable[..., LiveService],
):
    service = start_live_service()
    tiff = saved([scanned_page(text) for text in PAGES], "TIFF", compression="tiff_lzw")
    body, headers = multipart("notes.tiff", tiff, {"async": "true"})
    status, _, job = service.request("POST", "/ingest/file", body, headers)
    assert status == 202, job
    with running_worker(service.env):
        deadline = time.monotonic() + 60
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            assert time.monotonic() < deadline, job
            time.sleep(0.2)
            job = service.call("GET", f"/jobs/{job['jobId']}")[1]
    assert job["status"] == "succeeded", job
    assert (job["progress"]["pagesDone"], job["progress"]["pagesTotal"]) == (3, 3)
