"""The `chunks` table of VECTOR_STORE=pgvector, as Django knows it.

The table itself is created by migration 0001 only where the database has pgvector
(SQLite and a PostgreSQL without it keep the json store and migrate cleanly); Django's
model state still knows it, so that test flushes and the admin see it. Reads and writes
go through ingest/stores/pgvector.py; its generated `search` column (a tsvector) is not
a model field.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from django.db import models, transaction
from django.db.models.functions import Now
from django.utils import timezone
from pgvector.django import VectorField

from registry.records import (
    CONTENT_TYPE_MAX,
    FILE_ID_MAX,
    FILENAME_MAX,
    SOURCE_MAX,
    WORKSPACE_MAX,
    SourceKind,
)


class Chunk(models.Model):
    document = models.ForeignKey(
        "registry.Document",
        to_field="file_id",
        db_column="file_id",
        on_delete=models.DO_NOTHING,  # the database cascades (ON DELETE CASCADE)
        db_constraint=False,  # made by migration 0001, where the table exists
        related_name="chunks",
    )
    workspace = models.CharField(max_length=WORKSPACE_MAX)
    chunk_index = models.IntegerField()
    context = models.TextField(default="")
    text = models.TextField()
    embedding = VectorField()
    # The pages the chunk spans, 1-based; NULL for a format without pages (0006).
    first_page = models.IntegerField(null=True)
    last_page = models.IntegerField(null=True)
    # The document's name, a field of full-text ranking with the headings (0008).
    title = models.TextField(default="")

    class Meta:
        db_table = "chunks"
        constraints = [
            models.UniqueConstraint(fields=["document", "chunk_index"], name="chunks_doc_index")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}:{self.chunk_index}"


class ChunkStore(models.Model):
    """The one row saying which embedder (and dimension) built the chunks table's
    vectors; created with the table by migration 0001, known here so that grants
    (`grant_app_role`) and test flushes include it."""

    id = models.IntegerField(primary_key=True, default=1)
    embedder = models.TextField()
    dim = models.IntegerField()

    class Meta:
        db_table = "chunk_store"

    def __str__(self) -> str:
        return f"{self.embedder} ({self.dim} dimensions)"


DELETED = "The document was deleted"
REPLACED = "Replaced by a newer upload of this document"


class IngestJobQuerySet(models.QuerySet["IngestJob"]):
    """A job's life, one update each: claimed by a worker, succeeded, finished (failed,
    cancelled), queued again; and which jobs are pending, or held by a task."""

    def pending(self) -> IngestJobQuerySet:
        return self.filter(status__in=IngestJob.PENDING)

    def held_by(self, task_id: str) -> IngestJobQuerySet:
        """These jobs while `task_id` runs them: a job cancelled, or taken back and
        queued under a new task, is no longer its old task's."""
        return self.filter(task_id=task_id, status=IngestJob.Status.RUNNING)

    def claim(self, *, task_id: str, worker_id: str) -> IngestJob | None:
        """The job (of this one-job queryset) marked running by `worker_id`, if
        `task_id` is its current task and it is pending; else None. Under a row lock, so
        of two workers given the same task one runs it."""
        with transaction.atomic():
            job = self.select_for_update().first()
            if job is None or job.task_id != task_id or job.status not in IngestJob.PENDING:
                return None
            job.status, job.attempts = IngestJob.Status.RUNNING, job.attempts + 1
            job.started_at = job.started_at or timezone.now()
            job.heartbeat_at, job.worker_id, job.chunks_done = Now(), worker_id, 0
            job.pages_done = 0  # each attempt reads the pages again
            job.save(
                update_fields=[
                    "status",
                    "attempts",
                    "started_at",
                    "heartbeat_at",
                    "worker_id",
                    "chunks_done",
                    "pages_done",
                ]
            )
        return job

    def succeed(self, *, chunks: int) -> int:
        """These jobs stored their documents, of `chunks` chunks."""
        return self.finish(IngestJob.Status.SUCCEEDED, chunks_done=chunks)

    def requeue(self, *, task_id: str, detail: str, attempts: int | None = None) -> int:
        """Queue these jobs again under the new task `task_id` (their old task can never
        write them), saying why; `attempts` resets the count (a worker that let go)."""
        fields: dict[str, object] = {
            "status": IngestJob.Status.QUEUED,
            "task_id": task_id,
            "error_detail": detail,
        }
        if attempts is not None:
            fields["attempts"] = attempts
        return self.update(**fields)

    def finish(
        self, status: str, *, error_status: int | None = None, detail: str = "", **more: object
    ) -> int:
        """End these jobs with `status`; their uploads go unless they failed (a retry
        needs it). Returns how many ended."""
        fields: dict[str, object] = {
            "status": status,
            "finished_at": timezone.now(),
            "error_status": error_status,
            "error_detail": detail,
            **more,
        }
        if status != IngestJob.Status.FAILED:
            fields["data"] = b""
        return self.update(**fields)

    def cancel_for(self, file_ids: Collection[str], *, detail: str = DELETED) -> int:
        """Cancel the pending jobs of these documents (deleted, or replaced by a newer
        upload: `detail` says which)."""
        pending = self.filter(file_id__in=list(file_ids)).pending()
        return pending.finish(IngestJob.Status.CANCELLED, detail=detail)


class IngestJob(models.Model):
    """A document being ingested in the background (ingest/jobs/): its upload, until
    the job succeeded or was cancelled; where it has got; how it ended.

    `task_id` names the django-tasks result that may run the job now. A worker runs the
    job only while it holds that task (a job taken back from a lost worker, or retried,
    gets a new one), so a worker that was given up on can never write it too.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    PENDING = (Status.QUEUED, Status.RUNNING)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    file_id = models.CharField(max_length=FILE_ID_MAX, db_index=True)
    filename = models.CharField(max_length=FILENAME_MAX, blank=True)  # as sent: its type
    name = models.CharField(max_length=FILENAME_MAX)  # what the document is listed as
    workspace = models.CharField(max_length=WORKSPACE_MAX)
    # Whether the job replaces an existing document (a client-chosen fileId), which
    # keeps answering from its old chunks until then.
    replaces = models.BooleanField(default=False)
    source = models.CharField(max_length=SOURCE_MAX, default=SourceKind.FILE)
    url = models.TextField(blank=True, default="")
    content_type = models.CharField(max_length=CONTENT_TYPE_MAX, blank=True, default="")
    charset = models.CharField(max_length=64, blank=True, default="")
    size_bytes = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    data = models.BinaryField(default=b"", editable=False)  # the upload; b"" once done
    chunks_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    # Pages read so far of a paged document being read (OCR is slow: seen page by page).
    pages_done = models.PositiveIntegerField(default=0)
    pages_total = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    error_status = models.PositiveSmallIntegerField(null=True, blank=True)
    error_detail = models.TextField(blank=True, default="")
    task_id = models.CharField(max_length=64, blank=True, default="", db_index=True)
    worker_id = models.CharField(max_length=64, blank=True, default="")
    # Who asked for it (registry.audit.Actor), for the audit event its success records.
    requested_by = models.CharField(max_length=200, blank=True, default="")
    requested_via = models.CharField(max_length=32, blank=True, default="")
    requested_from = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    objects = IngestJobQuerySet.as_manager()

    class Meta:
        db_table = "ingest_jobs"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["status", "created_at"], name="ingest_jobs_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def job_id(self) -> str:
        return self.id.hex


class JobWorker(models.Model):
    """A `db_worker` process, as last heard of: /health counts those seen lately."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    host = models.CharField(max_length=255, default="")
    pid = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        db_table = "ingest_workers"

    def __str__(self) -> str:
        return self.worker_id
