"""A rollback to the JSON registry and the return to the database (issue 24): what was
deleted during the rollback stays deleted, what was added comes along, and
`import_registry --sync` shows it first and asks before deleting more than a handful."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from registry.models import Document
from tests.support.client import ask, ingest
from tests.support.commands import run_command

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.json_store_only]


def ids_in_the_table() -> set[str]:
    return set(Document.objects.values_list("file_id", flat=True))


def test_deletes_made_during_a_rollback_stay_deleted_on_the_return(api, settings, data_dir):
    notes = [ingest(api, f"note-{n}.txt", f"Note {n}: the ferry to island {n}.") for n in range(4)]
    registry = data_dir / "registry.json"
    # The rollback: the database exported to the file, and the service on the file.
    run_command("export_registry", str(registry))
    settings.USE_JSON_REGISTRY = True
    for gone in notes[:2]:
        deleted = api.post("/delete", {"fileId": gone["fileId"]}, content_type="application/json")
        assert deleted.json()["deleted"] is True
    later = ingest(api, "later.txt", "Written during the rollback: the harbour master's rota.")
    # The return: the database brought to the file's state.
    settings.USE_JSON_REGISTRY = False
    before = ids_in_the_table()

    out, error = run_command("import_registry", str(registry), "--sync", "--dry-run")
    assert error is None, out
    for gone in notes[:2]:
        assert f"would delete document {gone['fileId']!r} (note-" in out
    assert out.splitlines()[-1].endswith(
        "it would give: 1 created, 0 updated, 2 unchanged, 2 deleted, 0 rejected."
    )
    assert ids_in_the_table() == before

    out, error = run_command("import_registry", str(registry), "--sync")
    assert error is None, out
    assert out.splitlines()[-1] == (
        f"Imported {registry}: 1 created, 0 updated, 2 unchanged, 2 deleted, 0 rejected."
    )
    assert ids_in_the_table() == {notes[2]["fileId"], notes[3]["fileId"], later["fileId"]}
    out, error = run_command("check_registry", "--both", "--registry", str(registry))
    assert error is None and out.startswith("Everything agrees"), (out, error)
    assert ask(api, "Who keeps the rota?")["sources"][0]["fileId"] == later["fileId"]
    out, error = run_command("import_registry", str(registry), "--sync")
    assert out.splitlines()[-1].endswith(
        "0 deleted, 0 rejected. Nothing changed: the database matches the file."
    )


def test_more_than_a_handful_of_deletes_needs_yes(api, data_dir: Path):
    notes = [ingest(api, f"n-{n}.txt", f"Note {n} about lighthouse {n}.") for n in range(8)]
    registry = data_dir / "registry.json"
    run_command("export_registry", str(registry))
    kept = notes[0]["fileId"]
    held = [item for item in orjson.loads(registry.read_bytes()) if item["fileId"] == kept]
    registry.write_bytes(orjson.dumps(held))  # the file now holds one of the eight

    out, error = run_command("import_registry", str(registry), "--sync")
    assert error is not None and "--sync would delete 7 documents" in error
    assert "rerun with --yes" in error
    assert len(ids_in_the_table()) == 8  # nothing done

    out, error = run_command("import_registry", str(registry), "--sync", "--yes")
    assert error is None, out
    assert ids_in_the_table() == {kept}
    assert "7 deleted" in out.splitlines()[-1]


def test_yes_goes_with_sync(data_dir: Path):
    _, error = run_command("import_registry", str(data_dir / "registry.json"), "--yes")
    assert error == "--yes goes with --sync"
