"""POST /ask: answers come from the documents, with sources that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.backends import get_backend
from tests.support.client import ask, ingest
from tests.support.documents import HANDBOOK_PDF_PAGES, POLICY_TEXT, RELEASE_HTML, make_pdf


@pytest.fixture
def library(api, registry_mode) -> dict[str, dict]:
    return {
        "handbook": ingest(api, "handbook.pdf", make_pdf(HANDBOOK_PDF_PAGES)),
        "release": ingest(api, "release.html", RELEASE_HTML),
        "policy": ingest(api, "policy.txt", POLICY_TEXT.encode(), workspace="security"),
    }


class TestAnswers:
    def test_the_answer_comes_from_the_ingested_file_and_cites_it(self, api, library):
        body = ask(api, "How often must passwords be rotated?", workspace="security")
        assert "Passwords must be rotated every ninety days." in body["answer"]
        top = body["sources"][0]
        assert top["fileId"] == library["policy"]["fileId"]
        assert top["filename"] == "policy.txt"
        assert top["chunkId"] == 0
        assert "ninety days" in top["text"]
        assert 0 < top["score"] <= 1

    def test_it_answers_from_html_and_pdf_too(self, api, library):
        assert "Parquet" in ask(api, "Which file format does the new exporter write?")["answer"]
        body = ask(api, "Where can employees park?")
        assert "lot B" in body["answer"]
        assert body["sources"][0]["filename"] == "handbook.pdf"

    def test_with_nothing_relevant_it_says_so_and_cites_nothing(self, api, library):
        body = ask(api, "What is the migration route of arctic terns?")
        assert body == {
            "answer": "I couldn't find relevant context.",
            "sources": [],
        }

    def test_a_question_of_only_common_words_finds_nothing(self, api, library):
        assert ask(api, "what is it?")["sources"] == []

    def test_the_workspace_limits_the_sources(self, api, library):
        body = ask(api, "How often must passwords be rotated?", workspace="default")
        assert all(s["fileId"] != library["policy"]["fileId"] for s in body["sources"])
        scoped = ask(api, "How often must passwords be rotated?", workspace="security")
        assert {s["fileId"] for s in scoped["sources"]} == {library["policy"]["fileId"]}
        everywhere = ask(api, "How often must passwords be rotated?", workspace="*")
        assert everywhere["sources"][0]["fileId"] == library["policy"]["fileId"]

    def test_this_service_s_own_names_are_accepted_too(self, api, library):
        own = api.post(
            "/ask",
            {"question": "Where can employees park?", "top_k": 1},
            content_type="application/json",
        )
        assert own.status_code == 200
        assert own.json() == ask(api, "Where can employees park?", k=1)
        assert len(own.json()["sources"]) == 1

    def test_without_a_workspace_it_searches_the_default_one(self, api, library):
        body = ask(api, "How often must passwords be rotated?")
        assert library["policy"]["fileId"] not in {s["fileId"] for s in body["sources"]}

    def test_top_k_caps_the_sources(self, api, registry_mode):
        for n in range(4):
            ingest(api, f"t{n}.txt", f"Invoice {n}: the invoice total is {n}00 euros.".encode())
        assert len(ask(api, "invoice total", k=2)["sources"]) == 2

    def test_sources_only_cite_documents_in_the_registry(self, api, library, data_dir: Path):
        # The row goes but its vectors stay (as after a crash between the two):
        # answers must not cite a document that no longer exists.
        get_backend().delete_many([library["policy"]["fileId"]])
        body = ask(api, "How often must passwords be rotated?", workspace="security")
        assert library["policy"]["fileId"] not in {s["fileId"] for s in body["sources"]}
        assert "ninety days" not in body["answer"]

    def test_it_looks_the_cited_documents_up_in_one_query(self, api, registry_mode, settings):
        documents = [
            ingest(api, f"invoice-{n}.txt", f"Invoice {n}: the invoice total is {n}00 euros.")
            for n in range(12)
        ]
        with CaptureQueriesContext(connection) as queries:
            body = ask(api, "What is the invoice total?", k=10)
        cited = {source["fileId"] for source in body["sources"]}
        assert len(cited) == 10
        assert cited <= {document["fileId"] for document in documents}
        # The API key, at most one update of its last use, and one read of the documents;
        # with the chunks in PostgreSQL, the settings of the HNSW scan and the search.
        in_store = 2 if settings.VECTOR_STORE == "pgvector" else 0
        # (Savepoints only because the test itself runs inside a transaction.)
        statements = [
            query["sql"][:60]
            for query in queries.captured_queries
            if not query["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
        ]
        assert len(statements) <= 3 + in_store, statements

    def test_an_empty_store_answers_nothing_found(self, api, registry_mode):
        assert ask(api, "anything about invoices?")["sources"] == []


class TestBadQuestions:
    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"q": ""},
            {"q": "x" * 2001},
            {"q": "ok", "k": -1},  # (0 and null are the default, as the old service read them)
            {"q": "ok", "k": 51},
            {"q": ["a list"]},
            {"question": "", "top_k": 5},
            {"question": "ok", "top_k": 51},
        ],
    )
    def test_malformed_questions_get_422(self, api, body):
        response = api.post("/ask", body, content_type="application/json")
        assert response.status_code == 422
        assert response.json()["detail"].startswith("Invalid request:")

    def test_a_body_that_is_not_json_gets_400(self, api):
        response = api.post("/ask", b'{"q": ', content_type="application/json")
        assert response.status_code == 400
        assert "Cannot parse request body" in response.json()["detail"]

    def test_an_invalid_workspace_gets_400(self, api):
        response = api.post(
            "/ask", {"q": "ok", "workspace": "a b"}, content_type="application/json"
        )
        assert response.status_code == 400


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL server's extension")
def test_pgvector_on_a_postgresql_without_it_is_a_503_naming_the_extension(api, settings):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        if cursor.fetchone() is not None:
            pytest.skip("this server has pgvector: tests/stores/test_pgvector.py covers it")
    settings.VECTOR_STORE = "pgvector"
    response = api.post("/ask", {"q": "anything"}, content_type="application/json")
    assert response.status_code == 503
    assert "needs the PostgreSQL extension pgvector ('vector')" in response.json()["detail"]
