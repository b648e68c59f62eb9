"""Domain errors of ingestion, each with its HTTP status: config/api.py answers it, and a
background job that fails with it records it (ingest/jobs/runner.py)."""

from __future__ import annotations

from typing import ClassVar


class IngestError(Exception):
    """Base class: the message is safe to show to the caller."""

    status: ClassVar[int] = 400
    # Whether trying again later may succeed (the service, not the document, failed):
    # a background job is retried then.
    transient: ClassVar[bool] = False


class UnsupportedFileType(IngestError):
    """415: not one of the accepted document types."""

    status = 415


class EmptyDocument(IngestError):
    """422: the document holds no extractable text (an empty file, a scanned PDF)."""

    status = 422


class UnreadableDocument(IngestError):
    """422: a document of an accepted type that cannot be read: encrypted, truncated or
    damaged. The message says which."""

    status = 422


class ContentTooLarge(IngestError):
    """413: over MAX_UPLOAD_MB, or over a limit of what a document may expand to (a zip
    or image bomb, too many pages, rows or cells)."""

    status = 413


class OcrUnavailable(IngestError):
    """503: a scan needs Tesseract, which is not installed here; the message names the
    package. Not retried: it takes an operator to install it."""

    status = 503


class UrlRefused(IngestError):
    """400: the URL may not be fetched (scheme, private address, too many redirects)."""

    status = 400


class FetchFailed(IngestError):
    """422: the URL was allowed but could not be fetched (timeout, refused, HTTP error)."""

    status = 422


class ContentConflict(IngestError):
    """409: a re-ingest under one id of content that another document holds."""

    status = 409


class VectorStoreError(IngestError):
    """503: the vector store cannot be read or written, or was built by another embedder."""

    status = 503
    transient = True


class EmbedderUnavailable(IngestError):
    """503: the configured embedding model cannot be loaded (missing, damaged weights)."""

    status = 503
    transient = True


class GenerationFailed(IngestError):
    """502: the answer model could not be reached, refused, or said nothing."""

    status = 502


class OriginalNotKept(IngestError):
    """404: the document exists but its original was not kept (imported from the old
    registry, whose service kept none)."""

    status = 404

    def __init__(self, file_id: str) -> None:
        super().__init__(
            f"Document {file_id!r} has no original kept: it was imported from the old "
            "registry, which kept none; upload the file again to keep it"
        )


class JobNotFound(IngestError):
    """404: no background job has this id."""

    status = 404

    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job {job_id!r} not found")
