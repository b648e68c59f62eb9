"""Background ingestion as a client meets it: 202 and a job, a real `db_worker` process
that runs it, the job's status and progress, and how it ends (issue 23)."""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from tests.support.documents import HANDBOOK_PDF_PAGES, make_pdf
from tests.support.http_server import slow_embeddings
from tests.support.inspection import file_chunks, kept_upload, service_rows, stored_chunks
from tests.support.live import LiveService, multipart
from tests.support.processes import running_server, running_worker, service_of_its_own

pytestmark = pytest.mark.django_db(transaction=True)  # the server and workers commit

PARKING = "Employees park in lot B behind the warehouse. Visitors park at the front gate."


@pytest.fixture
def service(start_live_service: Callable[..., LiveService]) -> LiveService:
    return start_live_service()


def post_async(service: LiveService, name: str, data: bytes, **fields: str) -> tuple:
    """POST /ingest/file with `async=true`: status, headers, body."""
    body, headers = multipart(name, data, {"async": "true", **fields})
    return service.request("POST", "/ingest/file", body, headers)


def job_of(service: LiveService, job_id: str) -> dict[str, Any]:
    status, job = service.call("GET", f"/jobs/{job_id}")
    assert status == 200, job
    return job


def wait_for(
    service: LiveService,
    job_id: str,
    until: Callable[[dict], bool],
    seconds: float = 90,
    seen: list[dict] | None = None,
) -> dict[str, Any]:
    """Poll the job until `until` holds; each state read is added to `seen` if given."""
    deadline = time.monotonic() + seconds
    while True:
        status, job = service.call("GET", f"/jobs/{job_id}")
        if status == 200 and seen is not None:
            seen.append(job)
        if status == 200 and until(job):
            return job
        assert status in (200, 503), job  # 503: the database is away for a moment
        assert time.monotonic() < deadline, f"job {job_id} is still {job}"
        time.sleep(0.2)


def ended(job: dict) -> bool:
    return job["status"] in ("succeeded", "failed", "cancelled")


def ask(service: LiveService, question: str) -> dict[str, Any]:
    status, answer = service.post_json("/ask", {"q": question})
    assert status == 200, answer
    return answer


class TestQueued:
    """What the API says before any worker has run the job."""

    def test_an_async_upload_is_202_with_its_job_and_listed_unindexed(self, service):
        status, headers, job = post_async(service, "parking.txt", PARKING.encode())
        assert status == 202, job
        assert headers["location"] == f"/jobs/{job['jobId']}"
        assert (job["status"], job["filename"], job["workspace"]) == (
            "queued",
            "parking.txt",
            "default",
        )
        assert job["progress"] == {
            "chunksDone": 0,
            "chunksTotal": 0,
            "pagesDone": 0,
            "pagesTotal": 0,
        }
        assert (job["error"], job["document"], job["attempts"]) == (None, None, 0)
        assert job_of(service, job["jobId"]) == job
        listed = service.call("GET", "/documents")[1]["items"]
        assert [(d["fileId"], d["indexed"], d["job"]) for d in listed] == [
            (job["fileId"], False, {"jobId": job["jobId"], "status": "queued"})
        ]
        assert ask(service, "Where do employees park?")["sources"] == []

    def test_the_same_bytes_again_get_the_same_job(self, service):
        first = post_async(service, "parking.txt", PARKING.encode())[2]
        status, _, again = post_async(service, "copy.txt", PARKING.encode())
        assert (status, again["jobId"], again["fileId"]) == (202, first["jobId"], first["fileId"])
        assert service.call("GET", "/jobs")[1]["total"] == 1

    def test_prefer_respond_async_and_the_query_parameter_ask_for_it_too(self, service):
        body, headers = multipart("a.txt", b"Alpha notes about the harbour.")
        status, answered, job = service.request(
            "POST", "/ingest/file", body, {**headers, "Prefer": "respond-async, wait=5"}
        )
        assert (status, answered["preference-applied"]) == (202, "respond-async")
        body, headers = multipart("b.txt", b"Beta notes about the lighthouse.")
        status, _, job = service.request("POST", "/ingest/file?async=true", body, headers)
        assert (status, job["status"]) == (202, "queued")

    def test_what_needs_no_parsing_is_refused_at_once(self, service):
        status, _, error = post_async(service, "photo.gif", b"GIF89a" + b"\x00" * 64)
        assert status == 415 and "not an accepted type" in error["detail"]
        status, _, error = post_async(service, "a.txt", b"text", workspace="no spaces")
        assert status == 400 and error["detail"].startswith("Invalid workspace")
        assert service.call("GET", "/jobs")[1]["total"] == 0

    def test_without_async_the_answer_is_the_synchronous_one(self, service):
        status, document = service.post_file("parking.txt", PARKING.encode())
        assert (status, document["created"], document["indexed"]) == (200, True, True)
        assert service.call("GET", "/jobs")[1]["total"] == 0

    def test_health_shows_the_queue_and_the_workers_seen(self, service):
        post_async(service, "a.txt", b"Alpha notes about the harbour.")
        post_async(service, "b.txt", b"Beta notes about the lighthouse.")
        time.sleep(2.5)  # each process reads the queue at most every 2 s
        status, health = service.call("GET", "/health")
        queue = health["queue"]
        assert (status, queue["queued"], queue["running"], queue["workers"]) == (200, 2, 0, 0)
        assert queue["oldestQueuedSeconds"] >= 2
        with running_worker(service.env):
            deadline = time.monotonic() + 60
            while (queue["queued"], queue["workers"]) != (0, 1):
                assert time.monotonic() < deadline, queue
                time.sleep(0.5)
                queue = service.call("GET", "/health")[1]["queue"]
        assert "oldestQueuedSeconds" not in queue  # none is queued

    def test_an_unknown_job_is_404(self, service):
        for job_id in ("0" * 32, "not-a-job"):
            status, error = service.call("GET", f"/jobs/{job_id}")
            assert (status, error) == (404, {"detail": f"Job {job_id!r} not found"})


class TestRun:
    """A real worker runs the jobs."""

    def test_the_job_succeeds_and_the_document_is_answerable(self, service):
        job = post_async(service, "handbook.pdf", make_pdf(HANDBOOK_PDF_PAGES))[2]
        with running_worker(service.env):
            done = wait_for(service, job["jobId"], ended)
        assert done["status"] == "succeeded", done
        chunks = done["document"]["numChunks"]
        assert done["progress"] == {
            "chunksDone": chunks,
            "chunksTotal": chunks,
            "pagesDone": 2,  # the PDF's two pages, read
            "pagesTotal": 2,
        }
        assert (done["attempts"], done["error"]) == (1, None)
        assert done["startedAt"] <= done["finishedAt"]
        assert done["document"]["indexed"] is True and done["document"]["job"] is None
        document = service.call("GET", f"/documents/{job['fileId']}")[1]
        assert (document["indexed"], document["numChunks"], document["job"]) == (
            True,
            chunks,
            None,
        )
        answer = ask(service, "Where do employees park?")
        assert "lot B" in answer["answer"]
        assert answer["sources"][0]["fileId"] == job["fileId"]
        stored = Counter(chunk["file_id"] for chunk in stored_chunks(service.data_dir))
        assert stored == {job["fileId"]: chunks}
        assert kept_upload(service.env, job["jobId"]) == 0  # the upload went with success

    def test_bad_content_fails_with_the_synchronous_status_and_stores_nothing(self, service):
        sync_status, sync_error = service.post_file("blank.txt", b"   \n\t  ")
        job = post_async(service, "empty.txt", b" \n \n ")[2]
        with running_worker(service.env):
            done = wait_for(service, job["jobId"], ended)
        assert done["status"] == "failed"
        assert done["error"] == {"status": sync_status, "detail": sync_error["detail"]}
        assert done["attempts"] == 1  # not retried: the document, not the service, failed
        assert service.call("GET", "/documents")[1]["total"] == 0
        assert kept_upload(service.env, job["jobId"]) == len(b" \n \n ")  # for a retry
        assert stored_chunks(service.data_dir) == []

    def test_hostile_documents_fail_as_the_synchronous_ingest_refuses_them(self, service):
        """A zip bomb and an entity expansion in a Word file (issue 33): each job fails
        with the status and words the synchronous ingest answers, and stores nothing."""
        from tests.support.office_files import make_docx, with_entities, zip_bomb

        handbook = make_docx()
        hostile = {
            "bomb.docx": zip_bomb(handbook, member="word/document.xml", megabytes=300),
            "laughs.docx": with_entities(handbook, "word/document.xml"),
        }
        refused = {name: service.post_file(name, data) for name, data in hostile.items()}
        jobs = {name: post_async(service, name, data)[2] for name, data in hostile.items()}
        with running_worker(service.env):
            done = {name: wait_for(service, job["jobId"], ended) for name, job in jobs.items()}
        for name, (status, error) in refused.items():
            assert status in (413, 422), error
            assert (done[name]["status"], done[name]["error"]) == (
                "failed",
                {"status": status, "detail": error["detail"]},
            )
        assert service.call("GET", "/documents")[1]["total"] == 0
        assert stored_chunks(service.data_dir) == []

    def test_a_model_that_cannot_be_loaded_is_retried_then_fails_with_why(self, service, tmp_path):
        job = post_async(service, "parking.txt", PARKING.encode())[2]
        broken = {
            **service.env,
            "EMBEDDER": "sentence-transformers",
            "EMBEDDING_MODEL": str(tmp_path / "no-such-model"),
            "JOB_MAX_ATTEMPTS": "2",
            "JOB_RETRY_SECONDS": "0.5",
        }
        with running_worker(broken):
            done = wait_for(service, job["jobId"], ended)
        assert (done["status"], done["attempts"], done["error"]["status"]) == ("failed", 2, 503)
        assert "cannot be loaded" in done["error"]["detail"]
        assert done["error"]["detail"].endswith("(gave up after 2 attempts)")
        assert service.call("GET", "/documents")[1]["total"] == 0

    def test_deleting_a_queued_document_cancels_its_job(self, service):
        job = post_async(service, "parking.txt", PARKING.encode())[2]
        status, deleted = service.call("DELETE", f"/documents/{job['fileId']}")
        assert (status, deleted["deleted"]) == (200, True)
        assert job_of(service, job["jobId"])["status"] == "cancelled"
        assert kept_upload(service.env, job["jobId"]) == 0
        with running_worker(service.env):
            time.sleep(2)  # the worker would have taken it by now
        assert job_of(service, job["jobId"])["status"] == "cancelled"
        assert service.call("GET", "/documents")[1]["total"] == 0
        assert stored_chunks(service.data_dir) == []

    def test_a_worker_runs_below_the_api_s_cpu_priority(self, service):
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        for setting, lowered in ((None, 10), ("3", 3), ("0", 0)):
            env = service.env if setting is None else {**service.env, "JOB_WORKER_NICE": setting}
            with running_worker(env) as worker:
                deadline = time.monotonic() + 30
                seen = "SELECT 1 FROM ingest_workers WHERE pid = %s"
                while not service_rows(service.env, seen, [worker.pid]):  # its first beat
                    assert time.monotonic() < deadline and worker.poll() is None
                    time.sleep(0.2)
                # Its main thread and the supervisor's, started after it lowered itself.
                threads = [int(t) for t in os.listdir(f"/proc/{worker.pid}/task")]
                nice = {os.getpriority(os.PRIO_PROCESS, thread) for thread in threads}
                assert len(threads) >= 2 and nice == {min(19, ours + lowered)}, (setting, nice)

    def test_an_async_url_is_fetched_now_and_indexed_by_the_job(self, service):
        status, _, error = service.request(
            "POST",
            "/ingest/url",
            orjson.dumps({"fileUrl": "http://10.0.0.1/page", "async": True}),
            {"Content-Type": "application/json"},
        )
        assert status == 400 and "private address" in error["detail"]


def long_text(chunks: int) -> bytes:
    """A document of about `chunks` chunks (120 words each, 20 shared with the next)."""
    words = [f"Shipment {n} of crate {n * 7 % 101} left dock {n % 13}." for n in range(20 * chunks)]
    return " ".join(words).encode()


def written_once(service: LiveService, file_id: str, chunks: int) -> None:
    """The store holds each of the document's chunks exactly once: the pass's store, or
    the file of a service on a database of its own (`own_store`)."""
    if service.env.get("VECTOR_STORE") == "json" and (service.data_dir / "vectors.json").exists():
        stored = file_chunks(service.data_dir / "vectors.json")
    else:
        stored = stored_chunks(service.data_dir)
    mine = [c["chunk_index"] for c in stored if c["file_id"] == file_id]
    assert sorted(mine) == list(range(chunks)), (len(mine), chunks)


class TestFaults:
    """Workers killed, stopped, or cut off from the database."""

    @pytest.fixture
    def slow_service(self, start_live_service: Callable[..., LiveService]) -> Iterator[LiveService]:
        # An embedding service that answers each batch of 100 chunks after 1.5 s: a job of
        # 150 chunks runs for seconds, counted after its first batch, without a core.
        with slow_embeddings(seconds_per_batch=1.5) as embedder:
            yield start_live_service(JOB_LEASE_SECONDS="4", **embedder)

    def test_a_job_outlives_a_killed_worker_and_a_stopped_one(self, slow_service):
        job = post_async(slow_service, "manifest.txt", long_text(150))[2]
        assert kept_upload(slow_service.env, job["jobId"]) == len(long_text(150))
        log: list[str] = []
        seen: list[dict] = []
        with running_worker(slow_service.env, log=log) as first:
            wait_for(
                slow_service,
                job["jobId"],
                lambda j: j["progress"]["chunksDone"] >= 64,
                seen=seen,
            )
            # A second worker beside it, idle: the job is the first's while it lives.
            with running_worker(slow_service.env, log=log) as second:
                first.kill()  # SIGKILL: no chance to put the job back
                first.wait()
                assert job_of(slow_service, job["jobId"])["status"] == "running"
                # The second takes it back once its lease (4 s) has run out, and runs it
                # from the start.
                wait_for(
                    slow_service,
                    job["jobId"],
                    lambda j: j["attempts"] == 2 and j["progress"]["chunksDone"] >= 64,
                )
                second.terminate()  # SIGTERM: it ends its batch, puts the job back, leaves
                assert second.wait(timeout=60) == 0, log[-20:]
        assert any("ingest.warmup" in line and "ready in" in line for line in log), log[-20:]
        # Progress grew while the first ran: the total known first, then counted up.
        running = [j["progress"] for j in seen if j["status"] == "running"]
        total = running[-1]["chunksTotal"]
        assert total > 128 and all(p["chunksTotal"] in (0, total) for p in running), running
        done_counts = [p["chunksDone"] for p in running]
        assert done_counts == sorted(done_counts) and 0 < done_counts[-1] < total, done_counts
        back = job_of(slow_service, job["jobId"])
        assert (back["status"], back["attempts"]) == ("queued", 1), back
        with running_worker(slow_service.env, log=log):
            done = wait_for(slow_service, job["jobId"], ended, seconds=180)
        assert (done["status"], done["attempts"]) == ("succeeded", 2), (done, log[-20:])
        written_once(slow_service, job["fileId"], done["document"]["numChunks"])
        assert kept_upload(slow_service.env, job["jobId"]) == 0

    def test_deleting_a_document_while_its_job_runs_stops_it(self, slow_service):
        job = post_async(slow_service, "manifest.txt", long_text(150))[2]
        log: list[str] = []
        with running_worker(slow_service.env, log=log) as worker:
            wait_for(slow_service, job["jobId"], lambda j: j["progress"]["chunksDone"] >= 64)
            status, deleted = slow_service.call("DELETE", f"/documents/{job['fileId']}")
            assert (status, deleted["deleted"]) == (200, True)
            assert job_of(slow_service, job["jobId"])["status"] == "cancelled"
            # The worker drops it at its next batch and takes the next job.
            after = post_async(slow_service, "parking.txt", PARKING.encode())[2]
            assert wait_for(slow_service, after["jobId"], ended)["status"] == "succeeded"
            assert worker.poll() is None
        assert job_of(slow_service, job["jobId"])["status"] == "cancelled", log[-20:]
        assert slow_service.call("GET", f"/documents/{job['fileId']}")[0] == 404
        stored = {chunk["file_id"] for chunk in stored_chunks(slow_service.data_dir)}
        assert stored == {after["fileId"]}
        assert kept_upload(slow_service.env, job["jobId"]) == 0

    def test_two_workers_never_run_the_same_job(self, service):
        queued = [
            post_async(service, f"note-{n}.txt", f"Note {n}: the tide at pier {n}.".encode())[2]
            for n in range(8)
        ]
        with running_worker(service.env), running_worker(service.env):
            done = [wait_for(service, job["jobId"], ended) for job in queued]
        assert [(job["status"], job["attempts"]) for job in done] == [("succeeded", 1)] * 8
        for job in done:
            written_once(service, job["fileId"], job["document"]["numChunks"])


def test_a_worker_carries_on_by_itself_when_the_database_comes_back(postgres, tmp_path):
    """PostgreSQL (a server of the test's own, whatever the pass) stops for a few seconds
    under a worker with a job in hand: the worker is not restarted, and the job is
    retried or taken back, not lost."""
    data = tmp_path / "own"
    log: list[str] = []
    with slow_embeddings(seconds_per_batch=1.5) as embedder:
        env, key = service_of_its_own(
            postgres.url,
            data,
            VECTOR_STORE="json",
            JOB_LEASE_SECONDS="4",
            JOB_RETRY_SECONDS="1",
            **embedder,
        )
        with running_server(env, workers=1) as base, running_worker(env, log=log) as worker:
            service = LiveService(base, key, data, env)
            job = post_async(service, "manifest.txt", long_text(150))[2]
            wait_for(service, job["jobId"], lambda j: j["progress"]["chunksDone"] >= 64)
            postgres.stop()
            time.sleep(6)  # past JOB_LEASE_SECONDS: its next write fails, or its lease ends
            postgres.start()
            done = wait_for(service, job["jobId"], ended, seconds=180)
            assert worker.poll() is None, log[-20:]  # the same process, still running
    assert done["status"] == "succeeded", (done, log[-20:])
    assert done["attempts"] >= 2
    written_once(service, job["fileId"], done["document"]["numChunks"])
