"""The registry's one value type, shared by both backends, the services and the API."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

DEFAULT_WORKSPACE = "default"
WORKSPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
FILE_ID_MAX = 64
FILENAME_MAX = 512


def now_seconds() -> datetime:
    """The current UTC time at whole seconds: the precision of the legacy registry."""
    return datetime.now(UTC).replace(microsecond=0)


@dataclass(frozen=True, slots=True)
class DocumentRecord:
    file_id: str
    filename: str
    size_bytes: int = 0
    workspace: str = DEFAULT_WORKSPACE
    num_chunks: int = 0
    indexed: bool = False
    created_at: datetime = field(default_factory=now_seconds)
    updated_at: datetime = field(default_factory=now_seconds)
    source: str = "file"
    url: str = ""
    content_type: str = ""
    sha256: str = ""


def is_valid_workspace(value: str) -> bool:
    return bool(WORKSPACE_RE.match(value))
