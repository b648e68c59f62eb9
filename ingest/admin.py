"""Staff browse, search and delete documents; a delete removes the vectors too."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html

from registry.backends import table_is_live
from registry.models import Document


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Browse, search and delete. Documents arrive through the API, so no add or edit."""

    list_display = (
        "filename",
        "workspace",
        "num_chunks",
        "size",
        "content_type",
        "origin",
        "created_at",
    )
    list_filter = ("workspace", "source", "indexed")
    search_fields = ("filename", "file_id", "url", "sha256")
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) on every page view is slow on big tables

    @admin.display(description="size", ordering="size_bytes")
    def size(self, obj: Document) -> str:
        return filesizeformat(obj.size_bytes)

    @admin.display(description="source", ordering="source")
    def origin(self, obj: Document) -> str:
        """An upload says so; a URL document links to its source (http(s) only)."""
        if obj.url and obj.url.lower().startswith(("http://", "https://")):
            return format_html('<a href="{}" rel="noopener noreferrer">{}</a>', obj.url, obj.url)
        return obj.get_source_display()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        # While the JSON registry is live this table is not the registry: deleting here
        # would remove vectors that the live registry still cites.
        return table_is_live() and super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        _delete([obj.file_id])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        # The bulk "delete selected" action comes here rather than to delete_model().
        _delete(list(queryset.values_list("file_id", flat=True)))


def _delete(file_ids: list[str]) -> None:
    """Delete through the service, which removes the vectors too. Imported here, not at
    the top: every process imports this module at start-up (admin autodiscovery), and
    the ingestion stack (scipy, aiohttp, pypdf, …) took 0.6 s of each command's start."""
    from ingest.services import document_delete_many

    document_delete_many(file_ids=file_ids)
