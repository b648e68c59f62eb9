"""The admin's forms for adding a document and asking a question. Their fields carry the
API's limits; what only the services can judge (a file's type, a URL's address, a
workspace's name) comes back from them as form errors."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile

from ingest.schemas import QUESTION_MAX, TOP_K_DEFAULT, TOP_K_MAX
from registry.records import ALL_WORKSPACES, DEFAULT_WORKSPACE, URL_MAX, WORKSPACE_MAX


class AddDocumentForm(forms.Form):
    file = forms.FileField(
        required=False,
        widget=forms.FileInput,  # not ClearableFileInput: there is nothing to clear
        help_text="A document of any accepted format (text, Markdown, HTML, PDF, Word, PowerPoint, "
        "Excel, CSV, OpenDocument, EPUB, RTF, e-mail, or a scan), as POST /ingest/file takes.",
    )
    url = forms.CharField(
        required=False,
        max_length=URL_MAX,
        label="or URL",
        widget=forms.URLInput(attrs={"size": 80, "placeholder": "https://…"}),
        help_text="A public http(s) address to fetch, as POST /ingest/url takes.",
    )
    workspace = forms.CharField(initial=DEFAULT_WORKSPACE, max_length=WORKSPACE_MAX)

    def clean_file(self) -> UploadedFile | None:
        upload = self.cleaned_data.get("file")
        if upload and (upload.size or 0) > settings.MAX_UPLOAD_BYTES:
            raise ValidationError(f"The file is over the {settings.MAX_UPLOAD_MB} MB upload limit")
        return upload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        has_file = bool(cleaned.get("file"))
        has_url = bool(cleaned.get("url"))
        if has_file and has_url:
            raise ValidationError("Upload a file or give a URL, not both.")
        if not has_file and not has_url and not self.errors:
            raise ValidationError("Choose a file to upload, or give a URL to fetch.")
        return cleaned


class AskForm(forms.Form):
    q = forms.CharField(
        label="Question",
        max_length=QUESTION_MAX,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80, "autofocus": True}),
    )
    workspace = forms.ChoiceField()
    k = forms.IntegerField(
        label="Chunks",
        min_value=1,
        max_value=TOP_K_MAX,
        initial=TOP_K_DEFAULT,
        help_text="How many of the best chunks the answer may draw on, as /ask's k.",
    )

    def __init__(self, *args: Any, workspaces: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["workspace"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [(ALL_WORKSPACES, "All workspaces"), *((w, w) for w in workspaces)]
        field.initial = DEFAULT_WORKSPACE if DEFAULT_WORKSPACE in workspaces else ALL_WORKSPACES
