"""Word and PowerPoint files through POST /ingest/file (issue 33): a document made by
python-docx or python-pptx is read under its headings (a slide under its title, on its
page) and answered from word for word; a zip bomb, XML entities, a password, a cut-off
file are each refused with their status, and nothing of them is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.preparing import Upload, cut
from tests.support.client import upload
from tests.support.inspection import stored_chunks, stored_text
from tests.support.office_files import (
    DECK_SLIDES,
    HANDBOOK,
    HANDBOOK_LIST,
    HANDBOOK_TITLE,
    answered_from,
    assert_refused,
    encrypted_ooxml,
    macro_enabled,
    make_docx,
    make_pptx,
    with_entities,
    zip_bomb,
)

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PPTX = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
HANDBOOK_TEXT = " ".join([*(text for texts in HANDBOOK.values() for text in texts), *HANDBOOK_LIST])


@pytest.fixture(scope="module")
def handbook() -> bytes:
    return make_docx()


@pytest.fixture(scope="module")
def deck() -> bytes:
    return make_pptx()


class TestWord:
    def test_a_docx_is_read_under_its_heading_paths(self, api, registry_mode, data_dir, handbook):
        response = upload(api, "handbook.docx", handbook)
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == DOCX
        contexts = {chunk["context"]: chunk["text"] for chunk in stored_chunks(data_dir)}
        safety = contexts[f"{HANDBOOK_TITLE} > Safety"]
        assert "Every crew member wears a hard hat on site." in safety
        assert "Company vans" not in safety
        protection = contexts[f"{HANDBOOK_TITLE} > Equipment > Personal protection"]
        assert "Gloves for cable work." in protection

    def test_list_items_and_table_rows_are_blocks_each_merged_cell_once(
        self, api, data_dir, handbook
    ):
        upload(api, "handbook.docx", handbook)
        lines = [line for chunk in stored_chunks(data_dir) for line in chunk["text"].split("\n")]
        assert "Gloves for cable work." in lines
        assert "Ear defenders near the generators." in lines
        assert "North; Leeds; Priya Shah" in lines
        assert lines.count("All depots close at six.") == 1  # merged across three cells

    def test_headers_footers_and_comments_are_not_indexed(self, api, data_dir, handbook):
        upload(api, "handbook.docx", handbook)
        text = stored_text(data_dir)
        assert "Depots are listed below." in text
        for furniture in ("CONFIDENTIAL HEADER TEXT", "Page footer furniture", "reviewer"):
            assert furniture not in text

    def test_a_question_is_answered_with_an_exact_quote(self, api, registry_mode, handbook):
        upload(api, "handbook.docx", handbook)
        answer = answered_from(api, "When are company vans refuelled?", HANDBOOK_TEXT)
        assert "Company vans are refuelled at the depot on Fridays." in answer

    def test_the_title_is_the_title_paragraph_without_a_core_title(self, handbook):
        assert cut(Upload(handbook, "handbook.docx")).extracted.title == HANDBOOK_TITLE

    def test_a_macro_enabled_docm_is_read_for_its_text(self, api, data_dir, handbook):
        docm = macro_enabled(
            handbook,
            main_part="word/document.xml",
            macro_type="application/vnd.ms-word.document.macroEnabled.main+xml",
        )
        response = upload(api, "handbook.docm", docm)
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == DOCX
        assert "Every crew member wears a hard hat on site." in stored_text(data_dir)


class TestPowerPoint:
    def test_each_slide_is_a_section_under_its_title_with_its_notes(
        self, api, registry_mode, data_dir, deck
    ):
        response = upload(api, "review.pptx", deck)
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == PPTX
        contexts = {chunk["context"]: chunk["text"] for chunk in stored_chunks(data_dir)}
        assert set(contexts) == {"Quarterly review", "Hiring plan", "Slide 3"}
        hiring = contexts["Hiring plan"].split("\n")
        assert hiring[0] == "We will hire four support engineers in Lisbon by March."
        assert "Lisbon; 4" in hiring  # a table, row by row
        assert hiring[-1] == "Mention that the Lisbon office opens in February."  # notes last
        assert contexts["Slide 3"] == "An untitled slide still has words worth finding."

    def test_a_slide_is_its_page(self, api, data_dir, deck):
        upload(api, "review.pptx", deck)
        assert [(c["context"], c["pages"]) for c in stored_chunks(data_dir)] == [
            ("Quarterly review", [1, 1]),
            ("Hiring plan", [2, 2]),
            ("Slide 3", [3, 3]),
        ]

    def test_a_question_is_answered_from_the_slide_with_an_exact_quote(self, api, deck):
        upload(api, "review.pptx", deck)
        slides = " ".join(text for _, texts, notes in DECK_SLIDES for text in [*texts, notes])
        answer = answered_from(api, "How many support engineers will we hire in Lisbon?", slides)
        assert "We will hire four support engineers in Lisbon by March." in answer
        source = api.post(
            "/ask", {"q": "How many support engineers in Lisbon?"}, content_type="application/json"
        ).json()["sources"][0]
        assert (source["context"], source["pageSpan"]) == (
            "Hiring plan",
            {"firstPage": 2, "lastPage": 2},
        )


class TestRefusals:
    def test_a_zip_bomb_disguised_as_docx_is_refused(self, api, data_dir, handbook):
        bomb = zip_bomb(handbook, member="word/document.xml", megabytes=300)
        assert len(bomb) < 1_000_000
        assert_refused(api, data_dir, "handbook.docx", bomb, 413, "zip bomb")

    def test_xml_entity_expansion_in_the_document_is_refused(self, api, data_dir, handbook):
        laughs = with_entities(handbook, "word/document.xml")
        assert_refused(
            api, data_dir, "handbook.docx", laughs, 422, "XML entities in word/document.xml"
        )

    def test_a_password_protected_document_is_refused_as_encrypted(self, api, data_dir, handbook):
        assert_refused(api, data_dir, "handbook.docx", encrypted_ooxml(handbook), 422, "encrypted")

    @pytest.mark.parametrize("name", ["handbook.docx", "review.pptx"])
    def test_a_truncated_file_is_refused_as_truncated(
        self, api, data_dir, handbook, deck, name: str
    ):
        data = handbook if name.endswith(".docx") else deck
        assert_refused(api, data_dir, name, data[: len(data) // 2], 422, "truncated")

    def test_a_damaged_part_is_refused_as_damaged_never_a_500(self, api, data_dir, deck: bytes):
        from tests.support.office_files import rewritten

        def damage(name: str, content: bytes) -> bytes:
            return content[: len(content) // 2] if name == "ppt/slides/slide2.xml" else content

        broken = rewritten(deck, damage)
        assert_refused(api, data_dir, "review.pptx", broken, 422, "cannot be read")


def test_the_tests_build_what_they_say(handbook: bytes, tmp_path: Path) -> None:
    """The documents are what their writers make: python-docx reads its own file back."""
    import docx

    path = tmp_path / "handbook.docx"
    path.write_bytes(handbook)
    assert docx.Document(str(path)).paragraphs[0].text == HANDBOOK_TITLE
