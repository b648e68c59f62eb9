"""manage.py check_registry: does the registry agree with the vector store?"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import orjson
import pytest
from django.core.management import CommandError, call_command

from ingest.search.embeddings import get_embedder
from ingest.stores import get_vector_store, reset_vector_store
from ingest.stores.base import StoredChunks
from registry.backends.database import DatabaseRegistry
from registry.backends.json_registry import JsonFileRegistry
from registry.records import DocumentRecord
from tests.support.inspection import store_label, store_name, vector_file_ids
from tests.support.processes import child_env, run_manage

T0 = datetime(2024, 5, 1, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _fresh_store(data_dir: Path):
    reset_vector_store()
    yield
    reset_vector_store()


def document(n: int, chunks: int = 2, **fields: object) -> DocumentRecord:
    return DocumentRecord(
        file_id=f"doc-{n}",
        filename=f"doc-{n}.txt",
        num_chunks=chunks,
        indexed=chunks > 0,
        created_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n),
        **fields,
    )


def store_chunks(file_id: str, count: int) -> None:
    texts = [f"chunk {i} of {file_id} about tides and harbours" for i in range(count)]
    vectors = get_embedder().embed(texts)
    get_vector_store().replace(
        [
            StoredChunks(
                file_id, "default", list(range(count)), texts, vectors, title=f"{file_id}.txt"
            )
        ]
    )


def ingested(registry, n: int, chunks: int = 2) -> DocumentRecord:
    """A document as ingestion leaves it: in the registry, its chunks in vectors.json."""
    record = registry.upsert(document(n, chunks))
    store_chunks(record.file_id, chunks)
    return record


def check(*args: str) -> tuple[str, str]:
    """The command's report and its last line: its summary, or its error."""
    out = StringIO()
    try:
        summary = call_command("check_registry", *args, stdout=out)
    except CommandError as exc:
        return without_originals_line(out.getvalue()), f"error: {exc}"
    report = without_originals_line(out.getvalue())
    assert report.endswith(summary + "\n")  # call_command prints what handle() returns
    return report.removesuffix(summary + "\n"), summary


def without_originals_line(report: str) -> str:
    """The report less its line naming the documents without an original kept: these
    records are made here, not uploaded, so none has one (tests/operations/
    test_reextract.py checks that line)."""
    lines = report.splitlines(keepends=True)
    return "".join(line for line in lines if "without an original kept" not in line)


@pytest.mark.django_db
class TestCheckRegistry:
    def test_everything_agreeing_passes_and_says_what_it_counted(self, data_dir: Path):
        registry = DatabaseRegistry()
        ingested(registry, 1, chunks=3)
        ingested(registry, 2, chunks=1)
        registry.upsert(document(3, chunks=0))  # nothing to embed: no vectors expected
        out, summary = check()
        assert out == ""
        assert summary == (
            f"Everything agrees: 3 documents in the database registry, "
            f"4 chunks in {store_label(data_dir)}."
        )

    def test_an_empty_registry_and_no_vector_file_agree(self, data_dir: Path):
        _, summary = check()
        assert summary.startswith("Everything agrees: 0 documents in the database registry")

    def test_a_document_without_vectors_is_reported(self, data_dir: Path):
        registry = DatabaseRegistry()
        ingested(registry, 1)
        registry.upsert(document(2, chunks=5))
        out, summary = check()
        assert out.splitlines() == [
            "database: document 'doc-2' (doc-2.txt) has no vectors; the registry says 5 "
            "chunks: /ask cannot find it until its file is ingested again with this fileId, "
            "or it is deleted"
        ]
        assert summary == (
            f"error: The registry and {store_label(data_dir)} disagree: 1 document without vectors"
        )

    def test_chunk_counts_that_disagree_are_reported(self, data_dir: Path):
        registry = DatabaseRegistry()
        ingested(registry, 1, chunks=3)
        registry.upsert(replace(document(1), num_chunks=4))
        out, summary = check()
        assert out.splitlines() == [
            f"database: document 'doc-1' (doc-1.txt) has 3 chunks in {store_name(data_dir)}; "
            "the registry says 4"
        ]
        assert summary.endswith("disagree: 1 document with another chunk count")

    @pytest.mark.json_store_only
    def test_vectors_without_a_document_are_reported_and_fix_removes_only_them(
        self, data_dir: Path
    ):
        registry = DatabaseRegistry()
        ingested(registry, 1, chunks=2)
        store_chunks("deleted-long-ago", 3)

        out, summary = check()
        assert out.splitlines() == [
            "vectors.json: 3 chunks of unknown document 'deleted-long-ago'; --fix removes them"
        ]
        assert summary.endswith("disagree: vectors of 1 unknown document (3 chunks)")
        assert sorted(set(vector_file_ids(data_dir))) == ["deleted-long-ago", "doc-1"]

        out, summary = check("--fix")
        assert out.splitlines()[-1] == (
            "fixed: removed 3 chunks of 1 document that no registry holds"
        )
        assert summary.startswith("Everything agrees: 1 document in the database registry")
        assert vector_file_ids(data_dir) == ["doc-1", "doc-1"]
        _, summary = check()
        assert summary.startswith("Everything agrees")

    @pytest.mark.json_store_only
    def test_fix_leaves_what_it_cannot_fix_and_still_fails(self, data_dir: Path):
        registry = DatabaseRegistry()
        registry.upsert(document(1, chunks=2))
        store_chunks("orphan", 1)
        out, summary = check("--fix")
        assert "fixed: removed 1 chunk of 1 document that no registry holds" in out
        assert summary.endswith("disagree: 1 document without vectors")

    @pytest.mark.json_store_only
    def test_it_checks_the_json_registry_when_that_is_live(
        self, settings, data_dir: Path, json_registry_path: Path
    ):
        json_registry = JsonFileRegistry(json_registry_path)
        ingested(json_registry, 1)
        json_registry.upsert(document(2, chunks=1))
        DatabaseRegistry().upsert(document(3))  # not live: not looked at
        out, _ = check()
        assert out.splitlines() == [
            "json: document 'doc-2' (doc-2.txt) has no vectors; the registry says 1 chunk: "
            "/ask cannot find it until its file is ingested again with this fileId, or it is "
            "deleted"
        ]

    def test_both_checks_each_registry_and_that_they_hold_the_same_documents(
        self, settings, data_dir: Path
    ):
        database = DatabaseRegistry()
        json_registry = JsonFileRegistry(settings.REGISTRY_JSON_PATH)
        for registry in (database, json_registry):
            registry.upsert(document(1))
        store_chunks("doc-1", 2)
        ingested(database, 2)  # ingested after the cutover: not in the JSON file yet
        json_registry.upsert(document(3, chunks=0))
        json_registry.upsert(replace(document(1), filename="renamed.txt"))

        out, summary = check("--both")

        assert out.splitlines() == [
            "database only: document 'doc-2'",
            "json only: document 'doc-3'",
            "differs between the registries: document 'doc-1' (filename)",
        ]
        assert summary == (
            f"error: The registries and {store_label(data_dir)} disagree: "
            "2 documents in one registry only, 1 document differing between them"
        )

    def test_both_agree_after_an_export_ready_for_a_rollback(self, settings, data_dir: Path):
        database = DatabaseRegistry()
        for n in range(1, 4):
            ingested(database, n)
        call_command("export_registry", stdout=StringIO())
        _, summary = check("--both")
        assert summary == (
            "Everything agrees: 3 documents in the database registry, 3 documents in the "
            f"json registry, 6 chunks in {store_label(data_dir)}."
        )

    def test_both_says_when_the_json_registry_is_missing(self, settings, data_dir: Path):
        # Not an empty registry listing every document as "database only" (issue 13 #6).
        ingested(DatabaseRegistry(), 1)
        assert not settings.REGISTRY_JSON_PATH.exists()
        out, summary = check("--both")
        assert out == ""
        assert summary == (
            f"error: the JSON registry {settings.REGISTRY_JSON_PATH} does not exist: write it "
            "with `manage.py export_registry`, or name another with --registry"
        )

    def test_both_compares_the_json_registry_named_on_the_command_line(
        self, settings, data_dir: Path, tmp_path: Path
    ):
        for n in range(1, 3):
            ingested(DatabaseRegistry(), n)
        elsewhere = tmp_path / "exported.json"
        call_command("export_registry", str(elsewhere), stdout=StringIO())
        _, summary = check("--both", "--registry", str(elsewhere))
        assert summary.startswith(
            "Everything agrees: 2 documents in the database registry, 2 documents in the "
            "json registry"
        )
        assert not settings.REGISTRY_JSON_PATH.exists()

    @pytest.mark.json_store_only
    def test_with_both_fix_keeps_vectors_that_either_registry_holds(self, settings, data_dir: Path):
        JsonFileRegistry(settings.REGISTRY_JSON_PATH).upsert(document(1))
        store_chunks("doc-1", 2)
        store_chunks("gone", 2)
        out, _ = check("--both", "--fix")
        assert "fixed: removed 2 chunks of 1 document that no registry holds" in out
        assert vector_file_ids(data_dir) == ["doc-1", "doc-1"]

    def test_it_lists_twenty_findings_of_a_kind_unless_asked_for_all(self, data_dir: Path):
        registry = DatabaseRegistry()
        for n in range(25):
            registry.upsert(document(n))
        out, summary = check()
        assert len(out.splitlines()) == 21
        assert out.splitlines()[-1] == "… and 5 more like these (-v 2 lists all)"
        assert summary.endswith("disagree: 25 documents without vectors")
        out, _ = check("-v", "2")
        assert len(out.splitlines()) == 25

    @pytest.mark.json_store_only
    def test_a_damaged_vector_file_is_an_error_that_names_it(self, data_dir: Path):
        (data_dir / "vectors.json").write_bytes(b'{"format": "docservice-vectors/1", "chunks": [')
        _, summary = check()
        assert summary.startswith(f"error: vector store {data_dir / 'vectors.json'} is damaged")

    def test_a_damaged_json_registry_is_an_error_that_names_it(self, settings, data_dir: Path):
        settings.REGISTRY_JSON_PATH.write_bytes(b'[{"fileId": ')
        _, summary = check("--both")
        assert summary.startswith(f"error: registry file {settings.REGISTRY_JSON_PATH}")


@pytest.mark.django_db(transaction=True)
def test_the_exit_status_says_whether_everything_agrees(
    child_database_url: str,
    data_dir: Path,
):
    env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(data_dir))
    agreeing = run_manage("check_registry", env=env)
    assert agreeing.returncode == 0, agreeing.stderr
    assert agreeing.stdout.startswith("Everything agrees: 0 documents")

    # A registry row whose chunks never arrived, written by the child into its database.
    registry = data_dir / "one.json"
    registry.write_bytes(
        orjson.dumps(
            [
                {
                    "fileId": "doc-1",
                    "filename": "doc-1.txt",
                    "sizeBytes": 10,
                    "workspace": "default",
                    "numChunks": 2,
                    "indexed": True,
                    "createdAt": 1700000000,
                    "updatedAt": 1700000000,
                }
            ]
        )
    )
    assert run_manage("import_registry", str(registry), env=env).returncode == 0
    disagreeing = run_manage("check_registry", env=env)
    assert disagreeing.returncode == 1
    assert "database: document 'doc-1' (doc-1.txt) has no vectors" in disagreeing.stdout
    assert disagreeing.stderr.strip() == (
        f"CommandError: The registry and {store_label(data_dir)} disagree: "
        "1 document without vectors"
    )


@pytest.mark.json_store_only
@pytest.mark.django_db(transaction=True)
def test_a_vector_file_shared_with_another_database_keeps_that_database_s_vectors(
    tmp_path: Path, data_dir: Path
):
    """Development (SQLite) and production settings in one checkout share
    data/vectors.json: production's check names the other database's documents instead
    of calling them unknown, and --fix leaves them unless told otherwise."""
    development = child_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'dev.sqlite3'}", DATA_DIR=str(data_dir)
    )
    assert run_manage("migrate", "--noinput", env=development).returncode == 0
    written = run_manage(
        "shell",
        "-c",
        "from ingest.search.embeddings import get_embedder; "
        "from ingest.stores import get_vector_store; "
        "from ingest.stores.base import StoredChunks; "
        "texts = ['dev notes on tides', 'dev notes on harbours']; "
        "get_vector_store().replace([StoredChunks('dev-notes', 'default', [0, 1], texts, "
        "get_embedder().embed(texts))])",
        env=development,
    )
    assert written.returncode == 0, written.stderr
    ingested(DatabaseRegistry(), 1, chunks=2)  # production's own, written after

    out, summary = check()
    assert out.splitlines() == [
        "vectors.json: 2 chunks of document 'dev-notes', written by the service on another "
        f"database (sqlite:{(tmp_path / 'dev.sqlite3').resolve()}); --fix leaves them"
    ]
    assert "vectors of 1 document of another database (sqlite:" in summary
    assert "give each its own VECTOR_JSON_PATH" in summary

    out, summary = check("--fix")
    assert "fixed" not in out
    assert summary.startswith("error: The registry and")
    assert sorted(vector_file_ids(data_dir)) == ["dev-notes", "dev-notes", "doc-1", "doc-1"]

    out, summary = check("--fix", "--other-databases")
    assert out.splitlines()[-1] == (
        "fixed: removed 2 chunks of 1 document that no registry holds (other databases' included)"
    )
    assert summary.startswith("Everything agrees: 1 document in the database registry")
    assert vector_file_ids(data_dir) == ["doc-1", "doc-1"]


def test_other_databases_goes_with_fix(data_dir: Path):
    _, summary = check("--other-databases")
    assert summary == "error: --other-databases goes with --fix"


@pytest.mark.django_db
def test_a_document_both_registries_hold_without_vectors_is_counted_once(settings, data_dir: Path):
    """A carried-over document the old vec.json had no chunks for, checked before a
    rollback: one finding, naming both registries."""
    database = DatabaseRegistry()
    json_registry = JsonFileRegistry(settings.REGISTRY_JSON_PATH)
    for registry in (database, json_registry):
        registry.upsert(document(1, chunks=3))
    out, summary = check("--both")
    assert out.splitlines() == [
        "database and json: document 'doc-1' (doc-1.txt) has no vectors; the registry says "
        "3 chunks: /ask cannot find it until its file is ingested again with this fileId, "
        "or it is deleted"
    ]
    assert summary.endswith("disagree: 1 document without vectors")
