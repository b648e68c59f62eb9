"""The jobs as the API reads them, limited to what the caller's scope may see."""

from __future__ import annotations

import uuid

from ingest.exceptions import JobNotFound
from ingest.models import IngestJob, IngestJobQuerySet
from registry.backends import get_backend
from registry.records import ALL_WORKSPACES, DocumentRecord
from registry.scopes import EVERYTHING, Scope


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
