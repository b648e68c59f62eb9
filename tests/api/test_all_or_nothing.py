"""A write of a document is all or nothing: its registry row, its chunks and its audit event
stand or fall together. When the registry write fails, the vectors written for it go
again (or the old ones come back); when the database refuses the audit event (issue 32),
the document write is undone, through the API (either registry) and through a worker.
Nothing is left behind, and the same request succeeds once the database takes writes
again."""

from __future__ import annotations

import time
from collections.abc import Callable
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from registry.models import AuditEvent
from tests.support.client import ask, ingest, upload
from tests.support.faults import refusing
from tests.support.inspection import on_pgvector, service_rows, stored_chunks, vector_file_ids
from tests.support.live import LiveService, multipart
from tests.support.processes import running_worker

pytestmark = pytest.mark.django_db

TIDES = "# Tides\n\nSpring tides follow the new and the full moon."
UNAVAILABLE = {"detail": "The database is unavailable; try again shortly"}


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_vectors_are_removed_when_the_registry_write_fails(api, data_dir: Path):
    assert not (data_dir / "vectors.json").exists()
    with refusing("INSERT", "documents"):
        response = upload(api, "policy.txt", "Passwords must be rotated every ninety days.")
    assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    # The json store wrote the vectors (the file now exists) and took them out again;
    # the chunks table's rows were never committed.
    assert (data_dir / "vectors.json").exists() is not on_pgvector()
    assert vector_file_ids(data_dir) == []
    assert ask(api, "passwords")["sources"] == []


def refused_re_ingest_leaves_the_document_as_it_was(
    api, data_dir: Path, file_id: str, *, refused: tuple[str, str]
) -> None:
    """A.txt ingested as `file_id`, then b.txt sent to replace it while the database
    refuses `refused` (an operation and a table): 503, and a.txt stands, chunks and all."""
    before = upload(api, "a.txt", "Passwords must be rotated every ninety days.", file_id=file_id)
    assert before.status_code == 200
    stored = stored_chunks(data_dir)
    with refusing(*refused):
        response = upload(api, "b.txt", "Laptops must use full disk encryption.", file_id=file_id)
        assert response.status_code == 503
    assert stored_chunks(data_dir) == stored
    assert api.get(f"/documents/{file_id}").json()["filename"] == "a.txt"
    assert ask(api, "passwords")["sources"][0]["fileId"] == file_id


def test_a_failed_re_ingest_puts_the_old_vectors_back(api, data_dir: Path):
    refused_re_ingest_leaves_the_document_as_it_was(
        api, data_dir, "policy", refused=("UPDATE", "documents")
    )
    assert ask(api, "laptops encryption")["sources"] == []


def test_ingest_and_delete_agree_with_check_registry(api, data_dir: Path):
    for n in range(3):
        ingest(api, f"n{n}.txt", f"Note {n} about topic {n}. " * (n * 80 + 1))
    api.post("/delete", {"fileId": "does-not-exist"}, content_type="application/json")
    summary = call_command("check_registry", stdout=StringIO())
    assert summary.startswith("Everything agrees: 3 documents in the database registry")


def test_an_ingest_whose_event_is_refused_stores_nothing(api, registry_mode, data_dir: Path):
    with refusing("INSERT", "audit_events"):
        response = upload(api, "tides.md", TIDES)
        assert (response.status_code, response.json()) == (503, UNAVAILABLE)
    assert api.get("/documents", {"workspace": "*"}).json()["total"] == 0
    assert stored_chunks(data_dir) == []
    assert actions() == []
    again = upload(api, "tides.md", TIDES)  # nothing half-written stands in its way
    assert (again.status_code, again.json()["created"]) == (200, True)
    assert actions() == ["ingest"]


def test_a_re_ingest_whose_event_is_refused_leaves_the_document_as_it_was(
    api, registry_mode, data_dir: Path
):
    refused_re_ingest_leaves_the_document_as_it_was(
        api, data_dir, "p", refused=("INSERT", "audit_events")
    )
    assert actions() == ["ingest"]


def test_a_delete_whose_event_is_refused_deletes_nothing(api, registry_mode, data_dir: Path):
    file_id = upload(api, "tides.md", TIDES).json()["fileId"]
    stored = stored_chunks(data_dir)
    with refusing("INSERT", "audit_events"):
        assert api.delete(f"/documents/{file_id}").status_code == 503
        gone = api.post("/delete", {"fileId": file_id}, content_type="application/json")
        assert gone.status_code == 503
    assert api.get(f"/documents/{file_id}").status_code == 200
    assert stored_chunks(data_dir) == stored
    assert ask(api, "spring tides")["sources"][0]["fileId"] == file_id
    assert actions() == ["ingest"]
    assert api.delete(f"/documents/{file_id}").status_code == 200
    assert actions() == ["ingest", "delete"]


@pytest.mark.django_db(transaction=True)  # the worker's rows, on PostgreSQL
def test_a_job_whose_event_is_refused_fails_and_stores_nothing(
    start_live_service: Callable[..., LiveService],
):
    service = start_live_service(JOB_MAX_ATTEMPTS="1")
    body, headers = multipart("tides.md", TIDES.encode(), {"async": "true"})
    with refusing("INSERT", "audit_events", env=service.env):
        status, _, job = service.request("POST", "/ingest/file", body, headers)
        assert status == 202, job
        with running_worker(service.env):
            deadline = time.monotonic() + 90
            while (ended := service.call("GET", f"/jobs/{job['jobId']}")[1])["status"] in (
                "queued",
                "running",
            ):
                assert time.monotonic() < deadline, f"the job is still {ended}"
                time.sleep(0.2)
    assert ended["status"] == "failed"
    assert ended["error"] == {
        "status": 503,
        "detail": UNAVAILABLE["detail"] + " (gave up after 1 attempts)",
    }
    assert service.call("GET", f"/documents/{job['fileId']}")[0] == 404
    assert stored_chunks(service.data_dir) == []
    assert service_rows(service.env, "SELECT action FROM audit_events", []) == []
