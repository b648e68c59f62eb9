"""What an upload goes through before anything is stored: the client's `Upload`, the
checks it passes (`admit`), its text read and cut into chunks (`cut`) and embedded
(`prepare`), and the record the registry will hold of it (`document_record`).

The synchronous ingest (ingest/services.py) and the job runner (ingest/jobs/runner.py)
both take an upload through these steps, then store it through the one write path,
`services.document_store`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import numpy as np
from django.conf import settings

from ingest.exceptions import ContentConflict, ContentTooLarge, EmptyDocument
from ingest.search.embeddings import embed_chunks
from ingest.search.fusion import searchable
from ingest.sources.chunking import chunk_sections
from ingest.sources.extraction import Extracted, PageProgress, extract
from ingest.sources.fetching import fetch_url
from ingest.stores.base import StoredChunks
from registry.backends import get_backend
from registry.exceptions import FileIdTaken
from registry.records import (
    FILENAME_MAX,
    DocumentRecord,
    SourceKind,
    check_file_id,
    now_seconds,
)
from registry.scopes import Scope

_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


@dataclass(frozen=True)
class Upload:
    """What a client sent to be indexed: the bytes, and what it said of them."""

    data: bytes
    filename: str
    workspace: str | None = None  # None: the scope's (Scope.writes); settled by admit()
    content_type: str = ""
    charset: str | None = None
    source: str = SourceKind.FILE
    url: str = ""
    file_id: str | None = None  # chosen by the client: re-ingest that id, or create it

    def into(self, workspace: str) -> Upload:
        return dataclasses.replace(self, workspace=workspace)

    @property
    def settled_workspace(self) -> str:
        """The workspace it goes to, once admit() has settled it."""
        if self.workspace is None:
            raise ValueError("an upload's workspace is settled (admit) before it is stored")
        return self.workspace


async def fetch_upload(
    *, url: str, filename: str | None, workspace: str | None, file_id: str | None, scope: Scope
) -> Upload:
    """The page at `url` as an upload into the workspace (None: the scope's), refused
    before anything is fetched when the scope may not write there or the id is invalid."""
    workspace = scope.writes(workspace)
    if file_id is not None:
        check_file_id(file_id)
    resource = await fetch_url(url)
    return Upload(
        data=resource.data,
        filename=filename or resource.filename,
        workspace=workspace,
        content_type=resource.content_type,
        charset=resource.charset,
        source=SourceKind.URL,
        url=resource.url,
        file_id=file_id,
    )


@dataclass(frozen=True)
class Admitted:
    """An upload that may be ingested: into which workspace, its checksum, and what the
    registry holds of it."""

    upload: Upload  # its workspace settled (Scope.writes)
    sha256: str
    same_content: DocumentRecord | None  # holds these bytes in the workspace (no id given)
    previous: DocumentRecord | None  # the document a client-chosen id re-ingests
    copy_of: str | None = None  # a new id asked for bytes this document holds


async def admit(upload: Upload, *, scope: Scope) -> Admitted:
    """The checks an upload passes before it is read: the workspace (None: the scope's),
    the id, the size, and that no other document of the workspace holds the content a
    client-chosen id would re-ingest (ContentConflict). A new id asked for content the
    workspace holds is a copy, made as asked (the old service's behaviour). An id of a
    document the scope cannot see is taken (FileIdTaken), in words that do not say where."""
    workspace = scope.writes(upload.workspace)
    upload = upload.into(workspace)
    file_id = upload.file_id
    if file_id is not None:
        check_file_id(file_id)
    if len(upload.data) > settings.MAX_UPLOAD_BYTES:
        raise ContentTooLarge(f"The document is over the {settings.MAX_UPLOAD_MB} MB limit")
    sha256 = hashlib.sha256(upload.data).hexdigest()
    backend = get_backend()
    same_content = await backend.afind_by_sha256(workspace=workspace, sha256=sha256)
    if file_id is None:
        return Admitted(upload, sha256, same_content, None)
    previous = (await backend.aget_many([file_id])).get(file_id)
    if previous is not None and not scope.sees(previous.workspace):
        raise FileIdTaken(file_id)
    if same_content is None or same_content.file_id == file_id:
        return Admitted(upload, sha256, None, previous)
    if previous is None:
        return Admitted(upload, sha256, None, None, copy_of=same_content.file_id)
    raise ContentConflict(
        f"Document {same_content.file_id!r} already holds this content in workspace "
        f"{workspace!r}; re-ingest that id or delete it first"
    )


@dataclass(frozen=True)
class Cut:
    """A document read and cut into chunks, each carrying its section's headings."""

    extracted: Extracted
    texts: list[str]
    contexts: list[str]
    pages: list[tuple[int, int] | None]  # the pages each chunk spans; None: no pages

    def searchable(self) -> list[str]:
        """What is embedded for each chunk: its headings, then its text."""
        return [searchable(c, t) for c, t in zip(self.contexts, self.texts, strict=True)]

    def chunks(self, record: DocumentRecord, vectors: np.ndarray) -> StoredChunks:
        """The chunks a store keeps of the document `record`, with their vectors."""
        return StoredChunks(
            file_id=record.file_id,
            workspace=record.workspace,
            indexes=list(range(len(self.texts))),
            texts=self.texts,
            vectors=vectors,
            contexts=self.contexts,
            pages=self.pages,
            title=record.filename,
        )


@dataclass(frozen=True)
class Prepared:
    """A document read, cut and embedded, before anything is stored."""

    cut: Cut
    vectors: np.ndarray


def cut(upload: Upload, *, progress: PageProgress | None = None) -> Cut:
    """Extract the text and cut each section into chunks; EmptyDocument if none.
    `progress` hears of each page read where pages are slow to read (OCR)."""
    extracted = extract(
        upload.data,
        filename=upload.filename,
        content_type=upload.content_type,
        charset=upload.charset,
        progress=progress,
    )
    chunked = chunk_sections(
        extracted.sections, size=settings.CHUNK_SIZE_WORDS, overlap=settings.CHUNK_OVERLAP_WORDS
    )
    if not chunked.texts:
        raise EmptyDocument("No text to index: the document is empty")
    return Cut(extracted, chunked.texts, chunked.contexts, chunked.pages)


def prepare(upload: Upload, *, progress: PageProgress | None = None) -> Prepared:
    """cut(), then embed each chunk with its headings."""
    pieces = cut(upload, progress=progress)
    return Prepared(pieces, embed_chunks(pieces.searchable()))


def clean_filename(name: str, *, fallback: str = "document") -> str:
    """A display name safe to store and show: no path, no control characters."""
    name = unicodedata.normalize("NFC", name)
    name = _UNSAFE_FILENAME.sub(" ", name.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    return name[:FILENAME_MAX] or fallback


def document_name(upload: Upload, *, title: str = "") -> str:
    """The name a document is listed under: the client's, or for a URL without one the
    page's title, else its host."""
    filename = upload.filename
    if upload.source == SourceKind.URL and not filename:
        filename = title or urlsplit(upload.url).hostname or "page"
    return clean_filename(filename)


def document_record(
    upload: Upload,
    *,
    file_id: str,
    sha256: str,
    content_type: str,
    title: str = "",
    chunks: int = 0,
    created_at: datetime | None = None,
) -> DocumentRecord:
    """The registry's record of the document an upload makes: indexed with its `chunks`
    once they are counted, or listed before (0 chunks) until its job has read it.
    `created_at`: the document's first ingest, when this one replaces it."""
    now = now_seconds()
    return DocumentRecord(
        file_id=file_id,
        filename=document_name(upload, title=title),
        size_bytes=len(upload.data),
        workspace=upload.settled_workspace,
        num_chunks=chunks,
        indexed=chunks > 0,
        created_at=created_at or now,
        updated_at=now,
        source=upload.source,
        url=upload.url,
        content_type=content_type,
        sha256=sha256,
    )
