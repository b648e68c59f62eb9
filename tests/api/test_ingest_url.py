"""POST /ingest/url over HTTP, against real pages served on loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.client import ask, upload
from tests.support.documents import HANDBOOK_PDF_PAGES, RELEASE_HTML, make_pdf
from tests.support.http_server import CannedServer
from tests.support.inspection import stored_text, vector_file_ids


@pytest.fixture
def site() -> Iterator[CannedServer]:
    with CannedServer("127.0.0.1") as server:
        server.routes["/"] = lambda h: h.respond(
            200, RELEASE_HTML, [("Content-Type", "text/html; charset=utf-8")]
        )
        server.routes["/docs/guide.pdf"] = lambda h: h.respond(
            200, make_pdf(HANDBOOK_PDF_PAGES), [("Content-Type", "application/pdf")]
        )
        server.routes["/notes"] = lambda h: h.respond(
            200,
            "Grüße: the notes say hello.".encode("latin-1"),
            [("Content-Type", "text/plain; charset=iso-8859-1")],
        )
        server.routes["/moved"] = lambda h: h.respond(
            302, headers=[("Location", "/docs/guide.pdf")]
        )
        server.routes["/escape"] = lambda h: h.respond(
            302, headers=[("Location", f"http://127.0.0.2:{server.port}/")]
        )
        server.routes["/image"] = lambda h: h.respond(
            200, b"GIF89a" + b"\x00" * 32, [("Content-Type", "image/gif")]
        )
        yield server


@pytest.fixture
def trusted_loopback(settings) -> None:
    """Trust 127.0.0.1 only, as an operator trusts one intranet network."""
    settings.INGEST_TRUSTED_NETWORKS = ["127.0.0.1/32"]


def ingest_url(api, url: str, **extra):
    """POST /ingest/url as the old service's clients do."""
    return api.post("/ingest/url", {"fileUrl": url, **extra}, content_type="application/json")


class TestFetchedDocuments:
    def test_an_html_page_is_indexed_under_its_title(
        self, api, registry_mode, site, trusted_loopback
    ):
        response = ingest_url(api, site.url("/"), workspace="eng")
        assert response.status_code == 200, response.json()
        document = response.json()
        assert document["filename"] == "Release notes 4.2"
        assert (document["source"], document["url"]) == ("url", site.url("/"))
        assert document["contentType"] == "text/html"
        answer = ask(api, "What does the new exporter write?", workspace="eng")
        assert "Parquet" in answer["answer"]
        assert answer["sources"][0]["fileId"] == document["fileId"]

    def test_a_pdf_after_a_redirect_is_named_after_its_final_path(
        self, api, site, trusted_loopback
    ):
        response = ingest_url(api, site.url("/moved"))
        assert response.status_code == 200, response.json()
        assert response.json()["filename"] == "guide.pdf"
        assert response.json()["url"] == site.url("/docs/guide.pdf")

    def test_the_declared_charset_is_used(self, api, site, trusted_loopback, data_dir: Path):
        assert ingest_url(api, site.url("/notes")).status_code == 200
        assert "Grüße" in stored_text(data_dir)

    def test_the_same_page_again_answers_200(self, api, site, trusted_loopback):
        first = ingest_url(api, site.url("/"))
        again = ingest_url(api, site.url("/"))
        assert (first.status_code, again.status_code) == (200, 200)
        assert (first.json()["created"], again.json()["created"]) == (True, False)
        assert again.json()["fileId"] == first.json()["fileId"]

    def test_the_client_s_filename_names_the_document(self, api, site, trusted_loopback):
        response = ingest_url(api, site.url("/docs/guide.pdf"), filename="Staff handbook.pdf")
        assert response.status_code == 200, response.json()
        assert response.json()["filename"] == "Staff handbook.pdf"

    def test_this_service_s_own_url_key_is_accepted_too(self, api, site, trusted_loopback):
        response = api.post("/ingest/url", {"url": site.url("/")}, content_type="application/json")
        assert response.status_code == 200, response.json()
        assert response.json()["filename"] == "Release notes 4.2"


class TestReingestByFileId:
    def test_a_new_file_id_creates_the_document_under_it(
        self, api, registry_mode, site, trusted_loopback, data_dir: Path
    ):
        response = ingest_url(api, site.url("/"), fileId="release-notes")
        assert response.status_code == 200, response.json()
        assert (response.json()["fileId"], response.json()["created"]) == ("release-notes", True)
        assert set(vector_file_ids(data_dir)) == {"release-notes"}

    def test_an_existing_file_id_is_replaced_keeping_its_creation_time(
        self, api, registry_mode, site, trusted_loopback, data_dir: Path
    ):
        first = ingest_url(api, site.url("/"), fileId="doc-1").json()
        time.sleep(1.1)  # timestamps have whole seconds
        second = ingest_url(
            api, site.url("/docs/guide.pdf"), fileId="doc-1", filename="guide.pdf"
        ).json()
        assert (second["fileId"], second["created"]) == ("doc-1", False)
        assert second["createdAt"] == first["createdAt"]
        assert second["updatedAt"] > first["updatedAt"]
        assert (second["filename"], second["contentType"]) == ("guide.pdf", "application/pdf")
        assert api.get("/documents/doc-1").json() == {
            key: value
            for key, value in second.items()
            if key not in ("ok", "chunks", "created", "copyOf")
        }
        assert vector_file_ids(data_dir) == ["doc-1"] * second["numChunks"]
        # The old page's chunks are gone: only the PDF answers.
        assert "Parquet" not in ask(api, "What does the new exporter write?")["answer"]
        assert "lot B" in ask(api, "Where can employees park?")["answer"]

    def test_re_ingesting_into_another_workspace_moves_the_document(
        self, api, site, trusted_loopback
    ):
        ingest_url(api, site.url("/"), fileId="doc-1", workspace="eng")
        moved = ingest_url(api, site.url("/"), fileId="doc-1", workspace="legal").json()
        assert moved["workspace"] == "legal"
        assert ask(api, "What does the new exporter write?", workspace="eng")["sources"] == []
        legal = ask(api, "What does the new exporter write?", workspace="legal")
        assert legal["sources"][0]["fileId"] == "doc-1"

    def test_a_new_id_for_content_another_document_holds_is_a_copy(
        self, api, site, trusted_loopback
    ):
        original = ingest_url(api, site.url("/")).json()
        response = ingest_url(api, site.url("/"), fileId="copy")
        assert response.status_code == 200, response.json()
        copy = response.json()
        assert (copy["fileId"], copy["created"], copy["copyOf"]) == (
            "copy",
            True,
            original["fileId"],
        )
        assert copy["sha256"] == original["sha256"]
        # The same bytes without an id find a document holding them (the oldest).
        again = ingest_url(api, site.url("/")).json()
        assert again["fileId"] in (original["fileId"], "copy")
        assert (again["created"], again["copyOf"]) == (False, None)
        assert api.get("/documents").json()["total"] == 2

    def test_re_ingesting_an_id_with_content_another_document_holds_is_a_409(
        self, api, site, trusted_loopback
    ):
        original = ingest_url(api, site.url("/")).json()
        ingest_url(api, site.url("/docs/guide.pdf"), fileId="other")
        response = ingest_url(api, site.url("/"), fileId="other")
        assert response.status_code == 409
        assert response.json() == {
            "detail": f"Document {original['fileId']!r} already holds this content in "
            "workspace 'default'; re-ingest that id or delete it first"
        }
        assert api.get("/documents/other").json()["sha256"] != original["sha256"]

    @pytest.mark.parametrize("file_id", ["has space", "../up", "x/y", "-lead", "é"])
    def test_an_unusable_file_id_gets_400_before_anything_is_fetched(
        self, api, site, trusted_loopback, file_id
    ):
        response = ingest_url(api, site.url("/"), fileId=file_id)
        assert response.status_code == 400
        assert response.json()["detail"].startswith(f"Invalid fileId {file_id!r}")
        assert site.requests == []

    def test_an_upload_can_re_ingest_by_file_id_too(self, api, data_dir: Path):
        first = upload(api, "a.txt", "Alpha text about apples.", file_id="fruit")
        second = upload(api, "b.txt", "Beta text about bananas.", file_id="fruit")
        assert (first.json()["created"], second.json()["created"]) == (True, False)
        assert second.json()["filename"] == "b.txt"
        assert api.get("/documents").json()["total"] == 1
        assert vector_file_ids(data_dir) == ["fruit"] * second.json()["numChunks"]


class TestRefusals:
    @pytest.mark.parametrize(
        "url, reason",
        [
            ("http://127.0.0.1:9/", "loopback"),
            ("http://localhost:9/", "loopback"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://10.0.0.1/", "private"),
            ("http://[::ffff:127.0.0.1]/", "loopback"),
            ("file:///etc/passwd", "http"),
            ("ftp://example.org/file.txt", "http"),
        ],
    )
    def test_unsafe_urls_get_400_with_the_reason(self, api, data_dir: Path, url, reason):
        response = ingest_url(api, url)
        assert response.status_code == 400
        assert reason in response.json()["detail"]
        assert vector_file_ids(data_dir) == []

    def test_a_redirect_to_a_private_address_gets_400(self, api, site, trusted_loopback):
        response = ingest_url(api, site.url("/escape"))
        assert response.status_code == 400
        assert "127.0.0.2" in response.json()["detail"]
        assert api.get("/documents").json()["total"] == 0

    def test_the_local_site_is_refused_unless_trusted(self, api, site):
        assert ingest_url(api, site.url("/")).status_code == 400
        assert site.connections == 0

    def test_a_missing_page_gets_422_naming_the_status(self, api, site, trusted_loopback):
        response = ingest_url(api, site.url("/nothing-here"))
        assert response.status_code == 422
        assert "404" in response.json()["detail"]

    def test_an_unsupported_type_gets_415(self, api, site, trusted_loopback):
        assert ingest_url(api, site.url("/image")).status_code == 415

    def test_a_page_over_the_limit_gets_413(self, api, site, trusted_loopback, settings):
        settings.MAX_UPLOAD_BYTES = 100
        assert ingest_url(api, site.url("/docs/guide.pdf")).status_code == 413

    @pytest.mark.parametrize(
        "body", [{}, {"fileUrl": ""}, {"fileUrl": "x" * 2049}, {"fileUrl": 42}, {"url": ""}]
    )
    def test_malformed_bodies_get_422(self, api, body):
        assert api.post("/ingest/url", body, content_type="application/json").status_code == 422

    def test_a_url_without_a_scheme_gets_400(self, api):
        response = ingest_url(api, "example.org/page")
        assert response.status_code == 400


def test_null_ids_and_names_are_left_out_and_a_numeric_id_is_read_as_text(
    api, site, trusted_loopback
):
    response = ingest_url(api, site.url("/"), filename=None, fileId=None, workspace=None)
    assert response.status_code == 200, response.json()
    assert response.json()["workspace"] == "default"
    response = ingest_url(api, site.url("/docs/guide.pdf"), fileId=12345)
    assert (response.status_code, response.json()["fileId"]) == (200, "12345")
    response = ingest_url(api, site.url("/docs/guide.pdf"), fileId=10**70)  # 71 digits
    assert response.status_code == 422, response.json()
