"""Spreadsheets through POST /ingest/file (issue 33): a workbook made by openpyxl or
xlwt, an OpenDocument spreadsheet, a CSV or TSV file is read a row per line, with the
header row's names, under its sheet and row range, and answered from word for word;
huge sheets, zip bombs, passwords and cut-off files are refused with their status, and
nothing of them is stored."""

from __future__ import annotations

import itertools

import pytest

from tests.support.client import upload
from tests.support.inspection import stored_chunks, stored_text
from tests.support.office_files import (
    BUDGET_HEADER,
    answered_from,
    assert_refused,
    encrypted_ooxml,
    macro_enabled,
    make_csv,
    make_encrypted_xls,
    make_ods,
    make_xls,
    make_xlsx,
    with_entities,
    zip_bomb,
)

# The Budget sheet's rows as the service reads them: what a person sees in each cell,
# under its column's name (3 for 3.0, a date without a midnight time).
BUDGET_LINES = [
    "Item: Laptops; Department: Engineering; Amount: 12500; Approved: 2024-03-01",
    "Item: Conference travel; Department: Sales; Amount: 4300.5; Approved: 2024-04-15",
    "Item: Office chairs; Department: Facilities; Amount: 2100; Approved: 2024-05-02",
    "Item: Cloud hosting; Department: Engineering; Amount: 8800; Approved: 2024-06-30",
]
NOTES_LINES = ["The warehouse lease renews in October.", "Ask legal about the clause."]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WORKBOOKS = {
    "budget.xlsx": (make_xlsx, XLSX),
    "budget.xls": (make_xls, "application/vnd.ms-excel"),
    "budget.ods": (make_ods, "application/vnd.oasis.opendocument.spreadsheet"),
}
SINGLE_SHEETS = {
    "budget.csv": (make_csv, "text/csv"),
    "budget.tsv": (lambda: make_csv("\t"), "text/tab-separated-values"),
}
EN_DASH = "\u2013"


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return {name: make() for name, (make, _) in (WORKBOOKS | SINGLE_SHEETS).items()}


def lines_by_context(data_dir) -> dict[str, list[str]]:
    return {chunk["context"]: chunk["text"].split("\n") for chunk in stored_chunks(data_dir)}


class TestEachFormat:
    @pytest.mark.parametrize("name", WORKBOOKS)
    def test_a_workbook_is_read_by_sheet_and_rows_with_its_header_s_names(
        self, api, registry_mode, data_dir, files, name: str
    ):
        response = upload(api, name, files[name])
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == WORKBOOKS[name][1]
        assert lines_by_context(data_dir) == {
            f"Budget > rows 2{EN_DASH}5": BUDGET_LINES,
            f"Notes > rows 1{EN_DASH}2": NOTES_LINES,  # no header row: the values alone
        }

    @pytest.mark.parametrize("name", SINGLE_SHEETS)
    def test_csv_and_tsv_are_one_sheet_headed_by_their_rows(self, api, data_dir, files, name):
        response = upload(api, name, files[name])
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == SINGLE_SHEETS[name][1]
        assert lines_by_context(data_dir) == {f"rows 2{EN_DASH}5": BUDGET_LINES}

    @pytest.mark.parametrize("name", [*WORKBOOKS, *SINGLE_SHEETS])
    def test_a_question_is_answered_with_a_row_quoted_exactly(self, api, files, name: str):
        upload(api, name, files[name])
        sheet = "\n".join(BUDGET_LINES + NOTES_LINES)
        answer = answered_from(api, "What amount was approved for conference travel?", sheet)
        assert BUDGET_LINES[1] in answer

    def test_a_semicolon_separated_file_is_sniffed(self, api, data_dir):
        data = make_csv().replace(b",", b";")
        assert upload(api, "budget.csv", data).status_code == 200
        assert lines_by_context(data_dir) == {f"rows 2{EN_DASH}5": BUDGET_LINES}

    def test_a_macro_enabled_xlsm_is_read_for_its_values(self, api, data_dir, files):
        xlsm = macro_enabled(
            files["budget.xlsx"],
            main_part="xl/workbook.xml",
            macro_type="application/vnd.ms-excel.sheet.macroEnabled.main+xml",
        )
        response = upload(api, "budget.xlsm", xlsm)
        assert response.status_code == 200, response.json()
        assert BUDGET_LINES[0] in stored_text(data_dir)


class TestLongSheets:
    def test_a_long_sheet_is_cut_into_consecutive_row_ranges(self, api, data_dir, settings):
        settings.CHUNK_SIZE_WORDS = 40
        rows = [["Ticket", "Owner", "Hours"]]
        rows += [[f"Ticket {n} about the billing export", "Dana", n % 9 + 1] for n in range(300)]
        assert upload(api, "tickets.xlsx", make_xlsx(rows)).status_code == 200
        ranges = []
        for chunk in stored_chunks(data_dir):
            if chunk["context"].startswith("Budget > rows "):
                first, _, last = chunk["context"].removeprefix("Budget > rows ").partition(EN_DASH)
                ranges.append((int(first), int(last or first)))
                assert len(chunk["text"].split()) <= 40
        assert len(ranges) > 10
        assert ranges[0][0] == 2 and ranges[-1][1] == 301  # the sheet's own row numbers
        assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(ranges))
        assert "Ticket: Ticket 299 about the billing export; Owner: Dana; Hours: 3" in (
            stored_text(data_dir)
        )

    @pytest.mark.parametrize("name", ["budget.xlsx", "budget.ods", "budget.csv"])
    def test_a_sheet_past_max_sheet_rows_is_refused(self, api, data_dir, settings, files, name):
        settings.MAX_SHEET_ROWS = 3
        assert_refused(api, data_dir, name, files[name], 413, "over 3 rows (MAX_SHEET_ROWS)")

    def test_a_row_repeated_past_max_sheet_rows_is_refused_before_it_is_expanded(
        self, api, data_dir, settings
    ):
        # One row of XML that says it repeats a million times: counted as it is expanded.
        settings.MAX_SHEET_ROWS = 1000
        tail = (
            '<table:table-row table:number-rows-repeated="1000000"><table:table-cell>'
            "<text:p>again</text:p></table:table-cell></table:table-row>"
        )
        data = make_ods({"Loop": [["start"]]}, tail=tail)
        assert_refused(api, data_dir, "loop.ods", data, 413, "(MAX_SHEET_ROWS)")

    def test_a_workbook_past_max_sheet_cells_is_refused(self, api, data_dir, settings, files):
        settings.MAX_SHEET_CELLS = 10
        data = files["budget.xls"]
        assert_refused(api, data_dir, "budget.xls", data, 413, "over 10 cells (MAX_SHEET_CELLS)")


class TestRefusals:
    def test_a_zip_bomb_disguised_as_xlsx_is_refused(self, api, data_dir, settings, files):
        # Members that expand past MAX_EXPANDED_MB altogether, each within the ratio.
        settings.MAX_EXPANDED_MB = 4
        settings.MAX_EXPANSION_RATIO = 100_000
        bomb = zip_bomb(files["budget.xlsx"], member="xl/worksheets/sheet1.xml", megabytes=8)
        assert_refused(api, data_dir, "budget.xlsx", bomb, 413, "(MAX_EXPANDED_MB)")

    def test_a_zip_bomb_disguised_as_ods_is_refused(self, api, data_dir, files):
        bomb = zip_bomb(files["budget.ods"], member="content.xml", megabytes=50)
        assert_refused(api, data_dir, "budget.ods", bomb, 413, "(MAX_EXPANSION_RATIO)")

    @pytest.mark.parametrize("name", ["budget.xlsx", "budget.xls"])
    def test_a_password_protected_workbook_is_refused_as_encrypted(
        self, api, data_dir, files, name
    ):
        data = encrypted_ooxml(files[name]) if name.endswith("x") else make_encrypted_xls()
        assert_refused(api, data_dir, name, data, 422, "encrypted")

    @pytest.mark.parametrize("name", WORKBOOKS)
    def test_a_truncated_workbook_is_refused_as_truncated(self, api, data_dir, files, name):
        data = files[name]
        assert_refused(api, data_dir, name, data[: len(data) // 2], 422, "truncated")

    def test_a_truncated_csv_keeps_the_rows_before_the_cut(self, api, data_dir, files):
        # A CSV file has no end marker: cut mid-row, it is the rows it still has.
        data = files["budget.csv"]
        cut_at = data.index(b"Office chairs") + 6
        assert upload(api, "budget.csv", data[:cut_at]).status_code == 200
        lines = lines_by_context(data_dir)[f"rows 2{EN_DASH}4"]
        assert lines == [*BUDGET_LINES[:2], "Item: Office"]  # the header row still names it

    def test_entity_expansion_in_a_sheet_is_refused(self, api, data_dir, files):
        data = with_entities(files["budget.xlsx"], "xl/worksheets/sheet1.xml")
        assert_refused(api, data_dir, "budget.xlsx", data, 422, "XML entities")


def test_the_header_row_is_the_sheet_s_first(files):
    assert make_csv().decode().split("\r\n")[0].split(",") == BUDGET_HEADER
