"""The vector store file (VECTOR_JSON_PATH, data/vectors.json): every chunk's document,
workspace, number, heading context, text, vector and BM25 term counts, in the format of
vector_file_format.py.

Each process keeps the parsed store and reloads only when the file changed on disk.
Writes hold the flock across read-modify-write, like the JSON registry, so several
gunicorn workers can ingest at once. A write appends its change to the journal beside
the file (`Change` in vector_file_format.py), which each process replays from where it
last read; once the journal is half the file, the next write replaces the file
atomically with everything in it.

The old service's data/vec.json (a JSON array of chunks with 768-float embeddings) is
recognised and never written: every write reads the file first, and reading it is an
error that says to run `import_legacy_vectors`, which reads it into this store.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import orjson
from django.db import connection

from common.fileio import ParsedFile, locked
from ingest.exceptions import VectorStoreError
from ingest.search.fusion import Ranking, fuse
from ingest.search.lexical import field_counts
from ingest.stores.base import (
    ChunkHit,
    ChunkText,
    DeleteRows,
    Found,
    Removed,
    StoredChunks,
    VectorsFor,
    VectorStore,
    WriteRow,
    check_built_by,
    page_span,
)
from ingest.stores.vector_file_format import (
    Change,
    Snapshot,
    apply_changes,
    chunk_entries,
    dump_new_generation,
    parse_snapshot,
)
from ingest.stores.vector_journal import Journal
from registry.records import DocumentRecord, WorkspaceFilter

logger = logging.getLogger(__name__)


class JsonFileStore(VectorStore):
    """The store file at `path`: the parsed file in memory, rewritten whole on a change."""

    thread_sensitive: ClassVar[bool] = False

    def __init__(self, path: Path, *, embedder: str, dim: int) -> None:
        super().__init__(embedder=embedder, dim=dim)
        self.path = Path(path)
        self._file: ParsedFile[Snapshot] = ParsedFile(
            self.path,
            parse=self._parse,
            empty=lambda: Snapshot.empty(self.embedder, self.dim),
            unreadable=lambda exc: VectorStoreError(
                f"vector store {self.path} cannot be read: {exc}"
            ),
        )
        self.journal = Journal(self.path.with_name(f"{self.path.name}.journal"), dim)

    @property
    def label(self) -> str:
        return str(self.path)

    @property
    def short_label(self) -> str:
        return self.path.name

    def uses_file(self, path: Path) -> bool:
        return Path(path).resolve() == self.path.resolve()

    # -- reading the file ----------------------------------------------------------------
    def _snapshot(self) -> Snapshot:
        """The file and, over it, the changes its journal holds."""
        return self.journal.over(self._file.read())

    def _parse(self, data: bytes) -> Snapshot:
        try:
            doc = orjson.loads(data)
            if isinstance(doc, list):  # this service's store is always an object
                raise VectorStoreError(
                    f"vector store {self.path} is the old service's vector file (a JSON "
                    "array of chunks), which this service reads but never writes: point "
                    "VECTOR_JSON_PATH at a file of this service's own (the default is "
                    "data/vectors.json) and run `manage.py import_legacy_vectors "
                    f"{self.path}`"
                )
            return parse_snapshot(doc)
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise VectorStoreError(
                f"vector store {self.path} is damaged ({exc}); restore it from a backup "
                "or re-ingest the documents"
            ) from None

    def _compatible(self, snapshot: Snapshot) -> Snapshot:
        check_built_by(
            f"vector store {self.path}", (snapshot.embedder, snapshot.dim), self.embedder, self.dim
        )
        return snapshot

    def _current(self) -> Snapshot:
        """The snapshot to change: the file's, or an empty one of this embedder."""
        current = self._snapshot()
        if current.meta:
            return self._compatible(current)
        return Snapshot.empty(self.embedder, self.dim)

    # -- writing the file ----------------------------------------------------------------
    def _write(self, snapshot: Snapshot) -> None:
        """Rewrite the file whole, as a new generation, and drop the journal it holds.
        Under `locked(path)`."""
        try:
            after = f"{self._replaced()}:{self.journal.size()}"
            self._file.write(dump_new_generation(snapshot, after=after), snapshot)
            self.journal.folded(snapshot)
        except OSError as exc:
            raise VectorStoreError(f"vector store {self.path} cannot be written: {exc}") from exc

    def _replaced(self) -> str:
        """The generation of the file a rewrite replaces ("" for none, or one that
        cannot be read, as when an import writes over a damaged file)."""
        try:
            return self._file.read().generation
        except VectorStoreError:
            return ""

    def _change(self, current: Snapshot, change: Change) -> None:
        """Append the change to the journal, or rewrite the file with it once the journal
        has grown to its share of the file. Under `locked(path)`, `current` just read."""
        try:
            file_size = self.path.stat().st_size if current.generation else 0
        except FileNotFoundError:
            file_size = 0
        changed = apply_changes(current, [change])
        if not self.journal.append(current, change, changed, file_size):
            self._write(changed)

    def _analyse(self, documents: list[StoredChunks], *, removed: Collection[str] = ()) -> Change:
        meta: list[dict[str, Any]] = []
        for document in documents:
            expected = (len(document.texts), self.dim)
            if document.vectors.shape != expected or len(document.indexes) != expected[0]:
                raise ValueError(
                    f"expected {expected[0]} indexes and vectors of {self.dim} for "
                    f"{document.file_id}, got {document.vectors.shape}"
                )
            meta.extend(chunk_entries(document))
        matrix = (
            np.vstack([d.vectors.astype(np.float32, copy=False) for d in documents])
            if documents
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        titles = {d.file_id: d.title for d in documents if d.title}
        counted = [
            dict(field_counts(m["text"], m["context"], titles.get(m["file_id"], ""))) for m in meta
        ]
        return Change(list(removed), meta, matrix, counted, titles, database_label())

    # -- the services' units of work -----------------------------------------------------
    def write_document(
        self, chunks: StoredChunks, write_row: WriteRow
    ) -> tuple[DocumentRecord, bool]:
        """The chunks first, then the row. A file and a table cannot share a transaction,
        so the document's previous chunks (none for a new one) come back when the row
        cannot be written, or is another upload's. Writes of documents take turns on this
        host's file, so a put-back never undoes another write that came between. (A
        delete does not wait: at worst a put-back after it leaves chunks of no document,
        never cited, which `check_registry --fix` removes.)"""
        with self._unit_of_work():
            previous = self.documents([chunks.file_id])
            self.replace([chunks])
            try:
                stored, kept = write_row()
            except BaseException:
                self._put_back(chunks.file_id, previous)
                raise
            if not kept:
                self._put_back(chunks.file_id, previous)
            return stored, kept

    def _unit_of_work(self) -> contextlib.AbstractContextManager[None]:
        return locked(self.path.with_name(f"{self.path.name}.writes"))

    def _put_back(self, file_id: str, previous: list[StoredChunks]) -> None:
        if previous:
            self.replace(previous)
        else:
            self.remove_chunks([file_id])

    def remove_documents(self, file_ids: Collection[str], delete_rows: DeleteRows) -> Removed:
        """The rows first; their chunks once that is durable (after the commit)."""
        removed: list[int] = []

        def remove_their_chunks(documents: list[DocumentRecord]) -> None:
            gone = [document.file_id for document in documents]
            try:
                removed.append(self.remove_chunks(gone))
            except Exception:
                logger.exception("vectors of deleted documents %s were not removed", gone)

        documents = delete_rows(file_ids, on_deleted=remove_their_chunks)
        return Removed(documents, sum(removed))

    # -- bulk writes ---------------------------------------------------------------------
    def replace(self, documents: list[StoredChunks]) -> int:
        change = self._analyse(documents, removed=sorted({d.file_id for d in documents}))
        with locked(self.path):
            self._change(self._current(), change)
        return len(change.meta)

    def write_all(self, documents: list[StoredChunks]) -> int:
        """Make the file hold exactly these documents' chunks (whatever it held), in one
        atomic write; returns the chunks written."""
        change = self._analyse(documents)
        with locked(self.path):
            self._write(apply_changes(Snapshot.empty(self.embedder, self.dim), [change]))
        return len(change.meta)

    def remove_chunks(self, file_ids: Iterable[str]) -> int:
        wanted = set(file_ids)
        if not wanted:
            return 0
        with locked(self.path):
            snapshot = self._snapshot()
            removed = sum(1 for m in snapshot.meta if m["file_id"] in wanted)
            if removed:
                empty = np.zeros((0, self.dim), dtype=np.float32)
                change = Change(sorted(wanted), [], empty, [], {}, database_label())
                self._change(snapshot, change)
        return removed

    def reembed(self, vectors_for: VectorsFor, *, embedder: str, dim: int) -> int:
        """Under the lock: chunks changed since the caller embedded pass through
        `vectors_for` as they are now."""
        with locked(self.path):
            snapshot = self._snapshot()
            matrix = vectors_for(snapshot.meta)
            if matrix.shape != (len(snapshot.meta), dim):
                raise ValueError(f"expected {len(snapshot.meta)} vectors of {dim}")
            self._write(
                Snapshot(
                    embedder,
                    dim,
                    snapshot.meta,
                    matrix.astype(np.float32, copy=False),
                    snapshot.vocabulary,
                    snapshot.term_ids,
                    snapshot.term_counts,
                    snapshot.term_lengths,
                    snapshot.owners,
                    snapshot.titles,
                )
            )
        return len(snapshot.meta)

    # -- reading -------------------------------------------------------------------------
    def built_by(self) -> tuple[str, int] | None:
        snapshot = self._snapshot()
        return (snapshot.embedder, snapshot.dim) if snapshot.meta else None

    def search(
        self,
        query: np.ndarray,
        query_terms: Sequence[str],
        *,
        workspace: WorkspaceFilter,
        top_k: int,
        method: str = "hybrid",
    ) -> Found:
        """Cosine similarity against every vector and BM25 over the term counts, each
        cut to its best rows, then fused."""
        snapshot = self._snapshot()
        weights = _weights(snapshot, query_terms)
        if not snapshot.meta or top_k <= 0:
            return Found([], weights)
        self._compatible(snapshot)
        mask = snapshot.workspace_mask(workspace)
        dense = snapshot.matrix @ query.astype(np.float32, copy=False)
        lexical = snapshot.bm25.scores(snapshot.vocabulary.known(query_terms))
        depth = max(50, 4 * top_k)
        rankings = {
            "dense": _best(dense, mask, depth),
            "lexical": _best(lexical, mask, depth, positive=True),
        }
        ranked = fuse(rankings.values()) if method == "hybrid" else rankings[method]
        hits = [
            ChunkHit(
                score=round(score, 6),
                dense=float(dense[row]),
                lexical=float(lexical[row]),
                **{**snapshot.meta[row], "pages": page_span(snapshot.meta[row].get("pages"))},
            )
            for row, score in ranked[:top_k]
        ]
        return Found(hits, weights)

    def chunks(self) -> list[dict[str, Any]]:
        return list(self._snapshot().meta)

    def chunk_texts(self, file_id: str) -> list[ChunkText]:
        rows = (meta for meta in self._snapshot().meta if meta["file_id"] == file_id)
        return sorted(
            (
                ChunkText(
                    meta["chunk_index"], meta["context"], meta["text"], page_span(meta.get("pages"))
                )
                for meta in rows
            ),
            key=lambda chunk: chunk.index,
        )

    def documents(self, file_ids: Collection[str] | None = None) -> list[StoredChunks]:
        snapshot = self._snapshot()
        wanted = None if file_ids is None else set(file_ids)
        rows: dict[str, list[int]] = {}
        for row, meta in enumerate(snapshot.meta):
            if wanted is None or meta["file_id"] in wanted:
                rows.setdefault(meta["file_id"], []).append(row)
        if rows:
            self._compatible(snapshot)
        out = []
        for file_id, positions in rows.items():
            positions.sort(key=lambda row: snapshot.meta[row]["chunk_index"])
            metas = [snapshot.meta[row] for row in positions]
            out.append(
                StoredChunks(
                    file_id=file_id,
                    workspace=metas[0]["workspace"],
                    indexes=[m["chunk_index"] for m in metas],
                    texts=[m["text"] for m in metas],
                    vectors=snapshot.matrix[positions],
                    contexts=[m["context"] for m in metas],
                    pages=[page_span(m.get("pages")) for m in metas],
                    title=snapshot.titles.get(file_id, ""),
                )
            )
        return out

    def titles(self) -> dict[str, str]:
        snapshot = self._snapshot()
        return {meta["file_id"]: snapshot.titles.get(meta["file_id"], "") for meta in snapshot.meta}

    def chunk_counts(self, file_ids: Collection[str] | None = None) -> dict[str, int]:
        wanted = None if file_ids is None else set(file_ids)
        counts: dict[str, int] = {}
        for meta in self._snapshot().meta:
            file_id = meta["file_id"]
            if wanted is None or file_id in wanted:
                counts[file_id] = counts.get(file_id, 0) + 1
        return counts

    def written_elsewhere(self) -> dict[str, str]:
        """The file is shared between settings, as when development and production run
        in one checkout: file_id → the other database's label."""
        here = database_label()
        return {f: owner for f, owner in self._snapshot().owners.items() if owner != here}


def _weights(snapshot: Snapshot, stems: Iterable[str]) -> dict[str, float]:
    """Each stem's IDF among the stored chunks (0 for a stem no chunk has)."""
    idf = snapshot.bm25.idf
    ids = snapshot.vocabulary.ids_of(stems)
    return {stem: float(idf[index]) if index is not None else 0.0 for stem, index in ids.items()}


def database_label() -> str:
    """The database this process's registry rows live in, as the store file records it:
    `sqlite:<absolute path>` or `<vendor>:<database name>`. No host, user or password: the
    same database reached through a pooler (Neon's `-pooler` host, PgBouncer's port) is
    the same database."""
    params = connection.settings_dict
    name = str(params["NAME"])
    if connection.vendor == "sqlite" and not name.startswith("file:") and name != ":memory:":
        name = str(Path(name).resolve())
    return f"{connection.vendor}:{name}"


def _best(
    scores: np.ndarray, mask: np.ndarray | None, depth: int, *, positive: bool = False
) -> Ranking:
    """The `depth` best rows by score (within `mask`), best first, ties by row."""
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    if positive:
        scores = np.where(scores > 0, scores, -np.inf)
    k = min(depth, len(scores))
    top = np.argpartition(-scores, k - 1)[:k]
    top = top[np.lexsort((top, -scores[top]))]
    return [(int(row), float(scores[row])) for row in top if np.isfinite(scores[row])]
