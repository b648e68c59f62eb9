"""POST /ingest/file over HTTP: each accepted type, duplicates, and every refusal."""

from __future__ import annotations

import hashlib
import re
import time
from pathlib import Path

import pytest

from tests.support.client import upload
from tests.support.documents import (
    HANDBOOK_PDF_PAGES,
    POLICY_TEXT,
    RELEASE_HTML,
    make_pdf,
    make_slow_pdf,
)
from tests.support.inspection import stored_text, vector_file_ids


class TestAcceptedTypes:
    def test_a_text_file_is_indexed_and_described(self, api, registry_mode, data_dir: Path):
        data = POLICY_TEXT.encode()
        response = upload(api, "policy.txt", data, workspace="security")
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["filename"] == "policy.txt"
        assert body["workspace"] == "security"
        assert body["sizeBytes"] == len(data)
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert body["numChunks"] >= 1
        assert body["contentType"] == "text/plain"
        assert (body["ok"], body["created"], body["chunks"]) == (True, True, body["numChunks"])
        assert re.fullmatch("[0-9a-f]{32}", body["fileId"])  # the old service's form
        assert body["createdAt"] == body["updatedAt"]
        assert abs(body["createdAt"] - time.time()) < 60  # epoch seconds, as registry.json
        assert vector_file_ids(data_dir) == [body["fileId"]] * body["numChunks"]
        listed = api.get("/documents", {"workspace": "security"}).json()
        assert [item["fileId"] for item in listed["items"]] == [body["fileId"]]
        assert api.get("/documents").json()["total"] == 0  # the default workspace

    def test_a_pdf_is_read_page_by_page(self, api, registry_mode, data_dir: Path):
        response = upload(api, "handbook.pdf", make_pdf(HANDBOOK_PDF_PAGES))
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == "application/pdf"
        answer = api.post(
            "/ask",
            {"question": "When are travel expenses reimbursed?"},
            content_type="application/json",
        ).json()
        assert "30 days" in answer["answer"]

    def test_html_is_read_without_scripts_or_styles(self, api, registry_mode, data_dir: Path):
        response = upload(api, "release.html", RELEASE_HTML)
        assert response.status_code == 200, response.json()
        assert response.json()["contentType"] == "text/html"
        chunks = stored_text(data_dir)
        assert "Parquet" in chunks
        assert "do not index" not in chunks
        assert "color: red" not in chunks

    def test_markdown_is_accepted(self, api, data_dir: Path):
        response = upload(api, "notes.md", b"# Notes\n\n* The build runs **nightly** at 2am.\n")
        assert response.status_code == 200
        assert response.json()["contentType"] == "text/markdown"

    def test_the_content_decides_a_pdf_named_txt_is_read_as_pdf(self, api, data_dir: Path):
        response = upload(api, "handbook.txt", make_pdf(HANDBOOK_PDF_PAGES))
        assert response.status_code == 200
        assert response.json()["contentType"] == "application/pdf"

    def test_a_file_without_extension_is_recognised_by_content(self, api, data_dir: Path):
        response = upload(api, "README", RELEASE_HTML)
        assert response.status_code == 200
        assert response.json()["contentType"] == "text/html"

    @pytest.mark.parametrize(
        "data, words",
        [
            ("Café crème brûlée for the naïve cook.".encode("latin-1"), "crème brûlée"),
            ("Die Straße ist grün und schön.".encode("utf-16"), "Straße ist grün"),
            ("Привет мир, это тест кодировки.".encode("cp1251"), "Привет мир"),
            (b"\xef\xbb\xbfUTF-8 with a byte-order mark works too.", "UTF-8 with a byte"),
        ],
    )
    def test_text_in_any_encoding_is_decoded(self, api, data_dir: Path, data, words):
        response = upload(api, "notes.txt", data)
        assert response.status_code == 200, response.json()
        assert words in stored_text(data_dir)

    def test_undecodable_bytes_never_cause_a_500(self, api, data_dir: Path):
        data = b"Valid start " + bytes(range(128, 256)) * 8 + b" valid end."
        assert upload(api, "odd.txt", data).status_code == 200

    def test_a_hostile_filename_is_stored_without_its_path(self, api, data_dir: Path):
        response = upload(api, "../../etc/passwd.txt", b"Harmless text about passwords.")
        assert response.status_code == 200
        assert response.json()["filename"] == "passwd.txt"


class TestDuplicates:
    def test_the_same_content_again_answers_200_with_the_existing_document(
        self, api, registry_mode, data_dir: Path
    ):
        first = upload(api, "policy.txt", POLICY_TEXT.encode())
        again = upload(api, "copy-of-policy.txt", POLICY_TEXT.encode())
        assert (first.status_code, again.status_code) == (200, 200)
        assert (first.json()["created"], again.json()["created"]) == (True, False)
        assert again.json() == {**first.json(), "created": False}
        assert api.get("/documents").json()["total"] == 1
        assert len(vector_file_ids(data_dir)) == first.json()["numChunks"]

    def test_the_same_content_in_another_workspace_is_a_new_document(self, api, data_dir: Path):
        first = upload(api, "policy.txt", POLICY_TEXT.encode(), workspace="a")
        second = upload(api, "policy.txt", POLICY_TEXT.encode(), workspace="b")
        assert (first.json()["created"], second.json()["created"]) == (True, True)
        assert first.json()["fileId"] != second.json()["fileId"]


class TestRefusals:
    @pytest.mark.parametrize(
        "content_type", ["multipart/form-data", "multipart/form-data; boundary="]
    )
    def test_a_multipart_body_without_a_boundary_is_a_json_400(self, api, content_type):
        # Found by fuzzing (tests/api/test_fuzz.py): Django's HTML error page before.
        response = api.post("/ingest/file", b"x", content_type=content_type)
        assert response.status_code == 400
        assert response.json()["detail"].startswith("Malformed multipart body:")

    @pytest.mark.parametrize(
        "name, data, fragment",
        [
            ("photo.gif", b"GIF89a" + b"\x00" * 64, "not an accepted type"),
            ("photo.txt", b"GIF89a" + b"\x00" * 64, "the content is a GIF image"),
            ("report.docx", b"%!PS-Adobe-3.0\n" + b"\x00" * 64, "is not a Word document"),
            ("archive.zip", b"PK\x03\x04" + b"\x00" * 64, "not an accepted type"),
            ("letter.doc", b"\xd0\xcf\x11\xe0" + b"\x00" * 64, "save it as .docx"),
            ("slides.ppt", b"\xd0\xcf\x11\xe0" + b"\x00" * 64, "save it as .pptx"),
            ("fake.pdf", b"This is not a PDF at all.", "is not a PDF"),
            ("blob", bytes(range(256)) * 4, "binary, not text"),
            ("program.exe", b"MZ\x90\x00", "not an accepted type"),
            # A UTF-16 byte-order mark in front of junk (issue 13 #9).
            ("junk.md", b"\xff\xfe\x00\x01garbage", "binary, not text"),
            (
                "junk.txt",
                b"\xfe\xff" + "\x01\x02\x03\x04".encode("utf-16-be") * 8,
                "binary, not text",
            ),
        ],
    )
    def test_unsupported_types_get_415_naming_the_accepted_ones(
        self, api, data_dir: Path, name, data, fragment
    ):
        response = upload(api, name, data)
        assert response.status_code == 415
        detail = response.json()["detail"]
        assert fragment in detail
        assert ".txt" in detail and ".pdf" in detail and ".html" in detail and ".md" in detail
        assert vector_file_ids(data_dir) == []

    @pytest.mark.parametrize(
        "name, data",
        [
            ("empty.txt", b""),
            ("blank.md", b"   \n\n\t  \n"),
            ("scanned.pdf", make_pdf(["", ""])),
            (
                "empty.html",
                b"<html><head><title>x</title><script>1</script></head><body></body></html>",
            ),
        ],
    )
    def test_a_document_without_text_gets_422(self, api, data_dir: Path, name, data):
        response = upload(api, name, data)
        assert response.status_code == 422
        assert "No text to index" in response.json()["detail"]
        assert api.get("/documents").json()["total"] == 0

    def test_a_scanned_pdf_is_explained(self, api, data_dir: Path):
        response = upload(api, "scan.pdf", make_pdf([""]))
        assert "no text layer" in response.json()["detail"]

    def test_a_broken_pdf_gets_422_not_500(self, api, data_dir: Path):
        response = upload(api, "broken.pdf", make_pdf(HANDBOOK_PDF_PAGES)[:200])
        assert response.status_code == 422
        assert "PDF" in response.json()["detail"]

    def test_a_pdf_made_to_be_slow_is_stopped_at_the_time_limit(
        self, api, settings, data_dir: Path
    ):
        """Twenty pages of 300,000 text operators: a minute of pypdf, in 200 KB."""
        settings.PDF_TIME_LIMIT = 1
        started = time.monotonic()
        response = upload(api, "slow.pdf", make_slow_pdf())
        assert response.status_code == 422
        assert "took longer than 1 s (PDF_TIME_LIMIT)" in response.json()["detail"]
        assert time.monotonic() - started < 20  # not the minute the whole file would take
        assert api.get("/documents").json()["total"] == 0

    def test_over_the_size_limit_gets_413(self, api, settings, data_dir: Path):
        settings.MAX_UPLOAD_MB = 1
        settings.MAX_UPLOAD_BYTES = 1024 * 1024
        response = upload(api, "big.txt", b"word " * 300_000)
        assert response.status_code == 413
        assert "1 MB" in response.json()["detail"]
        assert api.get("/documents").json()["total"] == 0

    def test_a_missing_file_field_gets_422(self, api, data_dir: Path):
        response = api.post("/ingest/file", {"workspace": "default"})
        assert response.status_code == 422
        assert "file" in response.json()["detail"]

    @pytest.mark.parametrize("workspace", ["../etc", "sp ace", "-lead", "*"])
    def test_an_invalid_workspace_gets_400(self, api, data_dir: Path, workspace):
        response = upload(api, "policy.txt", POLICY_TEXT.encode(), workspace=workspace)
        assert response.status_code == 400
        assert "Invalid workspace" in response.json()["detail"]
        assert vector_file_ids(data_dir) == []

    def test_a_workspace_name_over_64_characters_gets_422(self, api, data_dir: Path):
        response = upload(api, "policy.txt", POLICY_TEXT.encode(), workspace="a" * 65)
        assert response.status_code == 422
        assert response.json()["detail"].startswith("Invalid request: workspace:")
        assert vector_file_ids(data_dir) == []

    @pytest.mark.parametrize("workspace", [None, ""])
    def test_an_empty_or_missing_workspace_is_the_default_one(self, api, data_dir, workspace):
        response = upload(api, "policy.txt", POLICY_TEXT.encode(), workspace=workspace)
        assert response.status_code == 200
        assert response.json()["workspace"] == "default"
