"""The admin of the background jobs (ingest.IngestJob): what each is doing, how it ended,
and a retry for a failed one."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from ingest.models import IngestJob
from registry.admin import ViewOnlyAdmin
from registry.backends import get_backend
from registry.exceptions import FileIdTaken, RegistryUnavailable


@admin.register(IngestJob)
class IngestJobAdmin(ViewOnlyAdmin):
    """Background ingests: what each is doing, how it ended; a failed one can be
    queued again (its upload is kept until it succeeds)."""

    list_display = (
        "name",
        "workspace",
        "status",
        "progress",
        "attempts",
        "created_at",
        "finished_at",
    )
    list_filter = ("status", "workspace")
    search_fields = ("name", "=file_id")
    date_hierarchy = "created_at"
    actions = ["retry"]
    fields = (
        "id",
        "file_id",
        "name",
        "workspace",
        "status",
        "chunks_done",
        "chunks_total",
        "attempts",
        "error_status",
        "error_detail",
        "worker_id",
        "created_at",
        "started_at",
        "finished_at",
        "heartbeat_at",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[IngestJob]:
        return super().get_queryset(request).defer("data")

    @admin.display(description="progress")
    def progress(self, job: IngestJob) -> str:
        return f"{job.chunks_done} / {job.chunks_total}"

    @admin.action(description="Retry the selected failed jobs", permissions=["retry"])
    def retry(self, request: HttpRequest, queryset: QuerySet[IngestJob]) -> None:
        from ingest.jobs.queueing import RetryRefused, retry_job

        failed = list(queryset.filter(status=IngestJob.Status.FAILED).exclude(data=b""))
        queued = 0
        for job in failed:
            try:
                retry_job(job)
            except (RetryRefused, RegistryUnavailable, FileIdTaken) as exc:
                messages.error(request, f"{job.name} was not queued again: {exc}")
            else:
                queued += 1
        skipped = queryset.count() - len(failed)
        messages.success(request, f"Queued {queued} job(s) again.")
        if skipped:
            messages.warning(
                request, f"{skipped} job(s) left alone: only failed jobs can be retried."
            )

    def has_retry_permission(self, request: HttpRequest) -> bool:
        """Retrying lists a document again: as adding one, outside a rollback."""
        return get_backend().staff_may_write and request.user.has_perm("registry.add_document")
