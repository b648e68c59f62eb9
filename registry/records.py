"""The registry's one value type and its limits, shared by both backends, the model, the
legacy format, the services and the API."""

from __future__ import annotations

import dataclasses
import operator
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.db import models

from registry.exceptions import InvalidFileId, InvalidWorkspace

DEFAULT_WORKSPACE = "default"
WORKSPACE_MAX = 64
FILE_ID_MAX = 64
FILENAME_MAX = 512
URL_MAX = 2048
CONTENT_TYPE_MAX = 100
SHA256_LENGTH = 64
WORKSPACE_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{WORKSPACE_MAX - 1}}}$")
# What a client may choose as a document's id: the UUID forms and `legacy-42` style ids
# of the old registry fit, and nothing that breaks a URL path or a log line.
FILE_ID_RE = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.:-]{{0,{FILE_ID_MAX - 1}}}$")


class SourceKind(models.TextChoices):
    """Where a document came from."""

    FILE = "file", "File upload"
    URL = "url", "URL"


SOURCE_MAX = 8  # the column's width: room for a longer source name without a migration


def now_seconds() -> datetime:
    """The current UTC time at whole seconds: the precision of the legacy registry."""
    return datetime.now(UTC).replace(microsecond=0)


def epoch_seconds(value: datetime) -> int | float:
    """A timestamp as the old service wrote it: whole epoch seconds, fractional only when
    the instant has a fraction (imported legacy records may)."""
    seconds = value.timestamp()
    return int(seconds) if value.microsecond == 0 else seconds


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
    source: str = SourceKind.FILE
    url: str = ""
    content_type: str = ""
    sha256: str = ""

    @property
    def awaiting_chunks(self) -> bool:
        """A document listed before its chunks are (a background ingest's, until it
        succeeds): not indexed, and no chunks counted. Answers never cite it."""
        return not self.indexed and self.num_chunks == 0

    def row(self) -> tuple[Any, ...]:
        """The values in RECORD_FIELDS order: a row as COPY writes it and a query reads it."""
        row: tuple[Any, ...] = _row_of(self)
        return row

    def fields(self) -> dict[str, Any]:
        """The fields by name, as they are: `dataclasses.asdict` deep-copies every value,
        which was a third of a worker's time on a page of 50 documents (py-spy)."""
        return dict(zip(RECORD_FIELDS, _row_of(self), strict=True))


# Every column of a document but the surrogate id, in DocumentRecord's field order: the
# shape compared, copied and written by the import and read back by the export.
RECORD_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(DocumentRecord))
_row_of = operator.attrgetter(*RECORD_FIELDS)  # in C: an import makes 100,000 rows
# The same but the natural key: what an update may change.
UPDATABLE_FIELDS = tuple(name for name in RECORD_FIELDS if name != "file_id")


def is_valid_workspace(value: str) -> bool:
    return bool(WORKSPACE_RE.match(value))


def check_file_id(file_id: str) -> str:
    """A client-chosen document id, or InvalidFileId saying what an id may hold."""
    if not FILE_ID_RE.match(file_id):
        raise InvalidFileId(file_id, longest=FILE_ID_MAX)
    return file_id


ALL_WORKSPACES = "*"

# The workspaces a list, a count or a search covers: one, a set (a key's scope), or None
# for every workspace.
WorkspaceFilter = str | frozenset[str] | None


def workspace_names(workspace: WorkspaceFilter) -> frozenset[str] | None:
    """A filter as a set of names (None: every workspace)."""
    if workspace is None or isinstance(workspace, frozenset):
        return workspace
    return frozenset((workspace,))


def check_workspace(workspace: str) -> str:
    """The workspace name, or InvalidWorkspace saying what a name may hold."""
    if not is_valid_workspace(workspace):
        raise InvalidWorkspace(workspace, longest=WORKSPACE_MAX)
    return workspace
