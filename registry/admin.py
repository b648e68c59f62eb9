from __future__ import annotations

import re
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from registry.auth import forget_api_keys
from registry.models import ApiKey, AuditEvent


class ApiKeyForm(forms.ModelForm):
    """A key's name, access and workspaces, the workspaces typed as one line."""

    workspaces = forms.CharField(
        required=False,
        help_text="When not every workspace: their names, separated by commas or spaces.",
        widget=forms.TextInput(attrs={"size": 60, "placeholder": "eng, docs"}),
    )

    class Meta:
        model = ApiKey
        fields = ("name", "access", "all_workspaces", "workspaces")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is not None:
            self.initial["workspaces"] = ", ".join(self.instance.workspaces)

    def clean_workspaces(self) -> list[str]:
        return [name for name in re.split(r"[\s,]+", self.cleaned_data["workspaces"]) if name]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys, their access and workspaces (changed here take effect in this process at
    once, in the others within API_KEY_CACHE_SECONDS), and their revocation."""

    form = ApiKeyForm
    list_display = ("name", "prefix", "access", "scope", "created_at", "last_used_at", "revoked_at")
    list_filter = ("access", "all_workspaces", "revoked_at")
    search_fields = ("name", "prefix")
    readonly_fields = ("prefix", "created_at", "last_used_at", "revoked_at")
    actions = ("revoke",)

    @admin.display(description="workspaces")
    def scope(self, obj: ApiKey) -> str:
        return "every workspace" if obj.all_workspaces else ", ".join(obj.workspaces)

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
        forget_api_keys()  # update() sends no post_save: this process forgets them now
        messages.success(request, f"Revoked {revoked} API key(s).")


class ViewOnlyAdmin(admin.ModelAdmin):
    """A list and pages staff read, and nobody adds, changes or deletes through."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(ViewOnlyAdmin):
    """The audit trail, read-only: who ingested, re-ingested or deleted which document,
    when and from where. A document's own events: ?file_id=<its id> (its page links
    there)."""

    list_display = ("at", "action", "filename", "workspace", "actor", "via", "address", "file_id")
    list_filter = ("action", "via", "workspace")
    search_fields = ("=file_id", "filename", "actor")
    date_hierarchy = "at"
    readonly_fields = list_display
