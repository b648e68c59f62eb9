"""The jobs as the API reads them, limited to what the caller's scope may see."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, Subquery

from ingest.exceptions import JobNotFound
from ingest.models import IngestJob, IngestJobQuerySet
from registry.backends import get_backend
from registry.backends.base import Columns, Joined
from registry.records import ALL_WORKSPACES, DocumentRecord
from registry.scopes import EVERYTHING, Scope
from registry.selectors import DocumentPage, document_get_joined, document_list_joined


@dataclass(frozen=True)
class PendingJob:
    """The background job indexing a document, while it is queued or running."""

    job_id: str
    status: str


def _jobs() -> IngestJobQuerySet:
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


def _pending(scope: Scope) -> IngestJobQuerySet:
    """Pending jobs the scope sees (not one moving a document to a workspace outside it)."""
    pending = IngestJob.objects.pending()
    if scope.workspaces is not None:
        pending = pending.filter(workspace__in=sorted(scope.workspaces))
    return pending


async def pending_jobs_of(
    file_ids: list[str], *, scope: Scope = EVERYTHING
) -> dict[str, PendingJob]:
    """The pending job of each of these documents that has one the scope sees (the newest,
    should a document have two)."""
    if not file_ids:
        return {}
    pending = _pending(scope).filter(file_id__in=file_ids).order_by("created_at")
    rows = pending.values_list("file_id", "id", "status")
    return {file_id: PendingJob(key.hex, status) async for file_id, key, status in rows}


@functools.lru_cache(maxsize=256)
def _pending_columns(workspaces: frozenset[str] | None) -> Columns:
    """A document's pending job as two columns read with it (the registry on the table
    joins them into its one query); one object per scope, so compiled once."""
    newest = _pending(Scope(workspaces=workspaces)).filter(file_id=OuterRef("file_id"))
    newest = newest.order_by("-created_at")
    return Columns(
        {
            "pending_job_id": Subquery(newest.values("id")[:1]),
            "pending_job_status": Subquery(newest.values("status")[:1]),
        }
    )


def _joined_job(joined: Joined) -> PendingJob | None:
    key: Any = joined["pending_job_id"]
    if key is None:
        return None
    return PendingJob(
        key.hex if isinstance(key, uuid.UUID) else uuid.UUID(key).hex, joined["pending_job_status"]
    )


async def document_with_job(
    *, file_id: str, scope: Scope
) -> tuple[DocumentRecord, PendingJob | None]:
    """The document (or DocumentNotFound, as registry.selectors.document_get) and its
    pending job, in one query where the registry is the table."""
    columns = _pending_columns(scope.workspaces)
    record, joined = await document_get_joined(file_id=file_id, scope=scope, columns=columns)
    if joined is None:  # the JSON registry: the jobs are read apart
        return record, (await pending_jobs_of([file_id], scope=scope)).get(file_id)
    return record, _joined_job(joined)


async def documents_with_jobs(
    *, workspace: str | None, scope: Scope, limit: int, offset: int
) -> tuple[DocumentPage, list[PendingJob | None]]:
    """A page of documents (registry.selectors.document_list) and each one's pending job,
    in one query where the registry is the table."""
    columns = _pending_columns(scope.workspaces)
    page, joined = await document_list_joined(
        workspace=workspace, scope=scope, limit=limit, offset=offset, columns=columns
    )
    if joined is None:
        pending = await pending_jobs_of([record.file_id for record in page.items], scope=scope)
        return page, [pending.get(record.file_id) for record in page.items]
    return page, [_joined_job(values) for values in joined]
