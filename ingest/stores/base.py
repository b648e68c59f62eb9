"""The vector store interface, implemented by the store file (vector_file.py) and the
pgvector table (pgvector.py), and the values it reads and writes.

A store holds each document's chunks: text, headings, vector and what lexical search
needs. The services change a document's chunks and its registry row together through
one unit of work each, `write_document` and `remove_documents`; each store decides how
to keep the two in step (a table writes both in one transaction, a file compensates).
Bulk writers (imports, reindexing, `check_registry --fix`) use the public methods here.

Stores implement the sync methods; async callers use the `a`-prefixed twins, which run
them off the event loop on the right thread, as the registry backends do.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeVar

import numpy as np
from asgiref.sync import sync_to_async

from ingest.exceptions import VectorStoreError
from registry.backends.base import OnDeleted
from registry.records import DocumentRecord, WorkspaceFilter

R = TypeVar("R")

# Writes a document's registry row: the stored record, and whether the chunks just
# written are that document's (False when an identical upload's row won the race).
WriteRow = Callable[[], tuple[DocumentRecord, bool]]
# Every chunk's vector, for the chunks' metadata as they are at the swap (reindex).
VectorsFor = Callable[[list[dict[str, Any]]], np.ndarray]


class DeleteRows(Protocol):
    """Deletes the rows of these ids that exist and returns them, calling `on_deleted`
    with them once the deletion is durable: RegistryBackend.delete_many."""

    def __call__(
        self, file_ids: Collection[str], *, on_deleted: OnDeleted | None = None
    ) -> list[DocumentRecord]: ...


# A chunk's first and last page, 1-based; None for a format without pages.
PageSpan = tuple[int, int] | None


def page_span(value: Any) -> PageSpan:
    """A stored span (a pair, or two columns' values) as a PageSpan."""
    if not value or value[0] is None:
        return None
    return (int(value[0]), int(value[1]))


@dataclass(frozen=True)
class ChunkText:
    index: int
    context: str
    text: str
    pages: PageSpan = None


@dataclass(frozen=True)
class StoredChunks:
    """One document's chunks as the store holds them, vectors row-aligned with texts."""

    file_id: str
    workspace: str
    indexes: list[int]
    texts: list[str]
    vectors: np.ndarray
    contexts: list[str] | None = None  # each chunk's headings; None when it has none
    # Each chunk's first and last page (None: no pages); None when no chunk has pages.
    pages: list[PageSpan] | None = None
    # The document's name, which lexical ranking counts as a field of each chunk.
    title: str = ""

    def context(self, position: int) -> str:
        return self.contexts[position] if self.contexts else ""

    def page_span(self, position: int) -> PageSpan:
        return self.pages[position] if self.pages else None


@dataclass(frozen=True, slots=True)
class ChunkHit:
    chunk_id: str
    file_id: str
    workspace: str
    chunk_index: int
    context: str
    text: str
    score: float  # the fused score, or the method's own when ranked by one method
    dense: float  # cosine similarity to the question
    lexical: float  # BM25 score for the question
    pages: PageSpan = None


@dataclass(frozen=True)
class Found:
    """A search's hits, best first, and the IDF of each query stem among the stored
    chunks (0 for a stem no chunk has), which answering weighs sentences by."""

    hits: list[ChunkHit]
    weights: dict[str, float]


@dataclass(frozen=True)
class Removed:
    documents: list[DocumentRecord]
    chunks: int


def check_built_by(where: str, built: tuple[str, int] | None, embedder: str, dim: int) -> None:
    """VectorStoreError unless vectors `built` by (embedder, dim) compare with ours."""
    if built is not None and built != (embedder, dim):
        raise VectorStoreError(
            f"{where} was built by embedder {built[0]!r} with {built[1]} dimensions, but "
            f"this service embeds with {embedder!r} at {dim}: set EMBEDDER to the store's "
            "embedder, or run `manage.py reindex` to embed the stored chunks again with this one"
        )


class VectorStore(abc.ABC):
    """Where chunks and their vectors live, for vectors of one embedder."""

    # Database work stays on the request's sync thread; file work need not.
    thread_sensitive: ClassVar[bool]

    def __init__(self, *, embedder: str, dim: int) -> None:
        self.embedder = embedder
        self.dim = dim

    # -- where it is, for messages ----------------------------------------------------------
    @property
    @abc.abstractmethod
    def label(self) -> str:
        """The store in full: the file's path, or the table."""

    @property
    def short_label(self) -> str:
        """The store in a line of a report: the file's name, or the table."""
        return self.label

    def uses_file(self, path: Path) -> bool:
        """Whether `path` is this store's own file (which an import must not read from)."""
        return False

    # -- the services' units of work -------------------------------------------------------
    @abc.abstractmethod
    def write_document(
        self, chunks: StoredChunks, write_row: WriteRow
    ) -> tuple[DocumentRecord, bool]:
        """Store a document's chunks, replacing any it had, and its registry row by
        `write_row`, as one unit: when `write_row` raises, the store is left as it was.
        When `write_row` says the chunks are not its document's (an identical upload won
        the race), they are not kept. Returns what `write_row` returned."""

    @abc.abstractmethod
    def remove_documents(self, file_ids: Collection[str], delete_rows: DeleteRows) -> Removed:
        """Delete the registry rows of these ids that exist, by `delete_rows`, and their
        chunks; unknown ids are skipped. Chunks never outlive a row whose deletion did
        not happen; should their removal fail after the rows are gone, the failure is
        logged and `check_registry --fix` removes them (answers never cite them)."""

    # -- bulk writes, for imports and repairs ----------------------------------------------
    @abc.abstractmethod
    def replace(self, documents: list[StoredChunks]) -> int:
        """Store these documents' chunks in one write, each replacing every chunk its
        document had; returns the chunks stored. The documents' rows must exist."""

    @abc.abstractmethod
    def remove_chunks(self, file_ids: Iterable[str]) -> int:
        """Remove every chunk of these documents, whatever the registry says (orphans);
        returns how many chunks went."""

    @abc.abstractmethod
    def reembed(self, vectors_for: VectorsFor, *, embedder: str, dim: int) -> int:
        """Replace every chunk's vector with `vectors_for(chunks)` in one swap, as a
        store of `embedder` (dim); returns the chunks re-embedded."""

    # -- reading ----------------------------------------------------------------------------
    @abc.abstractmethod
    def built_by(self) -> tuple[str, int] | None:
        """(embedder, dim) of the stored vectors; None while the store is empty."""

    def require_compatible(self) -> None:
        """VectorStoreError unless the stored vectors are this store's embedder's."""
        check_built_by(self.label, self.built_by(), self.embedder, self.dim)

    @abc.abstractmethod
    def search(
        self,
        query: np.ndarray,
        query_terms: Sequence[str],
        *,
        workspace: WorkspaceFilter,
        top_k: int,
        method: str = "hybrid",
    ) -> Found:
        """The top_k chunks of the workspace (a set: of those; None: of all), best
        first: by reciprocal rank fusion of the nearest vectors and the best lexical
        matches, or (`method` "dense" or "lexical") by one of them alone; and the query
        terms' weights."""

    @abc.abstractmethod
    def chunks(self) -> list[dict[str, Any]]:
        """Every chunk's metadata (no vectors): chunk_id, file_id, workspace,
        chunk_index, context, text, and pages ([first, last]) where it has them."""

    @abc.abstractmethod
    def chunk_texts(self, file_id: str) -> list[ChunkText]:
        """The document's chunks without their vectors, in index order: what a person
        reads (the admin's document page)."""

    @abc.abstractmethod
    def documents(self, file_ids: Collection[str] | None = None) -> list[StoredChunks]:
        """The chunks of these documents (None: of every document), vectors included,
        each document's in index order; a document without chunks is left out."""

    @abc.abstractmethod
    def titles(self) -> dict[str, str]:
        """Each stored document's name as its chunks' lexical ranking counts it ("" for
        chunks stored before names were counted)."""

    @abc.abstractmethod
    def chunk_counts(self, file_ids: Collection[str] | None = None) -> dict[str, int]:
        """How many chunks each document (of these ids; None: every one) has, for the
        documents that have any."""

    def written_elsewhere(self) -> dict[str, str]:
        """Documents whose chunks a service on another database wrote into this store
        (file_id → that database): none, unless the store is a file several settings
        share."""
        return {}

    def texts_by_document(self) -> dict[str, tuple[str, dict[int, str]]]:
        """Each document's workspace and chunk texts by index, as stored."""
        out: dict[str, tuple[str, dict[int, str]]] = {}
        for meta in self.chunks():
            entry = out.setdefault(meta["file_id"], (meta["workspace"], {}))
            entry[1][meta["chunk_index"]] = meta["text"]
        return out

    # -- async twins -----------------------------------------------------------------------
    def _async(self, function: Callable[..., R], *args: Any, **kwargs: Any) -> Any:
        return sync_to_async(function, thread_sensitive=self.thread_sensitive)(*args, **kwargs)

    async def asearch(
        self,
        query: np.ndarray,
        query_terms: Sequence[str],
        *,
        workspace: WorkspaceFilter,
        top_k: int,
        method: str = "hybrid",
    ) -> Found:
        return await self._async(
            self.search, query, query_terms, workspace=workspace, top_k=top_k, method=method
        )

    async def awrite_document(
        self, chunks: StoredChunks, write_row: WriteRow
    ) -> tuple[DocumentRecord, bool]:
        # On the request's sync thread whatever the store: the row is the registry's,
        # and a database registry's connection (and transaction) lives on that thread.
        return await sync_to_async(self.write_document, thread_sensitive=True)(chunks, write_row)
