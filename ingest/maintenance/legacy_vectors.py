"""Read the old service's data/vec.json into this service's vector store.

The old file is a JSON array of chunks: `{"id": "<fileId>:<n>", "fileId", "filename",
"chunkId", "workspace", "text", "embedding": [768 floats], "createdAt"}`. The old service
cut a document's raw text (Markdown marks, hard-wrapped lines and all) into windows of
3,500 characters overlapping by 600 (its app/lib/chunker.py), so its chunks answer in
fragments and carry no headings. Each document is therefore put back together from its
chunks (the overlaps taken out) and read and cut as an upload of it would be: Markdown
parsed (a name ending .md), sections with their headings, chunks of whole sentences; its
new chunks are embedded with the configured embedder and the registry's chunk count
follows. Documents whose texts are identical under different fileIds are reported (the
old data holds the same file under two ids; /ask cites such a text once).

With EMBEDDER=gemini (text-embedding-004, the model that made them) the old vectors are
comparable, and `keep_vectors` stores the old chunks and vectors as they are instead. The
old file is only ever read.

Chunks of documents the live registry does not hold are reported and left out, never
imported silently. A second run with nothing changed embeds and writes nothing.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import orjson
from django.conf import settings
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from pydantic.alias_generators import to_camel

from common.fileio import read_bytes
from common.progress import EVERY, Progress, report
from ingest.exceptions import EmptyDocument, IngestError
from ingest.search.embeddings import get_embedder
from ingest.search.fusion import searchable
from ingest.sources.chunking import chunk_sections
from ingest.sources.extraction import extract
from ingest.stores import get_vector_store
from ingest.stores.base import StoredChunks
from registry.backends import get_backend
from registry.normalising import Rejection, raw_file_id
from registry.records import DEFAULT_WORKSPACE, FILE_ID_MAX, WORKSPACE_MAX, DocumentRecord

EMBED_BATCH = 64
OLD_OVERLAP = 600  # characters two consecutive old chunks share (the old CHUNK_OVERLAP)
MARKDOWN_NAMES = (".md", ".markdown")
LEGACY_EMBEDDER = "gemini-text-embedding-004"  # what GeminiEmbedder calls the old model
LOOKUP_BATCH = 5000
# The 768 numbers of each chunk are most of the file and of no use here: parsed, they
# would take about 30 bytes each in memory. A JSON string cannot hold an unescaped quote,
# so `"embedding":` followed by `[` can only be a key, and a number array has no `]`.
_EMBEDDING = re.compile(rb'"embedding"\s*:\s*\[[^\]]*\]')


class LegacyVectorFileError(IngestError):
    """The file is not the old service's vector file, or cannot be read."""


Stripped = Annotated[str, StringConstraints(strip_whitespace=True)]


class LegacyChunk(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",  # id, createdAt
    )

    file_id: Stripped = Field(min_length=1, max_length=FILE_ID_MAX)
    filename: str = ""
    chunk_id: int = Field(ge=0)
    workspace: Stripped = Field(DEFAULT_WORKSPACE, max_length=WORKSPACE_MAX)
    text: str = Field(min_length=1)  # kept exactly as the old service stored it
    embedding: list[float] | None = None  # read only with keep_vectors


@dataclass
class LegacyDocument:
    file_id: str
    filename: str
    workspace: str
    texts: dict[int, str] = field(default_factory=dict)
    vectors: dict[int, list[float]] = field(default_factory=dict)
    # Its own chunks, once rechunk() has cut the document again.
    new_texts: list[str] = field(default_factory=list)
    new_contexts: list[str] = field(default_factory=list)

    def kept_vectors(self) -> np.ndarray:
        matrix = np.array([self.vectors[index] for index in sorted(self.texts)], np.float32)
        norms = np.linalg.norm(matrix, axis=1, keepdims=True)
        return np.divide(matrix, norms, out=matrix, where=norms > 0)

    def ordered_texts(self) -> list[str]:
        return [self.texts[index] for index in sorted(self.texts)]

    @functools.cached_property
    def whole_text(self) -> str:
        """The document's text as the old service cut it, its chunks' overlaps taken out;
        chunks that do not overlap (one lost, or another chunker's) are joined as
        paragraphs."""
        whole = ""
        for text in self.ordered_texts():
            shared = _overlap(whole, text)
            whole += text[shared:] if shared or not whole else "\n\n" + text
        return whole

    def rechunk(self) -> None:
        """Cut the whole text as an upload of it would be (see the module's docstring)."""
        name = "legacy.md" if self.filename.lower().endswith(MARKDOWN_NAMES) else "legacy.txt"
        try:
            sections = extract(self.whole_text.encode(), filename=name).sections
        except EmptyDocument:
            sections = []
        chunked = chunk_sections(
            sections, size=settings.CHUNK_SIZE_WORDS, overlap=settings.CHUNK_OVERLAP_WORDS
        )
        self.new_texts, self.new_contexts = chunked.texts, chunked.contexts
        if not self.new_texts:  # nothing but white space: kept as it was
            self.new_texts, self.new_contexts = self.ordered_texts(), [""] * len(self.texts)

    def searchable(self) -> list[str]:
        return [searchable(c, t) for c, t in zip(self.new_contexts, self.new_texts, strict=True)]

    def stored(self, vectors: np.ndarray) -> StoredChunks:
        return StoredChunks(
            self.file_id,
            self.workspace,
            sorted(self.texts),
            self.ordered_texts(),
            vectors,
            title=self.filename,
        )

    def rechunked(self, vectors: np.ndarray) -> StoredChunks:
        return StoredChunks(
            self.file_id,
            self.workspace,
            list(range(len(self.new_texts))),
            self.new_texts,
            vectors,
            self.new_contexts,
            title=self.filename,
        )


def _overlap(before: str, text: str) -> int:
    """How many characters `text` starts with that `before` ends with: the old chunker's
    overlap, or less (a last chunk, stripped text), at least 20."""
    if before.endswith(text[:OLD_OVERLAP]):
        return min(OLD_OVERLAP, len(text))
    for shared in range(min(OLD_OVERLAP, len(text), len(before)), 19, -1):
        if before.endswith(text[:shared]):
            return shared
    return 0


@dataclass(frozen=True)
class LegacyVectorsReport:
    path: Path
    store: str  # the store's label: its file, or the table
    embedder: str
    total: int
    imported: list[LegacyDocument]
    unchanged: list[LegacyDocument]
    unknown: list[LegacyDocument]
    rejected: list[Rejection]
    repeated: int
    written: bool
    identical: list[list[LegacyDocument]] = field(default_factory=list)  # same text, >1 id
    rechunked: bool = True  # cut again (not --keep-vectors)

    @property
    def chunks(self) -> int:
        """The chunks stored (or to be) for the imported documents."""
        if not self.rechunked:
            return sum(len(document.texts) for document in self.imported)
        return sum(len(document.new_texts) for document in self.imported)

    @property
    def left_out(self) -> int:
        """Chunks of the file that are not in the store: rejected or of unknown documents."""
        return len(self.rejected) + sum(len(document.texts) for document in self.unknown)


def read_legacy_vectors(path: Path, *, keep_vectors: bool = False) -> list[Any]:
    """The chunk objects of an old vec.json, embeddings left out unless kept."""
    data = read_bytes(path, what="vector file", error=LegacyVectorFileError)
    try:
        items = orjson.loads(data if keep_vectors else _EMBEDDING.sub(b'"embedding":null', data))
    except orjson.JSONDecodeError as exc:
        raise LegacyVectorFileError(
            f"vector file {path} is not valid JSON ({exc}); is it truncated?"
        ) from None
    if isinstance(items, dict) and "format" in items:
        raise LegacyVectorFileError(
            f"vector file {path} is already in this service's format ({items['format']}); "
            "there is nothing to import"
        )
    if not isinstance(items, list):
        raise LegacyVectorFileError(
            f"vector file {path} holds a JSON {type(items).__name__}, expected the old "
            "service's array of chunks"
        )
    return items


def _group(
    items: Sequence[Any], *, dim: int | None = None
) -> tuple[dict[str, LegacyDocument], list[Rejection], int]:
    """Chunks by document; with `dim`, each must carry an embedding of that size."""
    documents: dict[str, LegacyDocument] = {}
    rejected: list[Rejection] = []
    repeated = 0
    for position, item in enumerate(items):
        try:
            chunk = LegacyChunk.model_validate(item)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = to_camel(str(error["loc"][0])) if error["loc"] else "chunk"
            reason = (
                f"{key} is missing"
                if error["type"] == "missing"
                else f"{key}: {error['msg']} (got {error.get('input')!r})"
            )
            rejected.append(Rejection(position, raw_file_id(item), reason, item="chunk"))
            continue
        if dim is not None and len(chunk.embedding or ()) != dim:
            got = len(chunk.embedding) if chunk.embedding is not None else "no"
            reason = f"embedding has {got} values, expected {dim}"
            rejected.append(Rejection(position, chunk.file_id, reason, item="chunk"))
            continue
        document = documents.setdefault(
            chunk.file_id,
            LegacyDocument(chunk.file_id, chunk.filename, chunk.workspace or DEFAULT_WORKSPACE),
        )
        repeated += chunk.chunk_id in document.texts
        document.texts[chunk.chunk_id] = chunk.text  # a later copy of a chunk wins
        if dim is not None and chunk.embedding is not None:
            document.vectors[chunk.chunk_id] = chunk.embedding
    return documents, rejected, repeated


def _registered(file_ids: list[str]) -> dict[str, DocumentRecord]:
    backend = get_backend()
    found: dict[str, DocumentRecord] = {}
    for start in range(0, len(file_ids), LOOKUP_BATCH):
        found.update(backend.get_many(file_ids[start : start + LOOKUP_BATCH]))
    return found


def import_legacy_vectors(
    *,
    path: Path,
    dry_run: bool = False,
    keep_vectors: bool = False,
    progress: Progress | None = None,
) -> LegacyVectorsReport:
    """Embed the chunks of the old vec.json at `path` into the vector store (or, with
    `keep_vectors`, store the old vectors as they are), one write."""
    store = get_vector_store()
    embedder = get_embedder()
    if keep_vectors and embedder.name != LEGACY_EMBEDDER:
        raise LegacyVectorFileError(
            "--keep-vectors keeps the old service's text-embedding-004 vectors (768 "
            f"dimensions), which only compare with the same model's: this service embeds "
            f"with {embedder.name!r}; set EMBEDDER=gemini (and GOOGLE_API_KEY), or import "
            "without --keep-vectors to embed the texts again"
        )
    if store.uses_file(path):
        raise LegacyVectorFileError(
            f"{path} is this service's own store (VECTOR_JSON_PATH): the old service's file "
            "must stay apart; set VECTOR_JSON_PATH to another file (default "
            "data/vectors.json)"
        )
    items = read_legacy_vectors(path, keep_vectors=keep_vectors)
    documents, rejected, repeated = _group(items, dim=embedder.dim if keep_vectors else None)
    registry = _registered(list(documents))
    current = store.texts_by_document()
    imported, unchanged, unknown = [], [], []
    for file_id, document in documents.items():
        if file_id not in registry:
            unknown.append(document)
            continue
        if not keep_vectors:
            document.rechunk()
        texts = document.texts if keep_vectors else dict(enumerate(document.new_texts))
        if current.get(file_id) == (document.workspace, texts):
            unchanged.append(document)
        else:
            imported.append(document)
    if imported and not dry_run and keep_vectors:
        store.replace([document.stored(document.kept_vectors()) for document in imported])
    elif imported and not dry_run:
        vectors = _embed([text for d in imported for text in d.searchable()], progress)
        stored, offset = [], 0
        for document in imported:
            count = len(document.new_texts)
            stored.append(document.rechunked(vectors[offset : offset + count]))
            offset += count
        store.replace(stored)
        _count_chunks(imported, registry)
    return LegacyVectorsReport(
        path=path,
        store=store.label,
        embedder=embedder.name,
        total=len(items),
        imported=imported,
        unchanged=unchanged,
        unknown=unknown,
        rejected=rejected,
        repeated=repeated,
        written=bool(imported) and not dry_run,
        identical=_identical([*imported, *unchanged]),
        rechunked=not keep_vectors,
    )


def _count_chunks(documents: list[LegacyDocument], registry: dict[str, DocumentRecord]) -> None:
    """The registry's chunk counts, after the documents were cut again."""
    backend = get_backend()
    for document in documents:
        record = registry[document.file_id]
        if record.num_chunks != len(document.new_texts) or not record.indexed:
            backend.upsert(
                dataclasses.replace(record, num_chunks=len(document.new_texts), indexed=True)
            )


def _identical(documents: list[LegacyDocument]) -> list[list[LegacyDocument]]:
    """The documents whose texts are the same under different fileIds, grouped."""
    groups: dict[bytes, list[LegacyDocument]] = {}
    for document in documents:
        digest = hashlib.sha256(" ".join(document.whole_text.split()).encode()).digest()
        groups.setdefault(digest, []).append(document)
    return [group for group in groups.values() if len(group) > 1]


def _embed(texts: list[str], progress: Progress | None) -> np.ndarray:
    embedder = get_embedder()
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        if start % EVERY < EMBED_BATCH:
            report(progress, "embedding", start, len(texts))
        parts.append(embedder.embed(texts[start : start + EMBED_BATCH]))
    report(progress, "embedding", len(texts), len(texts))
    return np.vstack(parts)
