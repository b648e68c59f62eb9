"""Office documents and spreadsheets made by each format's own writer (python-docx,
python-pptx, openpyxl, xlwt), an OpenDocument spreadsheet written by hand with zipfile,
and the hostile variants the readers must refuse."""

from __future__ import annotations

import datetime as dt
import io
import re
import struct
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

# A real document's words: the tests quote them back from the answers.
HANDBOOK_TITLE = "Field Operations Handbook"
HANDBOOK = {
    "Safety": [
        "Every crew member wears a hard hat on site.",
        "The site lead checks the harnesses before any work at height begins.",
    ],
    "Vehicles": [
        "Company vans are refuelled at the depot on Fridays.",
        "A van with a warning light stays in the yard until the mechanic signs it off.",
    ],
}
HANDBOOK_LIST = ["Gloves for cable work.", "Ear defenders near the generators."]
HANDBOOK_TABLE = [
    ["Region", "Depot", "Manager"],
    ["North", "Leeds", "Priya Shah"],
    ["South", "Exeter", "Tom Hughes"],
]

DECK_SLIDES = [
    ("Quarterly review", ["Revenue grew in every region this quarter."], ""),
    (
        "Hiring plan",
        ["We will hire four support engineers in Lisbon by March."],
        "Mention that the Lisbon office opens in February.",
    ),
    (None, ["An untitled slide still has words worth finding."], ""),
]

BUDGET_HEADER = ["Item", "Department", "Amount", "Approved"]
BUDGET_ROWS: list[list[Any]] = [
    ["Laptops", "Engineering", 12500.0, dt.date(2024, 3, 1)],
    ["Conference travel", "Sales", 4300.5, dt.date(2024, 4, 15)],
    ["Office chairs", "Facilities", 2100.0, dt.date(2024, 5, 2)],
    ["Cloud hosting", "Engineering", 8800.0, dt.date(2024, 6, 30)],
]
NOTES_ROWS = [["The warehouse lease renews in October."], ["Ask legal about the clause."]]


def make_docx(*, title: str = HANDBOOK_TITLE) -> bytes:
    """A handbook: a Title, Heading 1 and 2 sections, a bulleted list, a table with a
    merged cell, and a header, a footer and a comment that are not its text."""
    import docx

    document = docx.Document()
    document.core_properties.title = ""
    section = document.sections[0]
    section.header.paragraphs[0].text = "CONFIDENTIAL HEADER TEXT"
    section.footer.paragraphs[0].text = "Page footer furniture"
    document.add_paragraph(title, style="Title")
    document.add_paragraph("This handbook is for everyone who works in the field.")
    for heading, paragraphs in HANDBOOK.items():
        document.add_heading(heading, level=1)
        for text in paragraphs:
            document.add_paragraph(text)
    document.add_heading("Equipment", level=1)
    document.add_heading("Personal protection", level=2)
    for item in HANDBOOK_LIST:
        document.add_paragraph(item, style="List Bullet")
    commented = document.add_paragraph("Depots are listed below.")
    document.add_comment(commented.runs, text="A reviewer's remark, not the document")
    table = document.add_table(rows=len(HANDBOOK_TABLE) + 1, cols=3)
    for r, row in enumerate(HANDBOOK_TABLE):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    merged = table.cell(len(HANDBOOK_TABLE), 0).merge(table.cell(len(HANDBOOK_TABLE), 2))
    merged.text = "All depots close at six."
    return _saved(document)


def make_pptx() -> bytes:
    """A deck of DECK_SLIDES: title and body placeholders, notes, a table and a group."""
    import pptx
    from pptx.util import Inches

    deck = pptx.Presentation()
    for title, bodies, notes in DECK_SLIDES:
        layout = deck.slide_layouts[1] if title else deck.slide_layouts[6]  # 6: blank
        slide = deck.slides.add_slide(layout)
        if title:
            slide.shapes.title.text = title
            slide.placeholders[1].text_frame.text = bodies[0]
        else:
            group = slide.shapes.add_group_shape()
            box = group.shapes.add_textbox(Inches(1), Inches(1), Inches(4), Inches(1))
            box.text_frame.text = bodies[0]
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    table = deck.slides[1].shapes.add_table(2, 2, Inches(1), Inches(4), Inches(6), Inches(1))
    for r, row in enumerate([["City", "Hires"], ["Lisbon", "4"]]):
        for c, value in enumerate(row):
            table.table.cell(r, c).text = value
    return _saved(deck)


def make_xlsx(rows: Sequence[Sequence[Any]] | None = None) -> bytes:
    """A workbook of two sheets: "Budget" with a header row, "Notes" without one."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Budget"
    for row in rows if rows is not None else [BUDGET_HEADER, *BUDGET_ROWS]:
        sheet.append(list(row))
    notes = book.create_sheet("Notes")
    for row in NOTES_ROWS:
        notes.append(row)
    return _saved(book)


def make_xls() -> bytes:
    """The same workbook as make_xlsx, in Excel 97-2003's format (xlwt)."""
    import xlwt

    book = xlwt.Workbook()
    dates = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    sheet = book.add_sheet("Budget")
    for r, row in enumerate([BUDGET_HEADER, *BUDGET_ROWS]):
        for c, value in enumerate(row):
            sheet.write(
                r, c, value, dates if isinstance(value, dt.date) else xlwt.Style.default_style
            )
    notes = book.add_sheet("Notes")
    for r, row in enumerate(NOTES_ROWS):
        notes.write(r, 0, row[0])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def make_encrypted_xls() -> bytes:
    """An .xls whose workbook stream says it is encrypted: make_xls's BIFF records with
    a FILEPASS record (RC4) after the first BOF, as Excel writes a protected file. Its
    content is not really encrypted: no free writer encrypts BIFF, and readers refuse
    at the record."""
    import xlwt
    from xlwt.CompoundDoc import XlsDoc

    book = xlwt.Workbook()
    book.add_sheet("Secret").write(0, 0, "Hidden payroll")
    stream = book.get_biff_data()
    bof_length = struct.unpack("<H", stream[2:4])[0]
    end_of_bof = 4 + bof_length
    # FILEPASS: type 0x002F, then wEncryptionType 1 (RC4) and the header's version 1.1.
    filepass = struct.pack("<HH", 0x002F, 6) + struct.pack("<HHH", 1, 1, 1)
    stream = stream[:end_of_bof] + filepass + stream[end_of_bof:]
    buffer = io.BytesIO()
    XlsDoc().save(buffer, stream)
    return buffer.getvalue()


def make_ods(sheets: dict[str, list[list[str]]] | None = None, *, tail: str = "") -> bytes:
    """An OpenDocument spreadsheet written by hand (the format's minimum: mimetype
    first and stored, a manifest, content.xml): each sheet's rows of display texts,
    then `tail` (rows of XML) in the first sheet, and a trailing empty row repeated a
    million times, as LibreOffice writes one."""
    if sheets is None:
        sheets = {
            "Budget": [[cell_display(v) for v in row] for row in [BUDGET_HEADER, *BUDGET_ROWS]],
            "Notes": [row[:] for row in NOTES_ROWS],
        }
    tables = []
    for number, (name, rows) in enumerate(sheets.items()):
        xml_rows = "".join(
            "<table:table-row>"
            + "".join(_ods_cell(value) for value in row)
            + '<table:table-cell table:number-columns-repeated="16380"/></table:table-row>'
            for row in rows
        )
        extra = tail if number == 0 else ""
        tables.append(
            f'<table:table table:name="{name}">{xml_rows}{extra}'
            '<table:table-row table:number-rows-repeated="1048000">'
            '<table:table-cell table:number-columns-repeated="1024"/></table:table-row>'
            "</table:table>"
        )
    content = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"'
        ' xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0"'
        ' xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.3">'
        f"<office:body><office:spreadsheet>{''.join(tables)}</office:spreadsheet></office:body>"
        "</office:document-content>"
    )
    manifest = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"'
        ' manifest:version="1.3">'
        '<manifest:file-entry manifest:full-path="/" manifest:media-type='
        '"application/vnd.oasis.opendocument.spreadsheet"/>'
        '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/>'
        "</manifest:manifest>"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            zipfile.ZipInfo("mimetype"),
            "application/vnd.oasis.opendocument.spreadsheet",
            compress_type=zipfile.ZIP_STORED,
        )
        archive.writestr("META-INF/manifest.xml", manifest)
        archive.writestr("content.xml", content)
    return buffer.getvalue()


def cell_display(value: Any) -> str:
    """A value as a spreadsheet displays it (what an .ods keeps in its cells' text)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _ods_cell(value: str) -> str:
    if not value:
        return "<table:table-cell/>"
    try:
        float(value)
    except ValueError:
        return (
            f'<table:table-cell office:value-type="string"><text:p>{value}</text:p>'
            "</table:table-cell>"
        )
    return (
        f'<table:table-cell office:value-type="float" office:value="{value}">'
        f"<text:p>{value}</text:p></table:table-cell>"
    )


def make_csv(delimiter: str = ",") -> bytes:
    rows = [BUDGET_HEADER, *([cell_display(v) for v in row] for row in BUDGET_ROWS)]
    return "".join(delimiter.join(row) + "\r\n" for row in rows).encode()


# -- hostile variants -------------------------------------------------------------------


def rewritten(
    data: bytes,
    change: Callable[[str, bytes], bytes | None],
    *,
    add: dict[str, bytes] | None = None,
) -> bytes:
    """A copy of a zip with each member passed through `change` (None drops it), and
    members added."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            changed = change(info.filename, source.read(info))
            if changed is not None:
                archive.writestr(info.filename, changed)
        for name, content in (add or {}).items():
            archive.writestr(name, content)
    return buffer.getvalue()


def macro_enabled(data: bytes, *, main_part: str, macro_type: str) -> bytes:
    """An Office Open XML file made macro-enabled as Office saves one: the main part's
    content type changed, and a VBA project part related to it (its bytes a stand-in:
    nothing reads or runs it)."""
    folder = main_part.rsplit("/", 1)[0]
    rels = f"{folder}/_rels/{main_part.rsplit('/', 1)[1]}.rels"

    def change(name: str, content: bytes) -> bytes:
        if name == "[Content_Types].xml":
            content = re.sub(
                rb'(PartName="/' + main_part.encode() + rb'" ContentType=")[^"]+',
                rb"\g<1>" + macro_type.encode(),
                content,
            )
            content = content.replace(
                b"</Types>",
                b'<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/>'
                b"</Types>",
            )
        elif name == rels:
            content = content.replace(
                b"</Relationships>",
                b'<Relationship Id="rIdVba" Type="http://schemas.microsoft.com/office/2006/'
                b'relationships/vbaProject" Target="vbaProject.bin"/></Relationships>',
            )
        return content

    return rewritten(data, change, add={f"{folder}/vbaProject.bin": b"Sub AutoOpen()\nEnd Sub\n"})


def zip_bomb(data: bytes, *, member: str, megabytes: int) -> bytes:
    """`data` (a zip) with `member` replaced by `megabytes` MB of zeros, written in
    pieces: about 1 KB compressed for each MB it expands to."""
    source = zipfile.ZipFile(io.BytesIO(data))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in source.infolist():
            if info.filename == member:
                bomb = zipfile.ZipInfo(member)
                bomb.compress_type = zipfile.ZIP_DEFLATED
                with archive.open(bomb, "w", force_zip64=True) as out:
                    piece = b"\0" * (1 << 20)
                    for _ in range(megabytes):
                        out.write(piece)
            else:
                archive.writestr(info.filename, source.read(info))
    return buffer.getvalue()


BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (n, (b"&lol%d;" % (n - 1) if n > 1 else b"&lol;") * 10)
        for n in range(1, 10)
    )
    + b"]>\n"
)


def with_entities(data: bytes, member: str) -> bytes:
    """`data` (a zip) with `member`'s XML preceded by the billion laughs' entities, and
    the last one used in its first text where it is a Word document's."""

    def change(name: str, content: bytes) -> bytes:
        if name != member:
            return content
        body = re.sub(rb"^<\?xml[^>]*\?>\s*", b"", content)
        body = body.replace(b"<w:t>", b"<w:t>&lol9;", 1)
        return BILLION_LAUGHS + body

    return rewritten(data, change)


def encrypted_ooxml(data: bytes) -> bytes:
    """`data` encrypted with a password as Office does it (ECMA-376 agile encryption, by
    msoffcrypto-tool): an OLE compound file holding EncryptionInfo and EncryptedPackage."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt("s3cret", out)
    return out.getvalue()


def _saved(document: Any) -> bytes:
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


# -- what the tests check through the API -------------------------------------------------


def answered_from(api: Any, question: str, document_text: str) -> str:
    """The answer to `question`, having checked that it quotes its sources exactly and
    that each of its sentences is word for word in the document's own text."""
    from ingest.answers.extractive import Source, cited_sentences, quotes_exactly
    from tests.support.client import ask

    body = ask(api, question)
    assert body["sources"], body
    sources = [
        Source(s["number"], s["fileId"], s["filename"], s["chunkId"], s["context"], 0, s["text"])
        for s in body["sources"]
    ]
    assert quotes_exactly(body["answer"], sources), body
    for sentence, _ in cited_sentences(body["answer"]):
        assert sentence in document_text, (sentence, document_text)
    return body["answer"]


def assert_refused(
    api: Any, data_dir: Any, name: str, data: bytes, status: int, words: str
) -> None:
    """The upload is refused with `status` and a message holding `words`, and nothing
    of it is stored: no chunk, no document."""
    from tests.support.client import upload
    from tests.support.inspection import vector_file_ids

    response = upload(api, name, data)
    assert response.status_code == status, response.json()
    assert words in response.json()["detail"], response.json()
    assert vector_file_ids(data_dir) == []
    assert api.get("/documents").json()["total"] == 0
