"""Extraction speed of the Office, OpenDocument, e-book, RTF and e-mail formats and of
spreadsheets, beside each library's own parse.

    .venv/bin/python bench/bench_formats.py [--rows 50000] [--pages 200] [--slides 50]
                                            [--rounds 3]

Generates realistic files in memory: a Word document of about `--pages` pages (headings,
paragraphs, lists, a table every ten pages), the same text written by pandoc as .odt,
.epub and .rtf, a deck of `--slides` slides (title, bullets, notes, a table on every
fifth) and an .odp of as many slides by odfpy (title, bullets, notes), a sheet of `--rows`
rows by 6 columns as .xlsx (openpyxl), .xls (xlwt), .ods (the tests' writer) and CSV, and
an e-mail (the `email` package) with a plain body and a PDF of `--pages` / 10 pages
attached, that PDF also timed alone. For each it times the service's reader
(`extraction.extract`: detection, the zip limits and XML checks, the reader, the
whitespace normalising) and the floor: the library's own parse of the same file, touching
every text (python-docx's paragraphs and table cells, python-pptx's shapes' text frames,
openpyxl read-only values, xlrd's rows, ElementTree iterparse of an .ods's content.xml,
csv.reader; ElementTree's `itertext()` of the members the service reads for .odt, .odp
(content.xml) and .epub (container.xml, the package, the spine's chapters); striprtf's
`rtf_to_text`; `email.message_from_bytes` and `get_content()` of every part; pypdf's
`extract_text()` of every page). Prints the median of `--rounds` rounds as MB/s and pages,
slides or rows per second.
"""

from __future__ import annotations

import argparse
import csv
import email
import io
import os
import posixpath
import random
import statistics
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ENV_FILE", "")

import django  # noqa: E402

django.setup()

from ingest.sources.extraction import extract  # noqa: E402
from tests.support.documents import make_pdf  # noqa: E402
from tests.support.office_files import make_ods  # noqa: E402

WORDS = (
    "the crew checks every harness before work at height begins and records the result "
    "in the site log which the depot manager reviews each friday with the safety officer "
    "while vans are refuelled cables coiled and generators serviced under contract"
).split()


def sentence(rng: random.Random, words: int = 18) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def make_docx(pages: int) -> bytes:
    import docx

    rng = random.Random(1)
    document = docx.Document()
    document.add_paragraph("Operations manual", style="Title")
    for page in range(pages):  # about 500 words a page
        if page % 5 == 0:
            document.add_heading(f"Chapter {page // 5 + 1}", level=1)
        document.add_heading(f"Section {page + 1}", level=2)
        for _ in range(5):
            document.add_paragraph(" ".join(sentence(rng) for _ in range(5)))
        for _ in range(3):
            document.add_paragraph(sentence(rng, 10), style="List Bullet")
        if page % 10 == 0:
            table = document.add_table(rows=6, cols=4)
            for cell in table._cells:
                cell.text = sentence(rng, 3)
    return _saved(document)


def make_pptx(slides: int) -> bytes:
    import pptx
    from pptx.util import Inches

    rng = random.Random(2)
    deck = pptx.Presentation()
    for number in range(slides):
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = f"Slide {number + 1}: {sentence(rng, 4)}"
        frame = slide.placeholders[1].text_frame
        frame.text = sentence(rng, 10)
        for _ in range(4):
            frame.add_paragraph().text = sentence(rng, 10)
        slide.notes_slide.notes_text_frame.text = " ".join(sentence(rng) for _ in range(3))
        if number % 5 == 0:
            shape = slide.shapes.add_table(4, 3, Inches(1), Inches(5), Inches(6), Inches(1))
            for cell in shape.table.iter_cells():
                cell.text = sentence(rng, 2)
    return _saved(deck)


def make_markdown(pages: int) -> str:
    """The Word document's text as Markdown, for pandoc: the same headings, paragraphs,
    lists and tables (of other words: `rng` is the same, the calls differ)."""
    rng = random.Random(1)
    blocks = ["---\ntitle: Operations manual\n---"]
    for page in range(pages):
        if page % 5 == 0:
            blocks.append(f"# Chapter {page // 5 + 1}")
        blocks.append(f"## Section {page + 1}")
        blocks += [" ".join(sentence(rng) for _ in range(5)) for _ in range(5)]
        blocks.append("\n".join(f"- {sentence(rng, 10)}" for _ in range(3)))
        if page % 10 == 0:
            rows = [[sentence(rng, 3) for _ in range(4)] for _ in range(6)]
            lines = [rows[0], ["---"] * 4, *rows[1:]]
            blocks.append("\n".join("| " + " | ".join(row) + " |" for row in lines))
    return "\n\n".join(blocks) + "\n"


def make_pandoc(markdown: str, kind: str) -> bytes:
    """`markdown` written by pandoc as an `kind` file (odt, epub, rtf)."""
    import pypandoc

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"made.{kind}"
        pypandoc.convert_text(
            markdown, kind, format="markdown", outputfile=str(path), extra_args=["--standalone"]
        )
        return path.read_bytes()


def make_odp(slides: int) -> bytes:
    from odf.draw import Frame, Page, TextBox
    from odf.namespaces import PRESENTATIONNS
    from odf.opendocument import OpenDocumentPresentation
    from odf.presentation import Notes
    from odf.style import MasterPage, PageLayout
    from odf.text import List, ListItem, P

    rng = random.Random(2)
    deck = OpenDocumentPresentation()
    layout = PageLayout(name="layout")
    deck.automaticstyles.addElement(layout)
    master = MasterPage(name="master", pagelayoutname=layout)
    deck.masterstyles.addElement(master)

    def shape(kind: str, texts: list[str], *, listed: bool = False) -> Frame:
        frame, box = Frame(width="20cm", height="4cm", x="2cm", y="2cm"), TextBox()
        frame.setAttrNS(PRESENTATIONNS, "class", kind)
        blocks = [P(text=text) for text in texts]
        if listed:  # the bullets: a list of items, each a paragraph
            bullets = List()
            for block in blocks:
                item = ListItem()
                item.addElement(block)
                bullets.addElement(item)
            blocks = [bullets]
        for block in blocks:
            box.addElement(block)
        frame.addElement(box)
        return frame

    for number in range(slides):
        slide = Page(masterpagename=master, name=f"page{number + 1}")
        slide.addElement(shape("title", [f"Slide {number + 1}: {sentence(rng, 4)}"]))
        slide.addElement(shape("outline", [sentence(rng, 10) for _ in range(5)], listed=True))
        notes = Notes()
        notes.addElement(shape("notes", [" ".join(sentence(rng) for _ in range(3))]))
        slide.addElement(notes)
        deck.presentation.addElement(slide)
    return _saved(deck, "write")


def make_pdf_pages(pages: int) -> bytes:
    rng = random.Random(4)
    return make_pdf(["\n".join(sentence(rng, 12) for _ in range(40)) for _ in range(pages)])


def make_eml(attachment: bytes) -> bytes:
    rng = random.Random(5)
    mail = EmailMessage()
    mail["Subject"], mail["From"] = "Depot inspection", "Ann Lee <ann@example.org>"
    mail["To"], mail["Date"] = "crew@example.org", "Mon, 03 Mar 2025 10:15:00 +0100"
    mail.set_content("\n\n".join(" ".join(sentence(rng) for _ in range(5)) for _ in range(10)))
    mail.add_attachment(attachment, maintype="application", subtype="pdf", filename="log.pdf")
    return bytes(mail)


HEADER = ["Ticket", "Customer", "Opened", "Hours", "Status", "Summary"]


def sheet_rows(rows: int) -> list[list[object]]:
    rng = random.Random(3)
    return [
        [n, f"Customer {rng.randint(1, 900)}", f"2024-{n % 12 + 1:02d}-{n % 28 + 1:02d}",
         round(rng.uniform(0.5, 40), 1), rng.choice(["open", "closed", "waiting"]),
         sentence(rng, 8)]
        for n in range(rows)
    ]  # fmt: skip


def make_xlsx(rows: list[list[object]]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Tickets")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    return _saved(book)


def make_xls(rows: list[list[object]]) -> bytes:
    import xlwt

    book = xlwt.Workbook()
    sheet = book.add_sheet("Tickets")
    for r, row in enumerate([HEADER, *rows]):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    return _saved(book)


def make_csv(rows: list[list[object]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([HEADER, *rows])
    return buffer.getvalue().encode()


def _saved(document: object, method: str = "save") -> bytes:
    buffer = io.BytesIO()
    getattr(document, method)(buffer)
    return buffer.getvalue()


# -- the floors: each library's own parse, touching every text --------------------------


def floor_docx(data: bytes) -> int:
    import docx

    document = docx.Document(io.BytesIO(data))
    count = sum(len(p.text) for p in document.paragraphs)
    for table in document.tables:
        count += sum(len(cell.text) for row in table.rows for cell in row.cells)
    return count


def floor_pptx(data: bytes) -> int:
    import pptx

    count = 0
    for slide in pptx.Presentation(io.BytesIO(data)).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                count += len(shape.text_frame.text)
            elif shape.has_table:
                count += sum(len(cell.text) for cell in shape.table.iter_cells())
        if slide.has_notes_slide:
            count += len(slide.notes_slide.notes_text_frame.text)
    return count


def floor_xlsx(data: bytes) -> int:
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    count = sum(1 for sheet in book.worksheets for _ in sheet.iter_rows(values_only=True))
    book.close()
    return count


def floor_xls(data: bytes) -> int:
    import xlrd

    book = xlrd.open_workbook(file_contents=data)
    return sum(len(sheet.row_values(r)) for sheet in book.sheets() for r in range(sheet.nrows))


def floor_ods(data: bytes) -> int:
    content = zipfile.ZipFile(io.BytesIO(data)).read("content.xml")
    count = 0
    # The floor: the standard parser, on the file this script just wrote.
    for _, element in ElementTree.iterparse(io.BytesIO(content)):  # noqa: S314
        if element.tag.endswith("}table-row"):
            count += sum(len(text) for text in element.itertext())
            element.clear()
    return count


def floor_csv(data: bytes) -> int:
    return sum(1 for _ in csv.reader(io.StringIO(data.decode())))


def floor_xml(data: bytes, members: tuple[str, ...]) -> int:
    archive = zipfile.ZipFile(io.BytesIO(data))
    # The floor: the standard parser, on the file this script just wrote.
    trees = [ElementTree.fromstring(archive.read(member)) for member in members]  # noqa: S314
    return sum(len(text) for tree in trees for text in tree.itertext())


def epub_members(data: bytes) -> tuple[str, ...]:
    """What the service reads of an EPUB: container.xml, the package, the spine's chapters."""
    archive = zipfile.ZipFile(io.BytesIO(data))
    container = "META-INF/container.xml"
    tree = ElementTree.fromstring(archive.read(container))  # noqa: S314
    package = next(e.get("full-path", "") for e in tree.iter() if e.tag.endswith("}rootfile"))
    tree = ElementTree.fromstring(archive.read(package))  # noqa: S314
    items = {e.get("id"): e for e in tree.iter() if e.tag.endswith("}item")}
    spine = [items[e.get("idref")] for e in tree.iter() if e.tag.endswith("}itemref")]
    chapters = [
        posixpath.join(posixpath.dirname(package), item.get("href", ""))
        for item in spine
        if "nav" not in item.get("properties", "").split()
    ]
    return (container, package, *chapters)


def floor_rtf(data: bytes) -> int:
    from striprtf.striprtf import rtf_to_text

    return len(rtf_to_text(data.decode("latin-1")))


def floor_eml(data: bytes) -> int:
    message = email.message_from_bytes(data, policy=policy.default)
    parts = [part for part in message.walk() if not part.is_multipart()]
    return sum(len(part.get_content()) for part in parts)  # type: ignore[attr-defined]


def floor_pdf(data: bytes) -> int:
    import pypdf

    return sum(len(page.extract_text()) for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def timed(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--slides", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print("Generating files…", flush=True)
    rows = sheet_rows(args.rows)
    ods_rows = [[str(value) for value in row] for row in [HEADER, *rows]]
    markdown = make_markdown(args.pages)
    epub = make_pandoc(markdown, "epub")
    content = partial(floor_xml, members=("content.xml",))
    attached, attached_pages = make_pdf_pages(args.pages // 10), args.pages // 10
    cases = [
        ("report.docx", make_docx(args.pages), args.pages, "pages", floor_docx),
        ("report.odt", make_pandoc(markdown, "odt"), args.pages, "pages", content),
        ("report.epub", epub, args.pages, "pages", partial(floor_xml, members=epub_members(epub))),
        ("report.rtf", make_pandoc(markdown, "rtf"), args.pages, "pages", floor_rtf),
        ("deck.pptx", make_pptx(args.slides), args.slides, "slides", floor_pptx),
        ("deck.odp", make_odp(args.slides), args.slides, "slides", content),
        ("tickets.xlsx", make_xlsx(rows), args.rows, "rows", floor_xlsx),
        ("tickets.xls", make_xls(rows), args.rows, "rows", floor_xls),
        ("tickets.ods", make_ods({"Tickets": ods_rows}), args.rows, "rows", floor_ods),
        ("tickets.csv", make_csv(rows), args.rows, "rows", floor_csv),
        ("log.pdf", attached, attached_pages, "pages", floor_pdf),
        ("mail.eml", make_eml(attached), attached_pages, "pages", floor_eml),
    ]
    print(
        "| File | MB | Service (s) | MB/s | units/s | Floor (s) | MB/s | units/s | vs floor |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    for name, data, units, unit, floor in cases:
        megabytes = len(data) / 1e6
        service = timed(lambda: extract(data, filename=name), args.rounds)  # noqa: B023
        library = timed(lambda: floor(data), args.rounds)  # noqa: B023
        print(
            f"| {name} ({units} {unit}) | {megabytes:.2f} | {service:.3f} | "
            f"{megabytes / service:.1f} | {units / service:,.0f} | {library:.3f} | "
            f"{megabytes / library:.1f} | {units / library:,.0f} | {service / library:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
