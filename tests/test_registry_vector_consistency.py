"""The registry and data/vec.json never disagree, also when the registry write fails."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection

from tests.conftest import vector_file_ids


@pytest.fixture
def failing_registry_inserts(db):
    """A real database failure on every INSERT into documents, as a full disk or a lost
    connection would cause, made with a trigger rather than a mock."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION refuse_insert() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'simulated storage failure'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                "CREATE TRIGGER refuse_insert BEFORE INSERT ON documents "
                "FOR EACH ROW EXECUTE FUNCTION refuse_insert()"
            )
        else:
            cursor.execute(
                "CREATE TRIGGER refuse_insert BEFORE INSERT ON documents "
                "BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
            )


def test_vectors_are_removed_when_the_registry_write_fails(
    api, failing_registry_inserts, data_dir: Path
):
    assert not (data_dir / "vec.json").exists()
    upload = SimpleUploadedFile("policy.txt", b"Passwords must be rotated every ninety days.")
    response = api.post("/ingest/file", {"file": upload})
    assert response.status_code == 503
    assert response.json() == {"detail": "The database is unavailable; try again shortly"}
    # The vectors were written (the file now exists) and taken out again.
    assert (data_dir / "vec.json").exists()
    assert vector_file_ids(data_dir) == []
    answer = api.post("/ask", {"question": "passwords"}, content_type="application/json")
    assert answer.json()["sources"] == []
