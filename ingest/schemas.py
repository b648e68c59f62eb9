"""The API's request and response shapes, in the old service's camelCase.

Python names stay snake_case; the alias generator gives every field its camelCase JSON
name, in requests, responses and the OpenAPI schema alike (routers set `by_alias`).
Requests also accept the snake_case names and, where the old service used other words
(`q`, `k`, `fileUrl`), this service's own words as aliases.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from ninja import Schema
from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)
from pydantic.alias_generators import to_camel

from registry.records import (
    FILE_ID_MAX,
    FILENAME_MAX,
    URL_MAX,
    WORKSPACE_MAX,
    epoch_seconds,
)

QUESTION_MAX = 2000
TOP_K_DEFAULT = 15  # the old service's default
TOP_K_MAX = 50
LIST_LIMIT_MAX = 500
OFFSET_MAX = 2**63 - 1  # the largest OFFSET PostgreSQL and SQLite take
# PostgreSQL stores no NUL in text: an id holding one names no document.
NO_NUL = r"^[^\x00]*$"


def _epoch(value: object) -> object:
    return epoch_seconds(value) if isinstance(value, datetime) else value


def _none_when_empty(value: object) -> object:
    """The old service's reading: surrounding spaces dropped, nothing is no workspace
    named (the default one, or for a scoped key its own: registry/scopes.py)."""
    if isinstance(value, str):
        value = value.strip()
    return None if value == "" else value


def _id_as_text(value: object) -> object:
    """An id sent as a number is its decimal string, as the old service read it."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def _top_k(value: object) -> object:
    """The old service's `int(k or 15)`: a missing, null, empty or zero k is the default,
    and a fractional one is cut to a whole number."""
    if value is None or value in ("", "0", 0):
        return TOP_K_DEFAULT
    if isinstance(value, float) and not isinstance(value, bool):
        return int(value)
    return value


# Timestamps as the old service and registry.json write them: epoch seconds.
EpochSeconds = Annotated[int | float, BeforeValidator(_epoch)]
# An empty or missing workspace is None: the default one, as in the old service, for a
# key of every workspace; a key limited to some reads all of its own and writes to its
# one (registry/scopes.py).
Workspace = Annotated[
    Annotated[str, StringConstraints(max_length=WORKSPACE_MAX)] | None,
    BeforeValidator(_none_when_empty),
]
_WHEN_NONE = "Missing or empty: `default`; for a key limited to some workspaces, "


# A client-chosen id to ingest into.
ReingestId = Annotated[
    Annotated[str, StringConstraints(max_length=FILE_ID_MAX)] | None,
    BeforeValidator(_id_as_text),
    Field(
        description="Re-ingest into this id: an existing document's chunks and row are "
        "replaced (createdAt kept, updatedAt now); a new id is created as given.",
    ),
]


class CamelSchema(Schema):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class CamelOut(BaseModel):
    """A response: built from our own dicts and objects by their Python names, written in
    camelCase. A plain pydantic model, not a ninja Schema: ninja's Schema runs a Python
    validator around every object it validates (to read Django models through its
    DjangoGetter), which was a third of a worker's time on a page of 50 documents
    (py-spy under bench/bench_http.py, 2026-12-07); these are never Django models, and
    pydantic reads them in its own code. Not looking each field up by its alias first
    saves a failed lookup per field."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        from_attributes=True,
        validate_by_name=True,
        validate_by_alias=False,
    )


# Ingest in the background: answer 202 with the job at once (also `?async=true`, or the
# header `Prefer: respond-async`).
InBackground = Annotated[
    bool,
    Field(
        alias="async",
        description="Answer 202 Accepted at once with the job that indexes the document "
        "(GET /jobs/{jobId}) instead of waiting for it. Also `?async=true`, or the header "
        "`Prefer: respond-async`.",
    ),
]


INGEST_WORKSPACE = Field(
    None,
    description="The workspace to add the document to. "
    + _WHEN_NONE
    + "`default` if it has it, else its one workspace (a key of several must name one).",
)


class UploadForm(CamelSchema):
    """The form fields beside the uploaded file."""

    workspace: Workspace = INGEST_WORKSPACE
    file_id: ReingestId = None
    in_background: InBackground = False


class UrlIn(CamelSchema):
    file_url: str = Field(
        min_length=1,
        max_length=URL_MAX,
        validation_alias=AliasChoices("fileUrl", "file_url", "url"),
        description="The http(s) URL to fetch.",
    )
    filename: str | None = Field(
        None,
        max_length=FILENAME_MAX,
        description="The document's name; by default the URL's last path segment, or "
        "the page's <title>.",
    )
    workspace: Workspace = INGEST_WORKSPACE
    file_id: ReingestId = None
    in_background: InBackground = False


class AskIn(CamelSchema):
    q: str = Field(
        min_length=1,
        max_length=QUESTION_MAX,
        validation_alias=AliasChoices("q", "question"),
        description="The question.",
    )
    workspace: Workspace = Field(
        None,
        description="The workspace to search; `*` searches all of them (all the key's). "
        + _WHEN_NONE
        + "all of its own.",
    )
    k: Annotated[int, BeforeValidator(_top_k)] = Field(
        TOP_K_DEFAULT,
        ge=1,
        le=TOP_K_MAX,
        validation_alias=AliasChoices("k", "topK", "top_k"),
        description="How many of the best chunks the answer may draw on (null or 0: 15).",
    )
    stream: bool = Field(
        False,
        description="Answer with server-sent events (as does `Accept: text/event-stream`): "
        "`sources` first, then `token` events with the answer's text as it is written, then "
        "`done` with the whole answer and the sources it cites, or `error` with a `detail`.",
    )


class PageSpanOut(CamelSchema):
    first_page: int = Field(description="The first page the passage is on, from 1.")
    last_page: int = Field(description="The last page it is on (the first, mostly).")


def _page_span(value: object) -> object:
    """A source's (first, last) pages as their object."""
    if isinstance(value, tuple | list):
        return {"first_page": value[0], "last_page": value[1]}
    return value


class SourceOut(CamelSchema):
    file_id: str
    filename: str
    # The old service's chunkId is the chunk's number, which the store calls chunk_index.
    chunk_id: int = Field(
        validation_alias="chunk_index",
        serialization_alias="chunkId",
        description="The chunk's number within its document, from 0.",
    )
    number: int = Field(description="The source's number: the answer marks its sentences [n].")
    context: str = Field(description="The headings the chunk sits under, outermost first.")
    score: float = Field(description="Its fused rank score (reciprocal rank fusion).")
    text: str
    page_span: Annotated[PageSpanOut | None, BeforeValidator(_page_span)] = Field(
        None,
        validation_alias="pages",
        serialization_alias="pageSpan",
        description="Where in the document the passage is: the pages it spans, counted from "
        "1 as a PDF viewer counts them (not the printed numbers), for PDFs, scans and "
        "slides; null for a format without pages (a spreadsheet's sheet and rows are in "
        "`context`).",
    )


class AskOut(CamelSchema):
    answer: str
    sources: list[SourceOut]


JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobRefOut(CamelOut):
    job_id: str
    status: JobStatus


class DocumentOut(CamelOut):
    file_id: str
    filename: str
    workspace: str
    num_chunks: int
    size_bytes: int
    indexed: bool
    source: str
    url: str
    content_type: str
    sha256: str
    created_at: EpochSeconds
    updated_at: EpochSeconds
    job: JobRefOut | None = Field(
        None, description="The background job indexing the document, while it is pending."
    )


class IngestOut(DocumentOut):
    """The document, with the old service's `ok` and `chunks` beside it."""

    ok: bool = True
    chunks: int = Field(description="The same as numChunks (the old service's name).")
    created: bool = Field(
        description="False when the same content was already in the workspace (that "
        "document is returned) or an existing fileId was re-ingested."
    )
    copy_of: str | None = Field(
        None,
        description="A new fileId was asked for content another document of the workspace "
        "holds: this is that document's id, and the new one is a copy of it.",
    )


class JobProgressOut(CamelOut):
    chunks_done: int = Field(description="Chunks embedded so far.")
    chunks_total: int = Field(description="The document's chunks; 0 until it has been read.")
    pages_done: int = Field(
        description="Pages read so far, for a PDF or an image (scans are read by OCR, "
        "seconds a page); 0 for a format without pages."
    )
    pages_total: int = Field(
        description="The document's pages; 0 until its reader has counted them, and for a "
        "format without pages."
    )


class JobErrorOut(Schema):
    status: int = Field(description="The status the synchronous ingest would have answered.")
    detail: str


class JobOut(CamelOut):
    """A background ingest: where it has got and how it ended."""

    job_id: str
    status: JobStatus
    file_id: str
    filename: str
    workspace: str
    progress: JobProgressOut
    attempts: int = Field(description="How many times a worker has started it.")
    error: JobErrorOut | None = Field(None, description="Why it failed (status failed only).")
    document: DocumentOut | None = Field(None, description="The document (succeeded only).")
    created_at: EpochSeconds
    started_at: EpochSeconds | None = None
    finished_at: EpochSeconds | None = None


class JobFilters(Schema):
    status: JobStatus | None = None
    workspace: str | None = Field(
        None,
        max_length=WORKSPACE_MAX,
        description="Only this workspace's jobs; all by default, or with `*` (all the "
        "key's, for a key limited to some workspaces).",
    )
    limit: int = Field(50, ge=1, le=LIST_LIMIT_MAX)
    offset: int = Field(0, ge=0, le=OFFSET_MAX)


class JobListOut(CamelOut):
    items: list[JobOut]
    total: int
    limit: int
    offset: int


class ListFilters(Schema):
    workspace: Workspace = Field(
        None,
        description="The workspace to list; `*` lists all of them (all the key's). "
        + _WHEN_NONE
        + "all of its own.",
    )
    limit: int = Field(50, ge=1, le=LIST_LIMIT_MAX)
    offset: int = Field(0, ge=0, le=OFFSET_MAX)


class DocumentListOut(CamelOut):
    items: list[DocumentOut]
    total: int
    limit: int
    offset: int


class DeleteIn(CamelSchema):
    file_id: Annotated[str, BeforeValidator(_id_as_text)] = Field(
        min_length=1, max_length=FILE_ID_MAX, pattern=NO_NUL
    )


class DeletedOut(CamelOut):
    ok: bool = True
    removed: int = Field(description="How many chunks were removed (0 for an unknown id).")
    deleted: bool = Field(description="Whether a document with this id existed.")
    file_id: str
    filename: str | None = None


class ErrorOut(Schema):
    """Every error's body: what went wrong in one sentence; for invalid input (422) also
    the list of problems, each with where it is (`loc`) and why (`msg`)."""

    detail: str
    errors: list[dict[str, Any]] | None = None


# Errors any operation that needs a key can answer: no or an unknown key, a revoked key
# or one without the permission or the workspace (registry/scopes.py),
# invalid input, a database or store that does not answer.
_ALWAYS = (401, 403, 422, 503)


def responses(
    ok: type[BaseModel], *errors: int, accepted: type[BaseModel] | None = None
) -> dict[int, type[BaseModel]]:
    """An operation's documented responses: `ok` for 200, `accepted` for 202 (a job),
    ErrorOut for the rest."""
    documented: dict[int, type[BaseModel]] = {200: ok}
    if accepted is not None:
        documented[202] = accepted
    return {**documented, **error_responses(*errors)}


def error_responses(*errors: int) -> dict[int, type[BaseModel]]:
    """ErrorOut for these statuses and those every operation may answer (an operation
    whose 200 is not JSON documents it in openapi_extra)."""
    return {status: ErrorOut for status in sorted({*_ALWAYS, *errors})}
