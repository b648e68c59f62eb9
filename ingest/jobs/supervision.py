"""A worker's supervision, beside the runner in each `db_worker` process: a thread that
says every JOB_LEASE_SECONDS / 4 (at most 15 s) that the worker and its job in hand are
alive, takes back the jobs whose workers went quiet, and prunes what ended long ago.

Heartbeats are written and read with the database's clock (Now()), so hosts whose clocks
disagree never take each other's live jobs.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from common.metrics import JOBS
from ingest.jobs.runner import Runner, fail, new_task
from ingest.models import IngestJob, JobWorker

logger = logging.getLogger("ingest.jobs")

Status = IngestJob.Status
ORPHANS_CHECKED = 100  # queued jobs looked at per beat, oldest first
PRUNE_EVERY = 3600.0  # seconds, per worker


class WorkerLost(Exception):
    """What django-tasks records of a task whose worker stopped answering (its traceback
    says which way)."""


def heartbeat_interval() -> float:
    """Four times a lease, and at least every 15 s: /health counts workers heard of in
    the last minute."""
    return min(float(settings.JOB_LEASE_SECONDS) / 4, 15.0)


def _lease() -> timedelta:
    return timedelta(seconds=settings.JOB_LEASE_SECONDS)


def beat(runner: Runner) -> int:
    """One round of a worker's supervision: it is alive, and so is its job in hand; jobs
    whose workers went quiet are taken back. Returns how many were."""
    JobWorker.objects.update_or_create(
        worker_id=runner.worker_id,
        defaults={"seen_at": Now(), "host": socket.gethostname(), "pid": os.getpid()},
    )
    in_hand = runner.in_hand
    if in_hand is not None:
        held = IngestJob.objects.filter(pk=in_hand.job_id).held_by(in_hand.task_id)
        held.update(heartbeat_at=Now())
    taken = recover_stale_jobs() + recover_orphaned_jobs()
    JOBS["taken_back"].inc(taken)
    return taken


def recover_stale_jobs() -> int:
    """Queue again (under a new task) every running job not heard of for
    JOB_LEASE_SECONDS; one that has used all its attempts fails instead."""
    exhausted: list[tuple[IngestJob, str]] = []
    taken = 0
    with transaction.atomic():
        stale = (
            IngestJob.objects.select_for_update(skip_locked=True)
            .defer("data")
            .filter(status=Status.RUNNING, heartbeat_at__lt=Now() - _lease())
        )
        for job in stale:
            _give_up_task(job.task_id, "the worker running it stopped answering")
            if job.attempts >= settings.JOB_MAX_ATTEMPTS:
                exhausted.append((job, job.task_id))
                continue
            _take_back(job, f"Its worker ({job.worker_id}) stopped answering; taken back")
            logger.warning("job %s taken back from %s", job.job_id, job.worker_id)
            taken += 1
    for job, task_id in exhausted:
        held = IngestJob.objects.filter(pk=job.pk).held_by(task_id)
        fail(job, held, 503, f"Its worker stopped answering {job.attempts} times")
    return taken


def recover_orphaned_jobs() -> int:
    """Queue again the queued jobs whose task no worker will run: one taken by a worker
    that died (or lost the database) before the job was marked running, a lease ago or
    more. The oldest ORPHANS_CHECKED queued jobs are looked at each time."""
    taken = 0
    with transaction.atomic():
        queued = list(
            IngestJob.objects.select_for_update(skip_locked=True)
            .defer("data")
            .filter(status=Status.QUEUED, created_at__lt=timezone.now() - _lease())
            .order_by("created_at")[:ORPHANS_CHECKED]
        )
        if not queued:
            return 0
        tasks = {
            str(task_id): status
            for task_id, status in DBTaskResult.objects.filter(
                id__in=[uuid.UUID(job.task_id) for job in queued if job.task_id]
            )
            .exclude(status=TaskResultStatus.RUNNING, started_at__gte=Now() - _lease())
            .values_list("id", "status")
        }
        for job in queued:
            status = tasks.get(job.task_id)
            if status == TaskResultStatus.READY:
                continue  # waiting its turn
            if status is None and DBTaskResult.objects.filter(id=job.task_id).exists():
                continue  # its task was taken less than a lease ago
            _give_up_task(job.task_id, "the worker that took it stopped before running it")
            _take_back(job, "Its worker stopped before running it; queued again")
            logger.warning("job %s queued again: its task was not run", job.job_id)
            taken += 1
    return taken


def _give_up_task(task_id: str, why: str) -> None:
    """django-tasks' record of a task a worker took and never finished: failed."""
    DBTaskResult.objects.filter(id=task_id, status=TaskResultStatus.RUNNING).update(
        status=TaskResultStatus.FAILED,
        finished_at=timezone.now(),
        exception_class_path=f"{WorkerLost.__module__}.{WorkerLost.__qualname__}",
        traceback=why,
    )


def _take_back(job: IngestJob, detail: str) -> None:
    """The job queued again under a new task: the old one can never write it."""
    IngestJob.objects.filter(pk=job.pk).requeue(task_id=new_task(job), detail=detail)


def prune() -> tuple[int, int]:
    """Forget what ended JOB_RETENTION_DAYS ago: finished jobs (a failed one's upload
    with it), django-tasks' records of finished tasks, and workers not heard of since.
    Returns the jobs and task records removed."""
    cutoff = Now() - timedelta(days=settings.JOB_RETENTION_DAYS)
    jobs, _ = (
        IngestJob.objects.exclude(status__in=IngestJob.PENDING)
        .filter(finished_at__lt=cutoff)
        .delete()
    )
    tasks, _ = DBTaskResult.objects.filter(
        status__in=[TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED],
        finished_at__lt=cutoff,
    ).delete()
    JobWorker.objects.filter(seen_at__lt=cutoff).delete()
    return jobs, tasks


class Supervisor(threading.Thread):
    """A worker's heartbeat, on a thread (and a database connection) of its own."""

    def __init__(self, runner: Runner) -> None:
        super().__init__(name="job-supervisor", daemon=True)
        self.runner = runner
        self.stopped = threading.Event()

    def run(self) -> None:
        pruned_at = -PRUNE_EVERY
        while True:
            try:
                beat(self.runner)
                if time.monotonic() - pruned_at >= PRUNE_EVERY:
                    jobs, tasks = prune()
                    pruned_at = time.monotonic()
                    if jobs or tasks:
                        logger.info("pruned %s finished job(s), %s task record(s)", jobs, tasks)
            except DatabaseError as exc:
                logger.warning(
                    "worker %s: the database is unavailable: %s", self.runner.worker_id, exc
                )
            finally:
                close_old_connections()
            if self.stopped.wait(heartbeat_interval()):
                return

    def stop(self) -> None:
        self.stopped.set()
