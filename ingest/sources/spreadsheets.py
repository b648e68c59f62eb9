"""Spreadsheets: Excel (.xlsx by openpyxl, .xls by xlrd), OpenDocument (.ods) and CSV/TSV.

Every format comes down to the same thing: sheets of rows of values, which one helper
(`workbook_sections`) turns into sections. Each row is a block of its own, so that a
sentence can quote it; where the sheet has a header row, a row reads
"Header: value; Header2: value2". A sheet's rows are grouped into sections of about
CHUNK_SIZE_WORDS words headed by the sheet's name and the rows they hold, as the
spreadsheet numbers them ("Budget > rows 2-41", with an en dash), so an answer says
where it came from.

Rows and cells are counted as they are read, never loaded first: past MAX_SHEET_ROWS rows
in a sheet or MAX_SHEET_CELLS cells in the workbook, the document is refused (413).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from defusedxml import ElementTree as SafeElementTree
from django.conf import settings

from ingest.exceptions import ContentTooLarge, IngestError, UnreadableDocument
from ingest.sources.containers import (
    Container,
    capitalised,
    damaged,
    parse_xml,
    xml_refusals,
)
from ingest.sources.extraction import PageProgress, Read, Section, decode_text
from ingest.sources.office import check_members

# A sheet: its name (None for CSV, which has one unnamed sheet) and its rows, each with
# its row number (1-based, as the spreadsheet shows it) and its values.
Rows = Iterable[tuple[int, Sequence[Any]]]
Sheet = tuple[str | None, Rows]

_HEADER_SAMPLE = 20  # rows csv.Sniffer looks at to decide on a header row, as it does
_EN_DASH = "\u2013"  # between a range's rows, as typeset ranges are
_MAX_COLUMNS = 16_384  # the most columns Excel and LibreOffice make (XFD)


# -- rows to sections -------------------------------------------------------------------


def workbook_sections(sheets: Iterable[Sheet], *, what: str) -> list[Section]:
    """The sections of a workbook's sheets, read one row at a time within MAX_SHEET_ROWS
    (rows holding a value, in a sheet) and MAX_SHEET_CELLS (cells up to each row's last
    value, in the whole workbook)."""
    sections: list[Section] = []
    cells = 0
    for name, rows in sheets:
        sheet = _SheetSections(name)
        kept = 0
        for number, values in rows:
            texts = [cell_text(value) for value in values]
            while texts and not texts[-1]:
                texts.pop()
            if not texts:
                continue
            kept += 1
            cells += len(texts)
            if kept > settings.MAX_SHEET_ROWS:
                where = f"sheet {name!r} of {what}" if name else what
                raise ContentTooLarge(
                    f"The {where} has over {settings.MAX_SHEET_ROWS} rows (MAX_SHEET_ROWS): "
                    "split it, or raise the limit"
                )
            if cells > settings.MAX_SHEET_CELLS:
                raise too_many_cells(what)
            sheet.add(number, texts)
        sections.extend(sheet.finish())
    return sections


def too_many_cells(what: str) -> ContentTooLarge:
    return ContentTooLarge(
        f"{capitalised(what)} has over {settings.MAX_SHEET_CELLS} cells (MAX_SHEET_CELLS): "
        "split it, or raise the limit"
    )


def cell_text(value: Any) -> str:
    """A cell's value as a person reads it in the sheet: 3 for 3.0, a date without a
    time of midnight, TRUE and FALSE as Excel shows them; on one line."""
    if isinstance(value, str):  # most cells: first
        return " ".join(value.split())
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return format(value, ".15g")  # 0.1 + 0.2 shows as 0.3, as a spreadsheet shows it
    if isinstance(value, dt.datetime):
        if value.time() == dt.time():
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds" if value.second else "minutes")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return " ".join(str(value).split())


class _SheetSections:
    """One sheet's rows as sections of about CHUNK_SIZE_WORDS words. The first rows are
    held back until csv.Sniffer's sample is complete, to decide on a header row."""

    def __init__(self, name: str | None) -> None:
        self.name = name
        self.header: list[str] = []
        self.sample: list[tuple[int, list[str]]] | None = []  # None once decided
        self.sections: list[Section] = []
        self.lines: list[str] = []
        self.words = 0
        self.first = self.last = 0

    def add(self, number: int, texts: list[str]) -> None:
        if self.sample is None:
            self._row(number, texts)
            return
        self.sample.append((number, texts))
        if len(self.sample) > _HEADER_SAMPLE:
            self._decide()

    def finish(self) -> list[Section]:
        if self.sample is not None:
            self._decide()
        self._close()
        return self.sections

    def _decide(self) -> None:
        sample, self.sample = self.sample or [], None
        if has_header([texts for _, texts in sample]):
            self.header = sample.pop(0)[1]
        for number, texts in sample:
            self._row(number, texts)

    def _row(self, number: int, texts: list[str]) -> None:
        line = row_line(texts, self.header)
        words = len(line.split())
        if self.lines and self.words + words > settings.CHUNK_SIZE_WORDS:
            self._close()
        if not self.lines:
            self.first = number
        self.lines.append(line)
        self.words += words
        self.last = number

    def _close(self) -> None:
        if not self.lines:
            return
        rows = (
            f"row {self.first}"
            if self.first == self.last
            else f"rows {self.first}{_EN_DASH}{self.last}"
        )
        headings = (self.name, rows) if self.name else (rows,)
        # A blank line between rows: each is a sentence of its own, quotable alone.
        self.sections.append(Section(headings, "\n\n".join(self.lines)))
        self.lines, self.words = [], 0


def row_line(texts: Sequence[str], header: Sequence[str]) -> str:
    """A row on one line: "Header: value; Header2: value2" under a header row, else
    "value; value2"; empty cells left out."""
    parts = []
    for column, text in enumerate(texts):
        if not text:
            continue
        name = header[column] if column < len(header) else ""
        parts.append(f"{name}: {text}" if name else text)
    return "; ".join(parts)


def has_header(rows: list[list[str]]) -> bool:
    """Whether the first row names the columns, by csv.Sniffer's rule: each column
    whose values are all numbers, or all of one length, votes for a header when its
    first cell is not one of them, against when it is. Unlike the Sniffer, an empty
    cell is no value (sheets are sparse) and a short row still counts."""
    if len(rows) < 2 or len(rows[0]) < 2:
        return False
    header, body = rows[0], rows[1:]
    votes = 0
    for column, name in enumerate(header):
        values = {_kind(row[column]) for row in body if column < len(row) and row[column]}
        if name and len(values) == 1:
            votes += 1 if _kind(name) not in values else -1
    return votes > 0


def _kind(text: str) -> int | None:
    """None for a number, else the text's length (the Sniffer's two kinds of column)."""
    try:
        float(text)
    except ValueError:
        return len(text)
    return None


# -- the readers ------------------------------------------------------------------------


def read_xlsx(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """An Excel workbook (.xlsx, .xlsm: the macros are never run) by openpyxl, read-only,
    with each formula's last computed value."""
    # openpyxl parses with defusedxml's pure-Python layer whenever defusedxml is
    # installed, at 2.2 times the time of lxml's parser (20,000 rows: 1.90 s against
    # 0.85 s). check_members has refused any member declaring a DTD before openpyxl sees
    # the file, which is what defusedxml guards against, so lxml's parser is safe here.
    # openpyxl reads the variable when it is first imported.
    os.environ.setdefault("OPENPYXL_DEFUSEDXML", "False")
    import openpyxl

    what = "the Excel workbook"
    check_members(Container(data, what=what))
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except IngestError:
        raise
    except Exception as exc:
        raise damaged(what, exc) from None
    try:
        sections = workbook_sections(_xlsx_sheets(workbook, what), what=what)
        title = cell_text(workbook.properties.title)
    finally:
        workbook.close()
    return Read(sections, title)


def _xlsx_sheets(workbook: Any, what: str) -> Iterator[Sheet]:
    for sheet in workbook.worksheets:
        # A sheet's declared dimensions can claim a million rows and 16,384 columns that
        # openpyxl would pad every row to: the cells themselves say where rows end.
        sheet.reset_dimensions()
        yield sheet.title, _guarded(enumerate(sheet.iter_rows(values_only=True), 1), what)


def _guarded(rows: Iterable[tuple[int, Sequence[Any]]], what: str) -> Rows:
    """A library's rows, its errors mid-way (a damaged sheet) as UnreadableDocument."""
    try:
        yield from rows
    except IngestError:
        raise
    except Exception as exc:
        raise damaged(what, exc) from None


def read_xls(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """An Excel 97-2003 workbook (.xls) by xlrd; a password-protected one is refused."""
    import xlrd

    what = "the Excel workbook"
    try:
        book = xlrd.open_workbook(file_contents=data, on_demand=True)
    except Exception as exc:
        if "encrypted" in str(exc).lower():
            raise UnreadableDocument(
                f"{capitalised(what)} is encrypted with a password: remove the password "
                "and upload it again"
            ) from None
        raise damaged(what, exc) from None
    try:
        sections = workbook_sections(_xls_sheets(book, what), what=what)
    finally:
        book.release_resources()
    return Read(sections)


def _xls_sheets(book: Any, what: str) -> Iterator[Sheet]:
    for index in range(book.nsheets):
        try:
            sheet = book.sheet_by_index(index)
        except Exception as exc:
            raise damaged(what, exc) from None
        yield sheet.name, _xls_rows(book, sheet)


def _xls_rows(book: Any, sheet: Any) -> Rows:
    import xlrd

    for row in range(sheet.nrows):
        values: list[Any] = []
        for cell in sheet.row(row):
            if cell.ctype == xlrd.XL_CELL_DATE:
                try:
                    values.append(xlrd.xldate.xldate_as_datetime(cell.value, book.datemode))
                except (ValueError, OverflowError, xlrd.xldate.XLDateError):
                    values.append(cell.value)
            elif cell.ctype == xlrd.XL_CELL_BOOLEAN:
                values.append(bool(cell.value))
            elif cell.ctype == xlrd.XL_CELL_ERROR:
                values.append(xlrd.error_text_from_code.get(cell.value, ""))
            else:
                values.append(cell.value)
        yield row + 1, values


def read_csv(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """Comma-separated values, the dialect (delimiter, quoting) sniffed by csv.Sniffer."""
    return _read_delimited(data, charset, delimiters=",;\t|")


def read_tsv(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """Tab-separated values."""
    return _read_delimited(data, charset, delimiters="\t")


def _read_delimited(data: bytes, charset: str | None, *, delimiters: str) -> Read:
    text = decode_text(data, charset)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:65_536], delimiters=delimiters
        )
    except csv.Error:  # one column, or too little to tell: the format's own default
        dialect = csv.excel_tab if delimiters == "\t" else csv.excel
    what = "the CSV file"
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    # A CSV file is one sheet without a name: its sections are headed by their rows alone
    # ("rows 2-41"); the document's name is beside every source already.
    rows = _guarded(enumerate(reader, 1), what)  # numbered by record, as a spreadsheet does
    return Read(workbook_sections([(None, rows)], what=what))


def read_ods(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """An OpenDocument spreadsheet (.ods): content.xml read as a stream of rows, each
    cell as the sheet displays it (its text), repeated rows and cells expanded only
    as far as they hold values."""
    what = "the OpenDocument spreadsheet"
    container = Container(data, what=what)
    if "META-INF/manifest.xml" in container:
        manifest = parse_xml(container.read("META-INF/manifest.xml"), what=what)
        if manifest.find(f".//{_MANIFEST}encryption-data") is not None:
            raise UnreadableDocument(
                f"{capitalised(what)} is encrypted with a password: remove the password "
                "and upload it again"
            )
    content = container.read("content.xml")
    return Read(workbook_sections(_ods_sheets(content, what), what=what))


_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_MANIFEST = "{urn:oasis:names:tc:opendocument:xmlns:manifest:1.0}"
_CELLS = (f"{_TABLE}table-cell", f"{_TABLE}covered-table-cell")
_SPACERS = (f"{_TEXT}s", f"{_TEXT}tab", f"{_TEXT}line-break")


def _ods_sheets(content: bytes, what: str) -> Iterator[Sheet]:
    """Each table of content.xml with its rows, from one stream of parse events: a
    sheet's rows are read before the next sheet starts."""
    events = _xml_events(content, what)
    for event, element in events:
        if event == "start" and element.tag == f"{_TABLE}table":
            yield element.get(f"{_TABLE}name", ""), _guarded(_ods_rows(events, element), what)


def _xml_events(content: bytes, what: str) -> Iterator[tuple[str, Any]]:
    with xml_refusals(what, member="content.xml"):
        yield from SafeElementTree.iterparse(io.BytesIO(content), events=("start", "end"))


def _ods_rows(events: Iterator[tuple[str, Any]], table: Any) -> Rows:
    """A table's rows until its end. A row repeated (number-rows-repeated) is given
    once for each repeat when it holds values, and only counted when it does not: a
    sheet's trailing empty rows are often "repeated" a million times."""
    number = 0
    for event, element in events:
        if event != "end":
            continue
        if element is table:
            return
        if element.tag == f"{_TABLE}table-row":
            repeat = int(element.get(f"{_TABLE}number-rows-repeated", "1"))
            values = _ods_cells(element)
            element.clear()  # what is read goes: memory stays one row's worth
            if not values:
                number += repeat
                continue
            for _ in range(repeat):
                number += 1
                yield number, values


def _ods_cells(row: Any) -> list[str]:
    """A row's cells as displayed, empty cells kept only before a value (for the
    header's columns) and repeated cells expanded within the columns a sheet has."""
    values: list[str] = []
    empty = 0
    for cell in row:
        if cell.tag not in _CELLS:
            continue
        repeat = int(cell.get(f"{_TABLE}number-columns-repeated", "1"))
        text = _ods_cell_text(cell)
        if not text:
            empty += repeat
            continue
        if len(values) + empty + repeat > _MAX_COLUMNS:
            raise ContentTooLarge(
                f"A row of the OpenDocument spreadsheet has over {_MAX_COLUMNS} columns, "
                "more than any spreadsheet program makes"
            )
        values.extend([""] * empty)
        values.extend([text] * repeat)
        empty = 0
    return values


def _ods_cell_text(cell: Any) -> str:
    """The text a cell displays (its paragraphs, not its comments); its value attribute
    where a writer left the text out."""
    paragraphs = [
        "".join(_ods_text(child)) for child in cell if child.tag in (f"{_TEXT}p", f"{_TEXT}h")
    ]
    text = " ".join(" ".join(paragraphs).split())
    if text:
        return text
    for name in ("value", "date-value", "time-value", "boolean-value", "string-value"):
        if value := cell.get(f"{_OFFICE}{name}"):
            return value
    return ""


def _ods_text(element: Any) -> Iterator[str]:
    if element.text:
        yield element.text
    for child in element:
        if child.tag in _SPACERS:
            yield " "
        elif child.tag != f"{_OFFICE}annotation":
            yield from _ods_text(child)
        if child.tail:
            yield child.tail
