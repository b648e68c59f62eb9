"""Background ingestion: a document queued as a job, read, cut and embedded by a worker
(`manage.py db_worker`), written by the same unit of work as a synchronous ingest.

The queue is Django's Tasks API (the django-tasks backport) with its database backend,
on the registry's database: no broker, and any number of workers on any number of hosts
share it through row locks. Each job is an `IngestJob` row holding its upload until it
succeeds or is cancelled; the task only names the job. What the library leaves to us:

- Progress: the chunks are embedded in batches, and each batch is counted on the job.
- Retries: a passing failure (database, store or model unavailable) queues the job again
  after JOB_RETRY_SECONDS, doubling each time, JOB_MAX_ATTEMPTS times in all; a failure
  of the document itself (unreadable, empty, binary) fails it at once, with the status
  and message the synchronous path answers.
- Lost workers: each worker says it is alive every JOB_LEASE_SECONDS / 4 (`Supervisor`),
  for itself and for the job in hand. Any worker takes back a running job not heard of
  for JOB_LEASE_SECONDS and queues it again under a new task: a job is run only by the
  holder of its current task (`task_id`, checked when it starts, at every batch and,
  under a row lock, when it is written), so the worker given up on can never write it.
- Stopping: SIGTERM lets the worker finish the embedder's batch (32 chunks), put the job
  back in the queue and exit (`release_requested`).

A queued document is in the registry at once, `indexed: false` with no chunks, so lists
show it and an identical upload finds it; answers never cite it until its job has
written it. Deleting it cancels its job.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, close_old_connections, transaction
from django.db.models import Count, Min, Q
from django.db.models.functions import Now
from django.utils import timezone
from django_tasks import TaskContext, task

from ingest.exceptions import IngestError, JobNotFound
from ingest.models import DELETED, REPLACED, IngestJob, JobWorker
from ingest.search.embeddings import get_embedder
from ingest.services import Admitted, admit, cut, document_name
from ingest.sources.extraction import MEDIA_TYPES, detect_kind
from ingest.stores import get_vector_store
from ingest.stores.base import StoredChunks
from registry import audit
from registry.audit import Actor
from registry.backends import get_backend
from registry.exceptions import DATABASE_UNAVAILABLE, RegistryUnavailable
from registry.models import AuditEvent, new_file_id
from registry.records import ALL_WORKSPACES, DocumentRecord, SourceKind, now_seconds
from registry.scopes import EVERYTHING, Scope

logger = logging.getLogger(__name__)

Status = IngestJob.Status
EMBED_BATCH = 64  # chunks embedded between two progress counts

# Set by the worker on SIGTERM: the job in hand goes back to the queue at its next batch.
release_requested = threading.Event()


class JobStopped(Exception):
    """The job is not this task's to run any more: cancelled, or taken back."""


class Released(Exception):
    """The worker is stopping: the job goes back to the queue."""


# -- queueing ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Queued:
    """What an upload in the background came to: the job that will index it (None when
    the workspace already holds these bytes, indexed), the document it is listed as,
    and whether this upload made a new job (False: an identical upload's is returned)."""

    job: IngestJob | None
    document: DocumentRecord
    created: bool


async def ingest_in_background(
    *,
    data: bytes,
    filename: str,
    workspace: str | None,
    content_type: str = "",
    charset: str | None = None,
    source: SourceKind = SourceKind.FILE,
    url: str = "",
    file_id: str | None = None,
    actor: Actor | None = None,
    scope: Scope = EVERYTHING,
) -> Queued:
    """Queue a document for a worker. Everything that needs no parsing is checked now,
    with the synchronous path's errors: workspace, id, size, type, a conflicting id, and
    what the scope may write. `actor`: who asked, whom the audit event names when the
    job stores the document."""
    workspace = scope.writes(workspace)
    admitted = await admit(data=data, workspace=workspace, file_id=file_id, scope=scope)
    kind = detect_kind(data, filename=filename, content_type=content_type)
    same = admitted.same_content
    if same is not None:
        # Its pending job into this workspace: one moving it to another is not these
        # bytes on their way here (nor the caller's to see).
        pending = await _pending_into(same.file_id, workspace).afirst()
        if pending is not None or not same.awaiting_chunks:
            return Queued(pending, same, created=False)
        # Listed, but its job ended without it (failed, and its row could not be
        # removed then): a new job fills it.
        admitted, file_id = Admitted(admitted.sha256, None, same), same.file_id
    return await sync_to_async(_enqueue, thread_sensitive=True)(
        data=data,
        filename=filename,
        workspace=workspace,
        kind=kind,
        content_type=content_type,
        charset=charset,
        source=source,
        url=url,
        file_id=file_id,
        admitted=admitted,
        actor=actor,
    )


def _pending_into(file_id: str, workspace: str) -> Any:
    """The document's pending jobs that store it in this workspace."""
    return IngestJob.objects.filter(file_id=file_id, workspace=workspace).pending()


def _enqueue(
    *,
    data: bytes,
    filename: str,
    workspace: str,
    kind: str,
    content_type: str,
    charset: str | None,
    source: SourceKind,
    url: str,
    file_id: str | None,
    admitted: Admitted,
    actor: Actor | None,
) -> Queued:
    """The document's row (new: a placeholder), the job and its task, in one transaction
    of the database; a placeholder in the JSON registry goes again if the rest fails."""
    backend = get_backend()
    previous = admitted.previous
    now = now_seconds()
    placeholder = DocumentRecord(
        file_id=file_id or new_file_id(),
        filename=document_name(filename, source=source, url=url),
        size_bytes=len(data),
        workspace=workspace,
        num_chunks=0,
        indexed=False,
        created_at=now,
        updated_at=now,
        source=source,
        url=url,
        content_type=MEDIA_TYPES[kind],
        sha256=admitted.sha256,
    )
    made_placeholder = False
    try:
        with transaction.atomic():
            if previous is None:
                document, made_placeholder = backend.create(
                    placeholder, copy=admitted.copy_of is not None
                )
                if not made_placeholder:  # an identical upload a moment ago
                    pending = _pending_into(document.file_id, workspace).first()
                    return Queued(pending, document, created=False)
            else:
                document = previous
                waiting = _pending_into(document.file_id, workspace)
                same = waiting.filter(sha256=admitted.sha256).first()
                if same is not None:  # these bytes, for this id, already on their way
                    return Queued(same, document, created=False)
                # A newer upload for the same id wins over one still waiting.
                IngestJob.objects.cancel_for([document.file_id], detail=REPLACED)
            job = IngestJob.objects.create(
                file_id=document.file_id,
                filename=filename,
                name=placeholder.filename if previous is None else document.filename,
                workspace=workspace,
                # Replacing a document that answers questions (not a placeholder): a
                # failure leaves it as it was, rather than removing it.
                replaces=previous is not None and not previous.awaiting_chunks,
                source=source,
                url=url,
                content_type=content_type,
                charset=charset or "",
                size_bytes=len(data),
                sha256=admitted.sha256,
                data=data,
                requested_by=actor.name[:200] if actor else "",
                requested_via=actor.via if actor else "",
                requested_from=actor.address[:64] if actor else "",
            )
            job.task_id = str(run_ingest_job.enqueue(job.job_id).id)
            job.save(update_fields=["task_id"])
    except BaseException:
        if made_placeholder and not backend.thread_sensitive:  # the file is not rolled back
            backend.delete_many([placeholder.file_id])
        raise
    return Queued(job, document, created=True)


class RetryRefused(Exception):
    """A failed job that cannot be queued again; the message says why."""


def retry_job(job: IngestJob) -> IngestJob:
    """Queue a failed job again from the start, with a new task (the admin's retry). Its
    document is listed again (awaiting the job) if it went; RetryRefused if another
    document of the workspace now holds these bytes."""
    backend = get_backend()
    with transaction.atomic():
        job = IngestJob.objects.select_for_update().get(pk=job.pk)
        if job.status != Status.FAILED or not job.data:
            raise RetryRefused(f"job {job.job_id} is {job.status}, not failed with its upload")
        if not backend.get_many([job.file_id]):
            now = now_seconds()
            document, made = backend.create(
                DocumentRecord(
                    file_id=job.file_id,
                    filename=job.name,
                    size_bytes=job.size_bytes,
                    workspace=job.workspace,
                    created_at=now,
                    updated_at=now,
                    source=job.source,
                    url=job.url,
                    sha256=job.sha256,
                )
            )
            if not made:
                raise RetryRefused(
                    f"document {document.file_id!r} now holds these bytes in workspace "
                    f"{job.workspace!r}"
                )
            job.replaces = False  # a document deleted since is listed anew
        job.status, job.attempts, job.chunks_done = Status.QUEUED, 0, 0
        job.error_status, job.error_detail, job.finished_at = None, "", None
        job.task_id = str(run_ingest_job.enqueue(job.job_id).id)
        job.save()
    return job


# -- running -----------------------------------------------------------------------------
@dataclass(frozen=True)
class InHand:
    job_id: Any
    task_id: str


_in_hand: InHand | None = None  # the job this worker process runs now, for its heartbeat


@task(takes_context=True)
def run_ingest_job(context: TaskContext, job_id: str) -> None:
    """The task a worker runs: the job, if its current task is this one."""
    run_job(job_id, task_id=str(context.task_result.id))


def run_job(job_id: str, *, task_id: str) -> None:
    global _in_hand
    job = _claim(job_id, task_id)
    if job is None:
        logger.info("job %s is not task %s's to run any more", job_id, task_id)
        return
    _in_hand = InHand(job.pk, task_id)
    try:
        _ingest(job, task_id)
    except JobStopped as exc:
        if str(exc):  # still ours, but there is nothing to write to any more
            _mine(job, task_id).finish(Status.CANCELLED, detail=str(exc))
        logger.info("job %s stopped: %s", job.job_id, exc or "cancelled or taken back")
    except Released:
        _requeue(job, task_id, delay=0, detail="", attempts=job.attempts - 1)
        logger.info("job %s went back to the queue: its worker is stopping", job.job_id)
    except (RegistryUnavailable, DatabaseError) as exc:
        logger.warning("job %s: the registry is unavailable: %s", job.job_id, exc)
        _retry_or_fail(job, task_id, _unavailable(exc))
    except IngestError as exc:
        if exc.transient:
            logger.warning("job %s: %s", job.job_id, exc)
            _retry_or_fail(job, task_id, str(exc), status=exc.status)
        else:
            _fail(job, task_id, exc.status, str(exc))
    except Exception:
        logger.exception("job %s failed", job.job_id)
        _fail(job, task_id, 500, "Ingestion failed unexpectedly; the service log has details")
    finally:
        _in_hand = None


def _claim(job_id: str, task_id: str) -> IngestJob | None:
    with transaction.atomic():
        job = IngestJob.objects.select_for_update().filter(pk=job_id).first()
        if job is None or job.task_id != task_id or job.status not in IngestJob.PENDING:
            return None
        job.status, job.attempts = Status.RUNNING, job.attempts + 1
        job.started_at = job.started_at or timezone.now()
        job.heartbeat_at, job.worker_id, job.chunks_done = Now(), worker_id(), 0
        job.save(
            update_fields=[
                "status",
                "attempts",
                "started_at",
                "heartbeat_at",
                "worker_id",
                "chunks_done",
            ]
        )
    return job


def _mine(job: IngestJob, task_id: str) -> Any:
    return IngestJob.objects.filter(pk=job.pk, task_id=task_id, status=Status.RUNNING)


def _ingest(job: IngestJob, task_id: str) -> None:
    pieces = cut(bytes(job.data), job.filename, job.content_type, job.charset or None)
    texts = pieces.searchable()
    if not _mine(job, task_id).update(chunks_total=len(texts)):
        raise JobStopped
    counted = 0

    def progress(phase: str, done: int, total: int) -> None:
        """After each of the embedder's batches: stop if asked to, count every
        EMBED_BATCH chunks (the embedder sorts all the chunks by length first, as
        sentence-transformers' own encode does, so we embed them in one call)."""
        nonlocal counted
        if release_requested.is_set():
            raise Released
        if done - counted < EMBED_BATCH and done < total:
            return
        if not _mine(job, task_id).update(chunks_done=done, heartbeat_at=Now()):
            raise JobStopped
        counted = done

    vectors = get_embedder().embed(texts, progress=progress)
    backend = get_backend()
    name = document_name(job.filename, source=job.source, url=job.url, title=pieces.extracted.title)

    def write_row() -> tuple[DocumentRecord, bool]:
        with transaction.atomic():
            if not _mine(job, task_id).select_for_update().exists():
                raise JobStopped
            current = backend.get_many([job.file_id]).get(job.file_id)
            if current is None:
                raise JobStopped(DELETED)
            record = DocumentRecord(
                file_id=job.file_id,
                filename=name,
                size_bytes=job.size_bytes,
                workspace=job.workspace,
                num_chunks=len(texts),
                indexed=True,
                created_at=current.created_at,
                updated_at=now_seconds(),
                source=job.source,
                url=job.url,
                content_type=pieces.extracted.content_type,
                sha256=job.sha256,
            )
            stored = backend.upsert(record)
            IngestJob.objects.filter(pk=job.pk).finish(Status.SUCCEEDED)
            if job.requested_by:
                asked = Actor(job.requested_by, job.requested_via, job.requested_from)
                action = AuditEvent.Action.REINGEST if job.replaces else AuditEvent.Action.INGEST
                audit.record(action, [stored], asked.in_background())
            IngestJob.objects.filter(pk=job.pk).update(chunks_done=len(texts))
        return stored, True

    chunks = StoredChunks(
        job.file_id, job.workspace, list(range(len(texts))), pieces.texts, vectors, pieces.contexts
    )
    get_vector_store().write_document(chunks, write_row)


def _unavailable(exc: Exception) -> str:
    """What the API would answer (config/api.py): the database's details stay in the log,
    a JSON registry's file and reason are said."""
    if isinstance(exc, DatabaseError) or isinstance(exc.__cause__, DatabaseError):
        return DATABASE_UNAVAILABLE
    return f"Registry unavailable: {exc}"


def _fail(job: IngestJob, task_id: str, status: int, detail: str) -> None:
    """The job failed for good; a placeholder it was to fill goes (nothing is stored)."""
    if not _mine(job, task_id).finish(Status.FAILED, error_status=status, detail=detail):
        return
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


def _retry_or_fail(job: IngestJob, task_id: str, detail: str, *, status: int = 503) -> None:
    if job.attempts >= settings.JOB_MAX_ATTEMPTS:
        _fail(job, task_id, status, f"{detail} (gave up after {job.attempts} attempts)")
        return
    delay = settings.JOB_RETRY_SECONDS * 2 ** (job.attempts - 1)
    _requeue(job, task_id, delay=delay, detail=detail)
    logger.info("job %s queued again in %.0f s (attempt %s)", job.job_id, delay, job.attempts)


def _requeue(
    job: IngestJob, task_id: str, *, delay: float, detail: str, attempts: int | None = None
) -> None:
    with transaction.atomic():
        if not _mine(job, task_id).select_for_update().exists():
            return
        runs = run_ingest_job.using(run_after=timezone.now() + timedelta(seconds=delay))
        fields: dict[str, Any] = {
            "status": Status.QUEUED,
            "task_id": str(runs.enqueue(job.job_id).id),
            "error_detail": detail,
        }
        if attempts is not None:
            fields["attempts"] = attempts
        IngestJob.objects.filter(pk=job.pk).update(**fields)


# -- the workers' supervision ------------------------------------------------------------
_worker_id = f"{socket.gethostname()}:{os.getpid()}"


def worker_id() -> str:
    return _worker_id


def set_worker_id(value: str) -> None:
    global _worker_id
    _worker_id = value


def heartbeat_interval() -> float:
    """Four times a lease, and at least every 15 s: /health counts workers heard of in
    the last minute."""
    return min(float(settings.JOB_LEASE_SECONDS) / 4, 15.0)


# Heartbeats are written and read with the database's clock (Now()), so hosts whose
# clocks disagree never take each other's live jobs.
def _lease_cutoff() -> Any:
    return Now() - timedelta(seconds=settings.JOB_LEASE_SECONDS)


def beat() -> int:
    """One round of a worker's supervision: it is alive, and so is its job in hand; jobs
    whose workers went quiet are taken back. Returns how many were."""
    JobWorker.objects.update_or_create(
        worker_id=worker_id(),
        defaults={"seen_at": Now(), "host": socket.gethostname(), "pid": os.getpid()},
    )
    in_hand = _in_hand
    if in_hand is not None:
        IngestJob.objects.filter(
            pk=in_hand.job_id, task_id=in_hand.task_id, status=Status.RUNNING
        ).update(heartbeat_at=Now())
    return recover_stale_jobs() + recover_orphaned_jobs()


def recover_stale_jobs() -> int:
    """Queue again (under a new task) every running job not heard of for
    JOB_LEASE_SECONDS; one that has used all its attempts fails instead."""
    exhausted: list[tuple[IngestJob, str]] = []
    taken = 0
    with transaction.atomic():
        stale = (
            IngestJob.objects.select_for_update(skip_locked=True)
            .defer("data")
            .filter(status=Status.RUNNING, heartbeat_at__lt=_lease_cutoff())
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
        _fail(job, task_id, 503, f"Its worker stopped answering {job.attempts} times")
    return taken


ORPHANS_CHECKED = 100  # queued jobs looked at per beat, oldest first


def recover_orphaned_jobs() -> int:
    """Queue again the queued jobs whose task no worker will run: one taken by a worker
    that died (or lost the database) before the job was marked running, a lease ago or
    more. The oldest ORPHANS_CHECKED queued jobs are looked at each time."""
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

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
            .exclude(status=TaskResultStatus.RUNNING, started_at__gte=_lease_cutoff())
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


def _lease() -> timedelta:
    return timedelta(seconds=settings.JOB_LEASE_SECONDS)


def _give_up_task(task_id: str, why: str) -> None:
    """django-tasks' record of a task a worker took and never finished: failed."""
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(id=task_id, status=TaskResultStatus.RUNNING).update(
        status=TaskResultStatus.FAILED,
        finished_at=timezone.now(),
        exception_class_path="ingest.jobs.WorkerLost",
        traceback=why,
    )


def _take_back(job: IngestJob, detail: str) -> None:
    """The job queued again under a new task: the old one can never write it."""
    job.status, job.error_detail = Status.QUEUED, detail
    job.task_id = str(run_ingest_job.enqueue(job.job_id).id)
    job.save(update_fields=["status", "error_detail", "task_id"])


def prune() -> tuple[int, int]:
    """Forget what ended JOB_RETENTION_DAYS ago: finished jobs (a failed one's upload
    with it), django-tasks' records of finished tasks, and workers not heard of since.
    Returns the jobs and task records removed."""
    from django_tasks import TaskResultStatus
    from django_tasks_db.models import DBTaskResult

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


PRUNE_EVERY = 3600.0  # seconds, per worker


class Supervisor(threading.Thread):
    """A worker's heartbeat, on a thread (and a database connection) of its own."""

    def __init__(self) -> None:
        super().__init__(name="job-supervisor", daemon=True)
        self.stopped = threading.Event()

    def run(self) -> None:
        pruned_at = -PRUNE_EVERY
        while True:
            try:
                beat()
                if time.monotonic() - pruned_at >= PRUNE_EVERY:
                    jobs, tasks = prune()
                    pruned_at = time.monotonic()
                    if jobs or tasks:
                        logger.info("pruned %s finished job(s), %s task record(s)", jobs, tasks)
            except DatabaseError as exc:
                logger.warning("worker %s: the database is unavailable: %s", worker_id(), exc)
            finally:
                close_old_connections()
            if self.stopped.wait(heartbeat_interval()):
                return

    def stop(self) -> None:
        self.stopped.set()


# -- reading -----------------------------------------------------------------------------
def _jobs() -> Any:
    return IngestJob.objects.defer("data")


async def job_get(job_id: str, *, scope: Scope = EVERYTHING) -> IngestJob:
    """The job of this id (its hex form, or any form of a UUID), or JobNotFound: also
    for a job of a workspace the scope cannot see."""
    try:
        key = uuid.UUID(job_id)
    except ValueError:
        raise JobNotFound(job_id) from None
    job = await _jobs().filter(pk=key).afirst()
    if job is None or not scope.sees(job.workspace):
        raise JobNotFound(job_id)
    return job


async def job_page(
    *, status: str | None, workspace: str | None, limit: int, offset: int, scope: Scope = EVERYTHING
) -> tuple[list[IngestJob], int]:
    """A page of jobs, newest first, and how many match; every workspace's (of the
    scope) for None or `*`; InvalidWorkspace for a name no workspace can have."""
    jobs = _jobs()
    if status is not None:
        jobs = jobs.filter(status=status)
    names = scope.reads(ALL_WORKSPACES if workspace is None else workspace)
    if names is not None:
        jobs = jobs.filter(workspace__in=sorted(names))
    page = [job async for job in jobs.order_by("-created_at", "-id")[offset : offset + limit]]
    return page, await jobs.acount()


async def documents_of(jobs: list[IngestJob], *, scope: Scope) -> dict[str, DocumentRecord]:
    """The document each succeeded job stored, while it exists and the scope sees it (a
    later re-ingest may have moved it to another workspace)."""
    done = [job.file_id for job in jobs if job.status == IngestJob.Status.SUCCEEDED]
    found = await get_backend().aget_many(done) if done else {}
    return {file_id: d for file_id, d in found.items() if scope.sees(d.workspace)}


async def pending_jobs_of(
    file_ids: list[str], *, scope: Scope = EVERYTHING
) -> dict[str, IngestJob]:
    """The pending job of each of these documents that has one the scope sees (not one
    moving a document to a workspace outside it)."""
    if not file_ids:
        return {}
    pending = _jobs().filter(file_id__in=file_ids).pending().order_by("created_at")
    if scope.workspaces is not None:
        pending = pending.filter(workspace__in=sorted(scope.workspaces))
    return {job.file_id: job async for job in pending}


@dataclass(frozen=True)
class QueueState:
    """The background queue as /health reports it."""

    queued: int
    running: int
    oldest_queued_seconds: float | None  # how long the oldest queued job has waited
    workers: int  # workers heard of in the last minute


_queue_cache: tuple[float, QueueState] | None = None
QUEUE_CACHE_SECONDS = 2.0  # a load balancer probing often costs two queries a while


async def queue_state() -> QueueState:
    """The queue's depth, its oldest job's wait and the workers seen lately, read at most
    every QUEUE_CACHE_SECONDS per process."""
    global _queue_cache
    clock = time.monotonic()
    if _queue_cache is not None and clock - _queue_cache[0] < QUEUE_CACHE_SECONDS:
        return _queue_cache[1]
    now = timezone.now()
    counts = await IngestJob.objects.pending().aaggregate(
        queued=Count("pk", filter=Q(status=Status.QUEUED)),
        running=Count("pk", filter=Q(status=Status.RUNNING)),
        oldest=Min("created_at", filter=Q(status=Status.QUEUED)),
    )
    seen = Now() - timedelta(minutes=1)  # heartbeats carry the database's clock
    workers = await JobWorker.objects.filter(seen_at__gte=seen).acount()
    oldest = counts["oldest"]
    state = QueueState(
        queued=counts["queued"],
        running=counts["running"],
        oldest_queued_seconds=round((now - oldest).total_seconds(), 1) if oldest else None,
        workers=workers,
    )
    _queue_cache = (clock, state)
    return state
