"""Domain errors of ingestion; config/api.py maps each to one HTTP status."""

from __future__ import annotations


class IngestError(Exception):
    """Base class: the message is safe to show to the caller."""


class UnsupportedFileType(IngestError):
    """415: not one of the accepted document types."""


class EmptyDocument(IngestError):
    """422: the document holds no extractable text (an empty file, a scanned PDF)."""


class ContentTooLarge(IngestError):
    """413: over MAX_UPLOAD_MB."""


class UrlRefused(IngestError):
    """400: the URL may not be fetched (scheme, private address, too many redirects)."""


class FetchFailed(IngestError):
    """422: the URL was allowed but could not be fetched (timeout, refused, HTTP error)."""


class ContentConflict(IngestError):
    """409: a re-ingest under one id of content that another document holds."""


class VectorStoreError(IngestError):
    """503: the vector store cannot be read or written, or was built by another embedder."""


class EmbedderUnavailable(IngestError):
    """503: the configured embedding model cannot be loaded (missing, damaged weights)."""


class GenerationFailed(IngestError):
    """502: the answer model could not be reached, refused, or said nothing."""
