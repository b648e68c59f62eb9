"""Queueing: an upload checked as far as it can be without parsing, listed at once as a
document awaiting its job, and queued for a worker; a failed job queued again."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.db import transaction

from ingest.jobs.runner import job_upload, new_task
from ingest.models import REPLACED, IngestJob, IngestJobQuerySet
from ingest.preparing import Admitted, Upload, admit, document_record
from ingest.sources.detection import MEDIA_TYPES, detect_kind
from registry.audit import Actor
from registry.backends import get_backend
from registry.models import new_file_id
from registry.records import DocumentRecord
from registry.scopes import EVERYTHING, Scope

Status = IngestJob.Status


@dataclass(frozen=True)
class Queued:
    """What an upload in the background came to: the job that will index it (None when
    the workspace already holds these bytes, indexed), the document it is listed as,
    and whether this upload made a new job (False: an identical upload's is returned)."""

    job: IngestJob | None
    document: DocumentRecord
    created: bool


async def ingest_in_background(
    upload: Upload, *, actor: Actor, scope: Scope = EVERYTHING
) -> Queued:
    """Queue a document for a worker. Everything that needs no parsing is checked now,
    with the synchronous path's errors: workspace, id, size, type, a conflicting id, and
    what the scope may write. `actor`: who asked, whom the audit event names when the
    job stores the document."""
    admitted = await admit(upload, scope=scope)
    kind = detect_kind(upload.data, filename=upload.filename, content_type=upload.content_type)
    same = admitted.same_content
    if same is not None:
        # Its pending job into this workspace: one moving it to another is not these
        # bytes on their way here (nor the caller's to see).
        pending = await _pending_into(same.file_id, same.workspace).afirst()
        if pending is not None or not same.awaiting_chunks:
            return Queued(pending, same, created=False)
        # Listed, but its job ended without it (failed, and its row could not be
        # removed then): a new job fills it.
        upload = dataclasses.replace(admitted.upload, file_id=same.file_id)
        admitted = Admitted(upload, admitted.sha256, None, same)
    enqueue = sync_to_async(_enqueue, thread_sensitive=True)
    return await enqueue(admitted, content_type=MEDIA_TYPES[kind], actor=actor)


def _pending_into(file_id: str, workspace: str | None) -> IngestJobQuerySet:
    """The document's pending jobs that store it in this workspace."""
    return IngestJob.objects.filter(file_id=file_id, workspace=workspace).pending()


def _enqueue(admitted: Admitted, *, content_type: str, actor: Actor) -> Queued:
    """The document's row (new: a placeholder), the job and its task, in one transaction
    of the database; a placeholder in the JSON registry goes again if the rest fails."""
    upload, previous = admitted.upload, admitted.previous
    backend = get_backend()
    placeholder = document_record(
        upload,
        file_id=upload.file_id or new_file_id(),
        sha256=admitted.sha256,
        content_type=content_type,
    )
    made_placeholder = False
    try:
        with transaction.atomic():
            if previous is None:
                document, made_placeholder = backend.create(
                    placeholder, copy=admitted.copy_of is not None
                )
                if not made_placeholder:  # an identical upload a moment ago
                    pending = _pending_into(document.file_id, upload.workspace).first()
                    return Queued(pending, document, created=False)
            else:
                document = previous
                waiting = _pending_into(document.file_id, upload.workspace)
                same = waiting.filter(sha256=admitted.sha256).first()
                if same is not None:  # these bytes, for this id, already on their way
                    return Queued(same, document, created=False)
                # A newer upload for the same id wins over one still waiting.
                IngestJob.objects.cancel_for([document.file_id], detail=REPLACED)
            job = IngestJob.objects.create(
                file_id=document.file_id,
                filename=upload.filename,
                name=document.filename,
                workspace=upload.settled_workspace,
                # Replacing a document that answers questions (not a placeholder): a
                # failure leaves it as it was, rather than removing it.
                replaces=previous is not None and not previous.awaiting_chunks,
                source=upload.source,
                url=upload.url,
                content_type=upload.content_type,
                charset=upload.charset or "",
                size_bytes=len(upload.data),
                sha256=admitted.sha256,
                data=upload.data,
                requested_by=actor.name[:200],
                requested_via=actor.via,
                requested_from=actor.address[:64],
            )
            job.task_id = new_task(job)
            job.save(update_fields=["task_id"])
    except BaseException:
        if made_placeholder and not backend.in_database:  # the file is not rolled back
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
            upload = job_upload(job)
            kind = detect_kind(
                upload.data, filename=upload.filename, content_type=upload.content_type
            )
            placeholder = document_record(
                upload, file_id=job.file_id, sha256=job.sha256, content_type=MEDIA_TYPES[kind]
            )
            document, made = backend.create(dataclasses.replace(placeholder, filename=job.name))
            if not made:
                raise RetryRefused(
                    f"document {document.file_id!r} now holds these bytes in workspace "
                    f"{job.workspace!r}"
                )
            job.replaces = False  # a document deleted since is listed anew
        job.status, job.attempts, job.chunks_done = Status.QUEUED, 0, 0
        job.error_status, job.error_detail, job.finished_at = None, "", None
        job.task_id = new_task(job)
        job.save()
    return job
