"""The service under gunicorn, over HTTP as its clients reach it."""

from __future__ import annotations

import dataclasses
import http.client
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson


def multipart(
    filename: str, data: bytes, fields: dict[str, str] | None = None
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with one file and these form fields, and its header."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (fields or {}).items()
    ]
    head = "".join(parts) + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@dataclass(frozen=True)
class LiveService:
    """The service under gunicorn with uvicorn workers, as production runs it."""

    base_url: str
    api_key: str
    data_dir: Path
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # what it runs with

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        with_key: bool = True,
    ) -> tuple[int, dict[str, str], Any]:
        """One request on a connection of its own; the status, the headers (names in
        lower case) and the decoded JSON."""
        parts = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        sent = {"X-API-Key": self.api_key} if with_key else {}
        try:
            connection.request(method, path, body=body, headers={**sent, **(headers or {})})
            response = connection.getresponse()
            received = {name.lower(): value for name, value in response.getheaders()}
            return response.status, received, orjson.loads(response.read() or b"{}")
        finally:
            connection.close()

    def call(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        with_key: bool = True,
    ) -> tuple[int, Any]:
        """One request on a connection of its own; the status and the decoded JSON."""
        status, _, answer = self.request(method, path, body, headers, with_key=with_key)
        return status, answer

    def post_json(self, path: str, payload: Any, *, with_key: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        return self.call("POST", path, orjson.dumps(payload), headers, with_key=with_key)

    def post_file(
        self,
        filename: str,
        data: bytes,
        fields: dict[str, str] | None = None,
        *,
        with_key: bool = True,
    ) -> tuple[int, Any]:
        body, headers = multipart(filename, data, fields)
        return self.call("POST", "/ingest/file", body, headers, with_key=with_key)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def without_queue(answer: Any) -> Any:
    """A /health body (or a (status, body) pair) without its `queue`, which says how many
    background jobs wait: what the old service's clients compared."""
    if isinstance(answer, tuple):
        return answer[0], without_queue(answer[1])
    return {key: value for key, value in answer.items() if key != "queue"}
