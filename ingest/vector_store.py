"""data/vec.json: every chunk's id, document, workspace, index, text and vector.

One JSON object: `{"format", "embedder", "dim", "chunks": [{"chunk_id", "file_id",
"workspace", "chunk_index", "text", "vector"}]}` where `vector` is base64 of little-endian
float32. Base64 keeps the file a third the size of number lists and parses an order of
magnitude faster through orjson.

Each process keeps the parsed matrix and reloads only when the file changed on disk.
Writes hold the flock across read-modify-write and replace the file atomically, like the
JSON registry, so several gunicorn workers can ingest at once.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson
from django.conf import settings

from ingest.embeddings import get_embedder
from ingest.exceptions import VectorStoreError
from registry.fileio import ParsedFile, locked

FORMAT = "docservice-vectors/1"
_FLOAT = np.dtype("<f4")


@dataclass(frozen=True, slots=True)
class ChunkHit:
    chunk_id: str
    file_id: str
    workspace: str
    chunk_index: int
    text: str
    score: float


@dataclass
class _Snapshot:
    """The parsed file: chunk metadata in `meta`, vectors row-aligned in `matrix`."""

    embedder: str
    dim: int
    meta: list[dict] = field(default_factory=list)
    matrix: np.ndarray | None = None
    _masks: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.matrix is None:
            self.matrix = np.zeros((0, self.dim), dtype=np.float32)

    def workspace_mask(self, workspace: str) -> np.ndarray:
        mask = self._masks.get(workspace)
        if mask is None:
            mask = np.fromiter(
                (m["workspace"] == workspace for m in self.meta), bool, len(self.meta)
            )
            self._masks[workspace] = mask
        return mask


class VectorStore:
    def __init__(self, path: Path, *, embedder: str, dim: int) -> None:
        self.path = Path(path)
        self.embedder = embedder
        self.dim = dim
        self._file: ParsedFile[_Snapshot] = ParsedFile(
            self.path,
            parse=self._parse,
            empty=lambda: _Snapshot(self.embedder, self.dim),
            unreadable=lambda exc: VectorStoreError(
                f"vector store {self.path} cannot be read: {exc}"
            ),
        )

    # -- reading -------------------------------------------------------------------------
    def _snapshot(self) -> _Snapshot:
        return self._file.read()

    def _parse(self, data: bytes) -> _Snapshot:
        try:
            doc = orjson.loads(data)
            if not isinstance(doc, dict) or doc.get("format") != FORMAT:
                raise ValueError(f"not a {FORMAT} file")
            embedder, dim, chunks = doc["embedder"], int(doc["dim"]), doc["chunks"]
            matrix = _decode_vectors([c.pop("vector") for c in chunks], dim)
        except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise VectorStoreError(
                f"vector store {self.path} is damaged ({exc}); restore it from a backup "
                "or re-ingest the documents"
            ) from None
        return _Snapshot(embedder, dim, chunks, matrix)

    def _compatible(self, snapshot: _Snapshot) -> _Snapshot:
        if (snapshot.embedder, snapshot.dim) != (self.embedder, self.dim):
            raise VectorStoreError(
                f"vector store {self.path} was built by embedder {snapshot.embedder!r} "
                f"with {snapshot.dim} dimensions, but this service embeds with "
                f"{self.embedder!r} at {self.dim}: re-ingest the documents or restore the "
                "matching EMBEDDING_DIM"
            )
        return snapshot

    # -- writing -------------------------------------------------------------------------
    def _write(self, snapshot: _Snapshot) -> None:
        chunks = [
            {**meta, "vector": vector}
            for meta, vector in zip(snapshot.meta, _encode_vectors(snapshot.matrix), strict=True)
        ]
        document = {"format": FORMAT, "embedder": snapshot.embedder, "dim": snapshot.dim}
        try:
            self._file.write(orjson.dumps({**document, "chunks": chunks}), snapshot)
        except OSError as exc:
            raise VectorStoreError(f"vector store {self.path} cannot be written: {exc}") from exc

    def _without(self, snapshot: _Snapshot, file_ids: set[str]) -> tuple[_Snapshot, int]:
        keep = [i for i, meta in enumerate(snapshot.meta) if meta["file_id"] not in file_ids]
        removed = len(snapshot.meta) - len(keep)
        if not removed:
            return snapshot, 0
        pruned = _Snapshot(
            snapshot.embedder,
            snapshot.dim,
            [snapshot.meta[i] for i in keep],
            snapshot.matrix[keep],
        )
        return pruned, removed

    def add(self, *, file_id: str, workspace: str, texts: list[str], vectors: np.ndarray) -> int:
        """Store a document's chunks, replacing any it had; returns the chunks stored."""
        if vectors.shape != (len(texts), self.dim):
            raise ValueError(f"expected {len(texts)} vectors of {self.dim}, got {vectors.shape}")
        with locked(self.path):
            current = self._snapshot()
            if current.meta:
                self._compatible(current)
            else:
                current = _Snapshot(self.embedder, self.dim)
            base, _ = self._without(current, {file_id})
            meta = chunk_entries(file_id=file_id, workspace=workspace, texts=texts)
            matrix = np.vstack([base.matrix, vectors.astype(np.float32, copy=False)])
            self._write(_Snapshot(self.embedder, self.dim, base.meta + meta, matrix))
        return len(texts)

    def remove(self, file_id: str) -> int:
        return self.remove_many([file_id])

    def remove_many(self, file_ids: Iterable[str]) -> int:
        """Remove every chunk of these documents; returns how many chunks went."""
        wanted = set(file_ids)
        if not wanted:
            return 0
        with locked(self.path):
            snapshot, removed = self._without(self._snapshot(), wanted)
            if removed:
                self._write(snapshot)
        return removed

    # -- queries -------------------------------------------------------------------------
    def search(self, query: np.ndarray, *, workspace: str | None, top_k: int) -> list[ChunkHit]:
        """The top_k chunks by cosine similarity (vectors are unit length), best first."""
        snapshot = self._snapshot()
        if not snapshot.meta or top_k <= 0:
            return []
        self._compatible(snapshot)
        scores = snapshot.matrix @ query.astype(np.float32, copy=False)
        if workspace is not None:
            scores = np.where(snapshot.workspace_mask(workspace), scores, -np.inf)
        k = min(top_k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            ChunkHit(score=float(scores[i]), **snapshot.meta[i])
            for i in top
            if np.isfinite(scores[i])
        ]

    def chunk_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for meta in self._snapshot().meta:
            counts[meta["file_id"]] = counts.get(meta["file_id"], 0) + 1
        return counts

    def count(self) -> int:
        return len(self._snapshot().meta)


def chunk_entries(*, file_id: str, workspace: str, texts: list[str]) -> list[dict]:
    """The metadata vec.json keeps for each of a document's chunks, vector aside."""
    return [
        {
            "chunk_id": f"{file_id}:{index}",
            "file_id": file_id,
            "workspace": workspace,
            "chunk_index": index,
            "text": text,
        }
        for index, text in enumerate(texts)
    ]


def _encode_vectors(matrix: np.ndarray) -> list[str]:
    rows = np.ascontiguousarray(matrix, dtype=_FLOAT)
    if rows.shape[0] and (rows.shape[1] * 4) % 3 == 0:
        # Rows of a multiple of 3 bytes encode without padding: one call, then slice.
        width = rows.shape[1] * 4 // 3 * 4
        encoded = base64.b64encode(rows.tobytes()).decode("ascii")
        return [encoded[i : i + width] for i in range(0, len(encoded), width)]
    return [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]


def _decode_vectors(encoded: list[str], dim: int) -> np.ndarray:
    if not encoded:
        return np.zeros((0, dim), dtype=np.float32)
    if (dim * 4) % 3 == 0:
        raw = base64.b64decode("".join(encoded), validate=True)
    else:
        raw = b"".join(base64.b64decode(item, validate=True) for item in encoded)
    if len(raw) != len(encoded) * dim * 4:
        raise ValueError(f"vectors do not all have {dim} dimensions")
    # Read-only view on the decoded bytes: the store never changes a matrix in place.
    return np.frombuffer(raw, dtype=_FLOAT).reshape(len(encoded), dim)


_store: VectorStore | None = None
_store_lock = threading.Lock()


def get_vector_store() -> VectorStore:
    """The process-wide store for settings.VECTOR_JSON_PATH and the configured embedder."""
    global _store
    embedder = get_embedder()
    store = _store
    if store is None or (store.path, store.embedder, store.dim) != (
        Path(settings.VECTOR_JSON_PATH),
        embedder.name,
        embedder.dim,
    ):
        with _store_lock:
            store = _store = VectorStore(
                settings.VECTOR_JSON_PATH, embedder=embedder.name, dim=embedder.dim
            )
    return store


def reset_vector_store() -> None:
    global _store
    with _store_lock:
        _store = None
