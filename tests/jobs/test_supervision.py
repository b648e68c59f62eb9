"""What the workers' supervision repairs and forgets (ingest/jobs/supervision.py), in this
process on the pass's database: a job whose worker went quiet, taken back after its lease
and never again its old task's; a job whose task a worker took and never ran; jobs, task
records and workers long gone. (Workers really killed mid-job: jobs/test_background_ingest.py.)"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from ingest.jobs.runner import runner
from ingest.jobs.supervision import prune, recover_orphaned_jobs, recover_stale_jobs
from ingest.models import IngestJob, JobWorker

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def short_lease(settings):
    settings.JOB_LEASE_SECONDS = 5


def queue(api, name: str = "tides.txt") -> IngestJob:
    upload = SimpleUploadedFile(name, f"{name}: spring tides follow the full moon.".encode())
    response = api.post("/ingest/file", {"file": upload, "async": "true"})
    assert response.status_code == 202, response.json()
    return IngestJob.objects.get(pk=response.json()["jobId"])


def taken_by_a_worker(job: IngestJob, *, seconds_ago: float) -> None:
    """As django-tasks' worker leaves a task it claimed, `seconds_ago`, and then died
    before the job itself was marked running (killed, or the database went away)."""
    when = timezone.now() - timedelta(seconds=seconds_ago)
    DBTaskResult.objects.filter(id=job.task_id).update(
        status=TaskResultStatus.RUNNING, started_at=when, worker_ids=["gone"]
    )
    IngestJob.objects.filter(pk=job.pk).update(created_at=when)


def test_a_job_whose_task_was_taken_and_never_run_is_queued_again(api, data_dir: Path):
    job = queue(api)
    taken_by_a_worker(job, seconds_ago=30)
    assert recover_orphaned_jobs() == 1
    again = IngestJob.objects.get(pk=job.pk)
    assert (again.status, again.attempts) == ("queued", 0)
    assert again.task_id != job.task_id
    assert DBTaskResult.objects.get(id=again.task_id).status == TaskResultStatus.READY
    assert DBTaskResult.objects.get(id=job.task_id).status == TaskResultStatus.FAILED
    runner.run(again.job_id, task_id=again.task_id)
    assert IngestJob.objects.get(pk=job.pk).status == "succeeded"


def test_a_job_taken_a_moment_ago_or_waiting_its_turn_is_left_alone(api, data_dir: Path):
    starting = queue(api, "starting.txt")
    taken_by_a_worker(starting, seconds_ago=1)  # within the lease: about to run
    waiting = queue(api, "waiting.txt")
    IngestJob.objects.filter(pk=waiting.pk).update(created_at=timezone.now() - timedelta(1))
    assert recover_orphaned_jobs() == 0
    for job in (starting, waiting):
        assert IngestJob.objects.get(pk=job.pk).task_id == job.task_id


def test_prune_forgets_what_ended_long_ago_and_keeps_the_rest(api, settings, data_dir: Path):
    settings.JOB_RETENTION_DAYS = 14
    old, recent, pending = queue(api, "old.txt"), queue(api, "recent.txt"), queue(api, "p.txt")
    for job in (old, recent):
        runner.run(job.job_id, task_id=job.task_id)
    long_ago = timezone.now() - timedelta(days=15)
    IngestJob.objects.filter(pk=old.pk).update(finished_at=long_ago)
    # As django-tasks' worker leaves a task it ran (run here, it is still "ready").
    DBTaskResult.objects.filter(id=old.task_id).update(
        status=TaskResultStatus.SUCCESSFUL, finished_at=long_ago
    )
    JobWorker.objects.create(worker_id="gone", seen_at=long_ago)
    JobWorker.objects.create(worker_id="here")
    assert prune() == (1, 1)
    assert set(IngestJob.objects.values_list("pk", flat=True)) == {recent.pk, pending.pk}
    assert list(JobWorker.objects.values_list("worker_id", flat=True)) == ["here"]
    assert DBTaskResult.objects.filter(id=recent.task_id).exists()


def running_in(job: IngestJob, worker: str, *, heard_of_seconds_ago: float) -> IngestJob:
    """As a worker leaves a job it was running, last heard of `heard_of_seconds_ago`."""
    claimed = IngestJob.objects.filter(pk=job.pk).claim(task_id=job.task_id, worker_id=worker)
    assert claimed is not None
    heard = timezone.now() - timedelta(seconds=heard_of_seconds_ago)
    IngestJob.objects.filter(pk=job.pk).update(heartbeat_at=heard)
    DBTaskResult.objects.filter(id=job.task_id).update(status=TaskResultStatus.RUNNING)
    return IngestJob.objects.get(pk=job.pk)


def test_a_job_whose_worker_went_quiet_is_taken_back_and_its_old_task_can_never_run_it(
    api, data_dir: Path
):
    job = running_in(queue(api), "lost-host:4242", heard_of_seconds_ago=30)
    assert recover_stale_jobs() == 1
    back = IngestJob.objects.get(pk=job.pk)
    assert (back.status, back.attempts) == ("queued", 1)
    assert back.error_detail == "Its worker (lost-host:4242) stopped answering; taken back"
    assert back.task_id != job.task_id
    assert DBTaskResult.objects.get(id=job.task_id).status == TaskResultStatus.FAILED
    runner.run(job.job_id, task_id=job.task_id)  # the lost worker, back from the dead
    assert IngestJob.objects.get(pk=job.pk).status == "queued"
    runner.run(back.job_id, task_id=back.task_id)
    done = IngestJob.objects.get(pk=job.pk)
    assert (done.status, done.attempts, done.chunks_done) == ("succeeded", 2, 1)
    stored = api.get(f"/documents/{job.file_id}").json()
    assert (stored["indexed"], stored["numChunks"]) == (True, 1)


def test_a_job_heard_of_within_its_lease_is_left_and_one_out_of_attempts_fails(
    api, settings, data_dir: Path
):
    alive = running_in(queue(api, "alive.txt"), "here:1", heard_of_seconds_ago=1)
    settings.JOB_MAX_ATTEMPTS = 1
    spent = running_in(queue(api, "spent.txt"), "gone:2", heard_of_seconds_ago=30)
    assert recover_stale_jobs() == 0  # none taken back: one is alive, one has failed
    assert IngestJob.objects.get(pk=alive.pk).task_id == alive.task_id
    failed = IngestJob.objects.get(pk=spent.pk)
    assert (failed.status, failed.error_status) == ("failed", 503)
    assert failed.error_detail == "Its worker stopped answering 1 times"
    assert api.get(f"/documents/{spent.file_id}").status_code == 404  # listed no more
