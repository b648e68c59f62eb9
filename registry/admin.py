from __future__ import annotations

from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from ingest.services import remove_vectors
from registry.models import ApiKey, Document


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Browse, search and delete. Documents arrive through the API, so no add or edit."""

    list_display = ("filename", "workspace", "num_chunks", "size_bytes", "source", "created_at")
    list_filter = ("workspace", "source", "indexed")
    search_fields = ("filename", "file_id", "url", "sha256")
    date_hierarchy = "created_at"
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) on every page view is slow on big tables

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Document | None = None) -> bool:
        # While the JSON registry is live this table is not the registry: deleting here
        # would remove vectors that the live registry still cites.
        return not settings.USE_JSON_REGISTRY and super().has_delete_permission(request, obj)

    def delete_model(self, request: HttpRequest, obj: Document) -> None:
        self.delete_queryset(request, Document.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Document]) -> None:
        # The bulk "delete selected" action skips delete_model() and post_delete-free
        # paths alike; both come here, and vectors go once the rows' deletion commits.
        with transaction.atomic():
            file_ids = list(queryset.values_list("file_id", flat=True))
            queryset.delete()
            transaction.on_commit(lambda: remove_vectors(file_ids))


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "created_at", "last_used_at", "revoked_at")
    list_filter = ("revoked_at",)
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple:
        return (*self.readonly_fields, "name") if obj else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: object, change: bool) -> None:
        raw_key = None if change else obj.set_new_key()
        super().save_model(request, obj, form, change)
        if raw_key:
            messages.warning(
                request,
                f"API key for {obj.name!r}: {raw_key} — copy it now, it is never shown again.",
            )

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        revoked = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        messages.success(request, f"Revoked {revoked} API key(s).")
