"""Background jobs in the admin, and a job run in this process as a worker runs it: the
jobs list and its status filter, a document's job on its page, retrying a failed job;
and what other uploads and deletes of the same document do to a job still pending."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile

from ingest.jobs.runner import runner
from ingest.models import IngestJob
from registry.backends import get_backend
from registry.models import Document
from tests.support.client import ask, upload
from tests.support.inspection import stored_chunks

pytestmark = pytest.mark.django_db

JOBS = "/admin/ingest/ingestjob/"


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("staff", "staff@example.com", "pw"))
    return client


def queue(api, name: str, data: bytes, **fields: str) -> dict:
    response = api.post(
        "/ingest/file", {"file": SimpleUploadedFile(name, data), "async": "true", **fields}
    )
    assert response.status_code == 202, response.json()
    return response.json()


def run(job_id: str) -> IngestJob:
    """Run the job here, as the worker holding its current task would."""
    job = IngestJob.objects.get(pk=job_id)
    runner.run(job.job_id, task_id=job.task_id)
    return IngestJob.objects.get(pk=job_id)


def test_a_job_run_here_succeeds_and_its_document_is_indexed(api, data_dir: Path):
    job = queue(api, "tides.txt", b"Spring tides follow the new and the full moon.")
    done = run(job["jobId"])
    assert (done.status, done.attempts, done.data) == ("succeeded", 1, b"")
    document = api.get(f"/documents/{job['fileId']}").json()
    assert (document["indexed"], document["numChunks"], document["job"]) == (True, 1, None)
    assert api.get(f"/jobs/{job['jobId']}").json()["document"]["fileId"] == job["fileId"]


def test_a_task_that_is_not_the_job_s_current_one_does_nothing(api, data_dir: Path):
    job = queue(api, "tides.txt", b"Spring tides follow the new and the full moon.")
    runner.run(job["jobId"], task_id="an-older-task")
    assert IngestJob.objects.get(pk=job["jobId"]).status == "queued"


def test_the_jobs_list_filters_by_status(api, staff, data_dir: Path):
    good = queue(api, "tides.txt", b"Spring tides follow the new and the full moon.")
    bad = queue(api, "empty.txt", b"   ")
    run(good["jobId"])
    run(bad["jobId"])
    page = staff.get(JOBS, {"status__exact": "failed"}).content.decode()
    assert "empty.txt" in page and "tides.txt" not in page
    page = staff.get(JOBS).content.decode()
    assert "empty.txt" in page and "tides.txt" in page


def test_a_document_s_page_shows_its_job(api, staff, data_dir: Path):
    job = queue(api, "tides.txt", b"Spring tides follow the new and the full moon.")
    pk = Document.objects.get(file_id=job["fileId"]).pk
    page = staff.get(f"/admin/registry/document/{pk}/change/").content.decode()
    assert 'id="job"' in page and "Queued" in page and "0 of 0 chunks embedded" in page


def test_retry_queues_a_failed_job_again_with_its_upload(api, staff, data_dir: Path):
    bad = queue(api, "empty.txt", b"   ")
    failed = run(bad["jobId"])
    assert (failed.status, failed.error_status) == ("failed", 422)
    assert not Document.objects.filter(file_id=bad["fileId"]).exists()  # nothing stored
    response = staff.post(
        JOBS, {"action": "retry", "_selected_action": [str(failed.pk)]}, follow=True
    )
    assert "Queued 1 job(s) again." in response.content.decode()
    again = IngestJob.objects.get(pk=failed.pk)
    assert (again.status, again.attempts, again.error_detail) == ("queued", 0, "")
    assert again.task_id != failed.task_id and again.data == b"   "
    listed = api.get("/documents").json()["items"]
    assert [(d["fileId"], d["indexed"]) for d in listed] == [(bad["fileId"], False)]
    assert run(str(again.pk)).status == "failed"  # the same bytes fail the same way


def test_retry_leaves_jobs_that_did_not_fail(api, staff, data_dir: Path):
    job = queue(api, "tides.txt", b"Spring tides follow the new and the full moon.")
    response = staff.post(
        JOBS, {"action": "retry", "_selected_action": [job["jobId"]]}, follow=True
    )
    assert "only failed jobs can be retried" in response.content.decode()
    assert IngestJob.objects.get(pk=job["jobId"]).status == "queued"


def test_jobs_run_in_either_registry_and_a_failed_one_leaves_nothing(api, registry_mode):
    """During a rollback (USE_JSON_REGISTRY=true) the placeholder, the finished document
    and a failed job's clean-up are the JSON registry's; the jobs stay in the database."""
    job = queue(api, "tides.txt", b"Spring tides follow the new and the full moon.")
    listed = api.get("/documents").json()["items"]
    assert [(d["fileId"], d["indexed"]) for d in listed] == [(job["fileId"], False)]
    assert run(job["jobId"]).status == "succeeded"
    document = api.get(f"/documents/{job['fileId']}").json()
    assert (document["indexed"], document["numChunks"]) == (True, 1)
    answer = api.post("/ask", {"q": "When are spring tides?"}, content_type="application/json")
    assert answer.json()["sources"][0]["fileId"] == job["fileId"]

    bad = queue(api, "empty.txt", b"   ")
    assert run(bad["jobId"]).status == "failed"
    assert [d["fileId"] for d in api.get("/documents").json()["items"]] == [job["fileId"]]


TIDES = b"Spring tides follow the new and the full moon."


def chunks_of(data_dir: Path, file_id: str) -> list[str]:
    return [c["text"] for c in stored_chunks(data_dir) if c["file_id"] == file_id]


class TestBesideAPendingJob:
    """Other requests about a document whose job has not run yet."""

    def test_a_synchronous_upload_of_the_same_bytes_indexes_them_now(self, api, data_dir):
        job = queue(api, "tides.txt", TIDES)
        response = upload(api, "tides.txt", TIDES)
        assert response.status_code == 200, response.json()
        document = response.json()
        assert (document["fileId"], document["created"]) == (job["fileId"], False)
        assert (document["indexed"], document["numChunks"]) == (True, 1)
        assert api.get(f"/jobs/{job['jobId']}").json()["status"] == "cancelled"
        assert run(job["jobId"]).status == "cancelled"  # its worker does nothing
        assert chunks_of(data_dir, job["fileId"]) == [TIDES.decode()]

    def test_a_synchronous_re_ingest_of_its_id_wins_over_it(self, api, data_dir):
        job = queue(api, "notes.txt", TIDES, fileId="notes")
        response = upload(api, "notes.txt", "Neap tides fall between them.", file_id="notes")
        assert response.status_code == 200, response.json()
        assert response.json()["numChunks"] == 1
        assert run(job["jobId"]).status == "cancelled"
        assert chunks_of(data_dir, "notes") == ["Neap tides fall between them."]
        assert ask(api, "When do neap tides fall?")["sources"][0]["fileId"] == "notes"

    def test_the_same_bytes_under_the_same_id_get_the_same_job(self, api, data_dir):
        first = queue(api, "notes.txt", TIDES, fileId="notes")
        again = queue(api, "notes.txt", TIDES, fileId="notes")
        assert again["jobId"] == first["jobId"]
        assert api.get("/jobs").json()["total"] == 1

    def test_a_newer_upload_for_its_id_that_fails_leaves_no_document(self, api, data_dir):
        first = queue(api, "notes.txt", TIDES, fileId="notes")
        second = queue(api, "notes.txt", b"   ", fileId="notes")
        assert api.get(f"/jobs/{first['jobId']}").json()["status"] == "cancelled"
        assert run(second["jobId"]).status == "failed"
        assert api.get("/documents/notes").status_code == 404  # it never had chunks
        assert chunks_of(data_dir, "notes") == []

    def test_a_failed_re_ingest_leaves_the_document_it_would_replace(self, api, data_dir):
        document = upload(api, "notes.txt", TIDES, file_id="notes").json()
        job = queue(api, "notes.txt", b"   ", fileId="notes")
        assert run(job["jobId"]).status == "failed"
        kept = api.get("/documents/notes").json()
        assert (kept["indexed"], kept["sha256"]) == (True, document["sha256"])
        assert chunks_of(data_dir, "notes") == [TIDES.decode()]

    def test_a_job_whose_document_went_is_cancelled_and_writes_nothing(self, api, data_dir):
        job = queue(api, "tides.txt", TIDES)
        get_backend().delete_many([job["fileId"]])  # the row alone, behind the service
        done = run(job["jobId"])
        assert (done.status, done.error_detail) == ("cancelled", "The document was deleted")
        assert chunks_of(data_dir, job["fileId"]) == []


def test_retry_is_refused_when_another_document_now_holds_the_bytes(
    api, staff, data_dir, settings, tmp_path
):
    job = queue(api, "tides.txt", TIDES)
    settings.EMBEDDER = "sentence-transformers"  # a model that cannot be loaded
    settings.EMBEDDING_MODEL = str(tmp_path / "no-such-model")
    settings.JOB_MAX_ATTEMPTS = 1
    failed = run(job["jobId"])
    assert (failed.status, failed.error_status) == ("failed", 503)
    settings.EMBEDDER = "hashing-v1"
    other = upload(api, "copy.txt", TIDES).json()  # the same bytes, indexed meanwhile
    response = staff.post(
        JOBS, {"action": "retry", "_selected_action": [str(failed.pk)]}, follow=True
    )
    page = response.content.decode()
    assert f"document &#x27;{other['fileId']}&#x27; now holds these bytes" in page
    assert "Queued 0 job(s) again." in page
    assert IngestJob.objects.get(pk=failed.pk).status == "failed"


def test_retry_needs_the_permission_to_add_documents(api, client, data_dir):
    failed = run(queue(api, "empty.txt", b"   ")["jobId"])
    viewer = User.objects.create_user("viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_ingestjob"))
    client.force_login(viewer)
    page = client.get(JOBS).content.decode()
    assert "Retry the selected failed jobs" not in page
    client.post(JOBS, {"action": "retry", "_selected_action": [str(failed.pk)]})
    assert IngestJob.objects.get(pk=failed.pk).status == "failed"


def test_an_unreadable_pdf_fails_as_the_synchronous_upload_does(api, data_dir: Path):
    broken = b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer <<>>\n"
    refused = upload(api, "broken.pdf", broken)
    assert refused.status_code == 422, refused.json()
    failed = run(queue(api, "broken.pdf", broken)["jobId"])
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert (failed.error_status, failed.error_detail) == (422, refused.json()["detail"])
    assert api.get("/documents").json()["total"] == 0


def test_the_openapi_schema_documents_background_ingests(client):
    schema = client.get("/openapi.json").json()
    for path in ("/ingest/file", "/ingest/url"):
        operation = schema["paths"][path]["post"]
        asked = {(p["in"], p["name"]) for p in operation["parameters"]}
        assert {("query", "async"), ("header", "Prefer")} <= asked, path
        assert "202" in operation["responses"], path
    for path in ("/jobs", "/jobs/{jobId}"):
        assert "200" in schema["paths"][path]["get"]["responses"], path
    job = schema["components"]["schemas"]["JobOut"]["properties"]
    assert {"jobId", "status", "progress", "error", "document", "attempts"} <= set(job)


def test_a_damaged_json_registry_fails_the_job_saying_so_and_a_resend_recovers(
    api, settings, data_dir: Path
):
    if settings.VECTOR_STORE == "pgvector":
        pytest.skip("VECTOR_STORE=pgvector refuses the JSON registry (settings stop start-up)")
    settings.USE_JSON_REGISTRY = True
    settings.JOB_MAX_ATTEMPTS = 1
    job = queue(api, "tides.txt", TIDES)
    registry = data_dir / "registry.json"
    intact = registry.read_bytes()
    registry.write_bytes(b"[{")  # truncated by a full disk, say
    failed = run(job["jobId"])
    assert (failed.status, failed.error_status) == ("failed", 503)
    assert failed.error_detail.startswith(f"Registry unavailable: registry file {registry}")
    registry.write_bytes(intact)  # restored: the document is listed, without a job
    again = queue(api, "tides.txt", TIDES)
    assert (again["fileId"], again["status"]) == (job["fileId"], "queued")
    assert again["jobId"] != job["jobId"]
    assert run(again["jobId"]).status == "succeeded"
    assert api.get(f"/documents/{job['fileId']}").json()["indexed"] is True


def test_jobs_are_listed_by_workspace_and_a_bad_name_is_400(api, data_dir: Path):
    queue(api, "tides.txt", TIDES)
    queue(api, "eng.txt", b"Engineering notes on the harbour crane.", workspace="eng")
    for workspace, total in (("eng", 1), ("default", 1), ("*", 2), ("none-here", 0)):
        assert api.get("/jobs", {"workspace": workspace}).json()["total"] == total, workspace
    for bad in ("a b", "\x00eng", "x" * 65):
        response = api.get("/jobs", {"workspace": bad})
        assert response.status_code in (400, 422), (bad, response.json())
        assert "workspace" in response.json()["detail"].lower(), response.json()
