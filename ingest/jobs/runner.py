"""The runner: the task a worker runs for a job, and how the job ends.

A job is read, cut and embedded (ingest/preparing.py), then stored by the one write path
(`services.document_store`) under its fence: the job must still be this task's, under a
row lock, and its document must still be listed. A passing failure queues it again, a
failure of the document fails it, a stopping worker releases it (queueing.py's
docstring tells the whole story).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django_tasks import TaskContext, task

from common.metrics import JOBS
from ingest.exceptions import IngestError
from ingest.models import DELETED, IngestJob, IngestJobQuerySet
from ingest.preparing import Upload, cut, document_record
from ingest.search.embeddings import embed_chunks
from ingest.services import document_store
from registry.audit import Actor
from registry.backends import get_backend
from registry.exceptions import DATABASE_UNAVAILABLE, RegistryUnavailable

logger = logging.getLogger("ingest.jobs")

Status = IngestJob.Status
EMBED_BATCH = 64  # chunks embedded between two progress counts
PAGES_EVERY = 1.0  # seconds between two counts of pages read (a page by OCR takes 1-3 s)


class JobTakenAway(Exception):
    """The job is not this task's any more (cancelled, or taken back and queued under a
    new task): the task leaves it as it is."""


class JobCancelled(Exception):
    """The job is still this task's, but what it would store is gone: it ends cancelled,
    saying why."""


class Released(Exception):
    """The worker is stopping: the job goes back to the queue."""


@dataclass(frozen=True)
class InHand:
    job_id: Any
    task_id: str


class Runner:
    """This process's runner of jobs: the worker it runs as, the job in hand (which the
    worker's heartbeat reports, supervision.py), and whether it is asked to let go."""

    def __init__(self) -> None:
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.in_hand: InHand | None = None
        self.releasing = threading.Event()

    def serve_as(self, worker_id: str) -> None:
        """Run jobs as this worker (db_worker's id), not yet asked to let go."""
        self.worker_id = worker_id
        self.releasing.clear()

    def release(self) -> None:
        """Put the job in hand back in the queue at its next batch (SIGTERM)."""
        self.releasing.set()

    def run(self, job_id: str, *, task_id: str) -> None:
        """The job, if `task_id` is its current task and it is pending."""
        job = IngestJob.objects.filter(pk=job_id).claim(task_id=task_id, worker_id=self.worker_id)
        if job is None:
            logger.info("job %s is not task %s's to run any more", job_id, task_id)
            return
        self.in_hand = InHand(job.pk, task_id)
        held = IngestJob.objects.filter(pk=job.pk).held_by(task_id)
        try:
            self._run_held(job, held)
        except DatabaseError as exc:
            # The outcome could not be written (the database gone, this worker cut off):
            # the job stays running under this task until its lease runs out, and then a
            # worker takes it back and runs it again (ingest/jobs/supervision.py).
            logger.warning(
                "job %s: its outcome could not be recorded, left to its lease: %s",
                job.job_id,
                exc,
            )
        finally:
            self.in_hand = None

    def _run_held(self, job: IngestJob, held: IngestJobQuerySet) -> None:
        try:
            self._ingest(job, held)
            JOBS["succeeded"].inc()
        except JobTakenAway:
            logger.info("job %s stopped: cancelled or taken back", job.job_id)
        except JobCancelled as exc:
            if held.finish(Status.CANCELLED, detail=str(exc)):
                JOBS["cancelled"].inc()
            logger.info("job %s cancelled: %s", job.job_id, exc)
        except Released:
            if _requeue(job, held, delay=0, detail="", attempts=job.attempts - 1):
                JOBS["released"].inc()
            logger.info("job %s went back to the queue: its worker is stopping", job.job_id)
        except (RegistryUnavailable, DatabaseError) as exc:
            logger.warning("job %s: the registry is unavailable: %s", job.job_id, exc)
            _retry_or_fail(job, held, _unavailable(exc))
        except IngestError as exc:
            if exc.transient:
                logger.warning("job %s: %s", job.job_id, exc)
                _retry_or_fail(job, held, str(exc), status=exc.status)
            else:
                fail(job, held, exc.status, str(exc))
        except Exception:
            logger.exception("job %s failed", job.job_id)
            fail(job, held, 500, "Ingestion failed unexpectedly; the service log has details")

    def _ingest(self, job: IngestJob, held: IngestJobQuerySet) -> None:
        upload = job_upload(job)
        pieces = cut(upload, progress=self._pages_progress(held))
        texts = pieces.searchable()
        if not held.update(chunks_total=len(texts)):
            raise JobTakenAway
        counted = 0

        def progress(phase: str, done: int, total: int) -> None:
            """After each of the embedder's batches: stop if asked to, count every
            EMBED_BATCH chunks (the embedder sorts all the chunks by length first, as
            sentence-transformers' own encode does, so we embed them in one call)."""
            nonlocal counted
            if self.releasing.is_set():
                raise Released
            if done - counted < EMBED_BATCH and done < total:
                return
            if not held.update(chunks_done=done, heartbeat_at=Now()):
                raise JobTakenAway
            counted = done

        vectors = embed_chunks(texts, progress=progress)
        backend = get_backend()
        current = backend.get_many([job.file_id]).get(job.file_id)
        if current is None:
            raise JobCancelled(DELETED)

        def fence() -> None:
            """Under the job's row lock: still this task's, its document still listed."""
            if not held.select_for_update().exists():
                raise JobTakenAway
            if not backend.get_many([job.file_id]):
                raise JobCancelled(DELETED)

        record = document_record(
            upload,
            file_id=job.file_id,
            sha256=job.sha256,
            content_type=pieces.extracted.content_type,
            title=pieces.extracted.title,
            chunks=len(texts),
            created_at=current.created_at,
        )
        document_store(
            record=record,
            chunks=pieces.chunks(record, vectors),
            actor=job_actor(job),
            replaces=current,
            job=job,
            fence=fence,
            original=upload.data,
        )

    def _pages_progress(self, held: IngestJobQuerySet) -> Callable[[int, int], None]:
        """Pages read, for readers whose pages are slow (OCR): counted at most once every
        PAGES_EVERY seconds, and at the first and the last page; stop if asked to."""
        counted = 0.0

        def progress(done: int, total: int) -> None:
            nonlocal counted
            if self.releasing.is_set():
                raise Released
            now = time.monotonic()
            if now - counted < PAGES_EVERY and 0 < done < total:
                return
            if not held.update(pages_done=done, pages_total=total, heartbeat_at=Now()):
                raise JobTakenAway
            counted = now

        return progress


runner = Runner()


@task(takes_context=True)
def run_ingest_job(context: TaskContext, job_id: str) -> None:
    """The task a worker runs: the job, if its current task is this one."""
    runner.run(job_id, task_id=str(context.task_result.id))


def new_task(job: IngestJob, *, delay: float = 0) -> str:
    """A new task for the job, to run after `delay` seconds: its id, which the job must
    hold (`task_id`) for the task to run it."""
    runs = run_ingest_job.using(run_after=timezone.now() + timedelta(seconds=delay))
    return str(runs.enqueue(job.job_id).id)


def job_upload(job: IngestJob) -> Upload:
    """What the client sent, as the job keeps it."""
    return Upload(
        data=bytes(job.data),
        filename=job.filename,
        workspace=job.workspace,
        content_type=job.content_type,
        charset=job.charset or None,
        source=job.source,
        url=job.url,
        file_id=job.file_id,
    )


def job_actor(job: IngestJob) -> Actor:
    """Who asked for the job, whom its audit event names: the API key, the staff user or
    anonymous that queued it (a job queued before the audit trail: unknown)."""
    asked = Actor(job.requested_by or "unknown", job.requested_via or "api", job.requested_from)
    return asked.in_background()


def _unavailable(exc: Exception) -> str:
    """What the API would answer (config/api.py): the database's details stay in the log,
    a JSON registry's file and reason are said."""
    if isinstance(exc, DatabaseError) or isinstance(exc.__cause__, DatabaseError):
        return DATABASE_UNAVAILABLE
    return f"Registry unavailable: {exc}"


def fail(job: IngestJob, held: IngestJobQuerySet, status: int, detail: str) -> None:
    """The job failed for good; a placeholder it was to fill goes (nothing is stored)."""
    if not held.finish(Status.FAILED, error_status=status, detail=detail):
        return
    JOBS["failed"].inc()
    logger.warning("job %s failed (%s): %s", job.job_id, status, detail)
    if job.replaces:
        return
    backend = get_backend()
    try:
        current = backend.get_many([job.file_id]).get(job.file_id)
        if current is not None and current.awaiting_chunks:
            # A placeholder has no chunks (a store's write puts back what it wrote when
            # the row fails): only its row goes, without asking a store that may be what
            # failed.
            backend.delete_many([job.file_id])
    except (RegistryUnavailable, DatabaseError) as exc:
        # It stays listed, unindexed: the same bytes sent again make a new job for it.
        logger.warning("job %s: its placeholder could not be removed: %s", job.job_id, exc)


def _retry_or_fail(
    job: IngestJob, held: IngestJobQuerySet, detail: str, *, status: int = 503
) -> None:
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        fail(job, held, status, f"{detail} (gave up after {job.attempts} attempts)")
        return
    delay = settings.JOB_RETRY_SECONDS * 2 ** (job.attempts - 1)
    if not _requeue(job, held, delay=delay, detail=detail):
        # Its lease ran out while this worker could not reach the database (cut off, say):
        # the job is another's now, and this late write was refused.
        logger.info("job %s stopped: cancelled or taken back", job.job_id)
        return
    JOBS["retried"].inc()
    logger.info("job %s queued again in %.0f s (attempt %s)", job.job_id, delay, job.attempts)


def _requeue(
    job: IngestJob,
    held: IngestJobQuerySet,
    *,
    delay: float,
    detail: str,
    attempts: int | None = None,
) -> bool:
    """Queue the job again under a new task, if it is still this task's; whether it was."""
    with transaction.atomic():
        if not held.select_for_update().exists():
            return False
        held.requeue(task_id=new_task(job, delay=delay), detail=detail, attempts=attempts)
        return True
