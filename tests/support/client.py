"""The API through Django's test client: the requests most tests make."""

from __future__ import annotations

from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client


def upload(
    api: Client,
    name: str,
    data: bytes | str,
    *,
    workspace: str | None = None,
    content_type: str = "",
    file_id: str | None = None,
) -> Any:
    """POST /ingest/file and return the response, whatever its status."""
    if isinstance(data, str):
        data = data.encode()
    payload: dict[str, Any] = {
        "file": SimpleUploadedFile(name, data, content_type=content_type or None)
    }
    if workspace is not None:
        payload["workspace"] = workspace
    if file_id is not None:
        payload["fileId"] = file_id
    return api.post("/ingest/file", payload)


def ingest(api: Client, name: str, data: bytes | str, workspace: str = "default") -> dict:
    """Upload a new document and return it; fails the test unless it was created."""
    response = upload(api, name, data, workspace=workspace)
    assert response.status_code == 200, response.json()
    assert response.json()["created"] is True, response.json()
    return response.json()


def ask(api: Client, question: str, **extra: Any) -> dict:
    """POST /ask as the old service's clients do (`q`, and `workspace`, `k` if given)."""
    response = api.post("/ask", {"q": question, **extra}, content_type="application/json")
    assert response.status_code == 200, response.json()
    return response.json()
