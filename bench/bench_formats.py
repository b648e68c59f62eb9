"""Extraction speed of the Office formats and spreadsheets, beside each library's own parse.

    .venv/bin/python bench/bench_formats.py [--rows 50000] [--pages 200] [--slides 50]
                                            [--rounds 3]

Generates realistic files in memory: a Word document of about `--pages` pages (headings,
paragraphs, lists, a table every ten pages), a deck of `--slides` slides (title, bullets,
notes, a table on every fifth), and a sheet of `--rows` rows by 6 columns as .xlsx
(openpyxl), .xls (xlwt), .ods (the tests' writer) and CSV. For each it times the service's
reader (`extraction.extract`: detection, the zip limits and XML checks, the reader, the
whitespace normalising) and the floor: the library's own parse of the same file, touching
every text (python-docx's paragraphs and table cells, python-pptx's shapes' text frames,
openpyxl read-only values, xlrd's rows, ElementTree iterparse of content.xml, csv.reader).
Prints the median of `--rounds` rounds as MB/s and pages, slides or rows per second.
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import random
import statistics
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ENV_FILE", "")

import django  # noqa: E402

django.setup()

from ingest.sources.extraction import extract  # noqa: E402
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


def _saved(document: object) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)  # type: ignore[attr-defined]
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
    cases = [
        ("report.docx", make_docx(args.pages), args.pages, "pages", floor_docx),
        ("deck.pptx", make_pptx(args.slides), args.slides, "slides", floor_pptx),
        ("tickets.xlsx", make_xlsx(rows), args.rows, "rows", floor_xlsx),
        ("tickets.xls", make_xls(rows), args.rows, "rows", floor_xls),
        ("tickets.ods", make_ods({"Tickets": ods_rows}), args.rows, "rows", floor_ods),
        ("tickets.csv", make_csv(rows), args.rows, "rows", floor_csv),
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
