"""The registry and the vector store never disagree, also when the registry write fails."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

from django.core.management import call_command
from django.db import connection

from tests.helpers import ask, ingest, on_pgvector, stored_chunks, upload, vector_file_ids


def refuse_writes(operation: str) -> None:
    """A real database failure on every `operation` (INSERT, UPDATE) of a documents row,
    as a full disk or a lost connection would cause, made with a trigger, not a mock.
    The test's transaction is rolled back at its end, and the trigger with it."""
    name = f"refuse_{operation.lower()}"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'simulated storage failure'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE {operation} ON documents "
                f"FOR EACH ROW EXECUTE FUNCTION {name}()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER {name} BEFORE {operation} ON documents "
                "BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
            )


def test_vectors_are_removed_when_the_registry_write_fails(api, data_dir: Path):
    refuse_writes("INSERT")
    assert not (data_dir / "vectors.json").exists()
    response = upload(api, "policy.txt", "Passwords must be rotated every ninety days.")
    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable; try again shortly"}
    # The json store wrote the vectors (the file now exists) and took them out again;
    # the chunks table's rows were never committed.
    assert (data_dir / "vectors.json").exists() is not on_pgvector()
    assert vector_file_ids(data_dir) == []
    assert ask(api, "passwords")["sources"] == []


def test_a_failed_re_ingest_puts_the_old_vectors_back(api, data_dir: Path):
    before = upload(api, "a.txt", "Passwords must be rotated every ninety days.", file_id="policy")
    assert before.status_code == 200
    stored = stored_chunks(data_dir)
    refuse_writes("UPDATE")
    response = upload(api, "b.txt", "Laptops must use full disk encryption.", file_id="policy")
    assert response.status_code == 503
    assert stored_chunks(data_dir) == stored
    assert api.get("/documents/policy").json()["filename"] == "a.txt"
    assert ask(api, "passwords")["sources"][0]["fileId"] == "policy"
    assert ask(api, "laptops encryption")["sources"] == []


def test_ingest_and_delete_agree_with_check_registry(api, data_dir: Path):
    for n in range(3):
        ingest(api, f"n{n}.txt", f"Note {n} about topic {n}. " * (n * 80 + 1))
    api.post("/delete", {"fileId": "does-not-exist"}, content_type="application/json")
    summary = call_command("check_registry", stdout=StringIO())
    assert summary.startswith("Everything agrees: 3 documents in the database registry")
