"""VECTOR_STORE=pgvector: chunks in the PostgreSQL table `chunks`, beside the registry.

The same interface as the json store (ingest/vector_store.py) and the same hybrid
ranking: the nearest chunks by an HNSW index for cosine distance, the best full-text
matches over a generated `tsvector` (GIN index), fused by reciprocal rank fusion, with
the workspace filtered inside both queries. `hnsw.iterative_scan` (pgvector 0.8) keeps
a filtered HNSW scan going until it has its rows, so a small workspace still gets top_k.

The embedding column is an unconstrained `vector`; the HNSW index is an expression index
on `embedding::vector(dim)` for the store's dimension, created on the first write, so a
reindex to another model needs no migration. Which embedder built the store is kept in
the one-row table `chunk_store`.

Each method runs on the calling thread's database connection, inside its transaction
when there is one: the ingest and delete services write a document's row and its chunks
in one transaction, and the chunks' foreign key cascades a row's deletion.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from django.db import ProgrammingError, connection, transaction

from ingest.exceptions import VectorStoreError
from ingest.retrieval import fuse
from ingest.vector_store import ChunkHit, SharedStoreMethods, StoredChunks, check_built_by


class TableLabel(str):
    """Where the store is, for messages: what `path` and `path.name` are for a file."""

    @property
    def name(self) -> str:
        return str(self)


LABEL = TableLabel("the PostgreSQL table chunks")
MISSING = (
    "VECTOR_STORE=pgvector needs the PostgreSQL extension pgvector ('vector'), and this "
    "database has no chunks table: install pgvector on the server, run CREATE EXTENSION "
    "vector as the database owner, then `manage.py migrate ingest zero` and `manage.py "
    "migrate ingest`; or set VECTOR_STORE=json"
)


def _index(dim: int) -> str:
    return f"chunks_embedding_hnsw_{int(dim)}"


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form; nine significant digits carry a float32 exactly."""
    return "[" + ",".join(f"{value:.9g}" for value in vector.astype(np.float32)) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.array(text.strip("[]").split(","), dtype=np.float32)


def lexeme_query(stems: Iterable[str]) -> str:
    """An OR tsquery of the stems (already stemmed and free of stopwords)."""
    return " | ".join(f"'{stem}'" for stem in dict.fromkeys(stems) if stem.isalnum())


class PgVectorStore(SharedStoreMethods):
    transactional = True  # rows and chunks are written in one transaction

    def __init__(self, *, embedder: str, dim: int) -> None:
        self.embedder = embedder
        self.dim = dim
        self.path = LABEL  # shown where the json store shows its file

    # -- bookkeeping ---------------------------------------------------------------------
    def built_by(self) -> tuple[str, int] | None:
        with connection.cursor() as cursor:
            try:
                with transaction.atomic():
                    cursor.execute("SELECT embedder, dim FROM chunk_store WHERE id = 1")
            except ProgrammingError:
                raise VectorStoreError(MISSING) from None
            row = cursor.fetchone()
            if row is None:
                return None
            cursor.execute("SELECT EXISTS (SELECT 1 FROM chunks)")
            return (row[0], row[1]) if cursor.fetchone()[0] else None

    def _check(self) -> None:
        check_built_by(LABEL, self.built_by(), self.embedder, self.dim)

    def _claim(self, cursor: Any, embedder: str, dim: int) -> None:
        cursor.execute(
            "INSERT INTO chunk_store (id, embedder, dim) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET embedder = EXCLUDED.embedder, dim = EXCLUDED.dim",
            [embedder, dim],
        )
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [_index(dim)])
        if cursor.fetchone() is None:  # once per dimension: DDL locks the table
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {_index(dim)} ON chunks "
                f"USING hnsw ((embedding::vector({dim})) vector_cosine_ops)"
            )

    # -- writing -------------------------------------------------------------------------
    def replace(self, documents: list[StoredChunks]) -> int:
        rows = []
        for document in documents:
            if document.vectors.shape != (len(document.texts), self.dim):
                raise ValueError(f"expected vectors of {self.dim} for {document.file_id}")
            for position, (index, text) in enumerate(
                zip(document.indexes, document.texts, strict=True)
            ):
                rows.append(
                    (
                        document.file_id,
                        document.workspace,
                        index,
                        document.context(position),
                        text,
                        vector_literal(document.vectors[position]),
                    )
                )
        with transaction.atomic(), connection.cursor() as cursor:
            self._check()
            self._claim(cursor, self.embedder, self.dim)
            cursor.execute(
                "DELETE FROM chunks WHERE file_id = ANY(%s)", [[d.file_id for d in documents]]
            )
            cursor.executemany(
                "INSERT INTO chunks (file_id, workspace, chunk_index, context, text, embedding) "
                "VALUES (%s, %s, %s, %s, %s, %s::vector)",
                rows,
            )
        return len(rows)

    def remove_many(self, file_ids: Iterable[str]) -> int:
        wanted = list(set(file_ids))
        if not wanted:
            return 0
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM chunks WHERE file_id = ANY(%s)", [wanted])
            return cursor.rowcount

    def reembed(
        self, vectors_for: Callable[[list[dict[str, Any]]], np.ndarray], *, embedder: str, dim: int
    ) -> int:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE chunks IN SHARE ROW EXCLUSIVE MODE")
            chunks = self._meta(cursor, "ORDER BY id")
            ids = [chunk.pop("id") for chunk in chunks]
            matrix = vectors_for(chunks)
            if matrix.shape != (len(chunks), dim):
                raise ValueError(f"expected {len(chunks)} vectors of {dim}")
            cursor.executemany(
                "UPDATE chunks SET embedding = %s::vector WHERE id = %s",
                [(vector_literal(v), i) for v, i in zip(matrix, ids, strict=True)],
            )
            self._claim(cursor, embedder, dim)
        return len(ids)

    # -- reading -------------------------------------------------------------------------
    @staticmethod
    def _meta(cursor: Any, tail: str = "", params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        cursor.execute(
            "SELECT id, file_id, workspace, chunk_index, context, text FROM chunks " + tail,
            params,
        )
        return [
            {
                "id": row[0],
                "chunk_id": f"{row[1]}:{row[3]}",
                "file_id": row[1],
                "workspace": row[2],
                "chunk_index": row[3],
                "context": row[4],
                "text": row[5],
            }
            for row in cursor.fetchall()
        ]

    def chunks(self) -> list[dict[str, Any]]:
        with connection.cursor() as cursor:
            chunks = self._meta(cursor, "ORDER BY id")
        for chunk in chunks:
            chunk.pop("id")
        return chunks

    def chunks_of(self, file_id: str) -> StoredChunks | None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT workspace, chunk_index, context, text, embedding::text FROM chunks "
                "WHERE file_id = %s ORDER BY chunk_index",
                [file_id],
            )
            rows = cursor.fetchall()
        if not rows:
            return None
        self._check()
        return StoredChunks(
            file_id=file_id,
            workspace=rows[0][0],
            indexes=[row[1] for row in rows],
            texts=[row[3] for row in rows],
            vectors=np.vstack([parse_vector(row[4]) for row in rows]),
            contexts=[row[2] for row in rows],
        )

    def chunk_counts(self) -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT file_id, count(*) FROM chunks GROUP BY file_id")
            return {file_id: count for file_id, count in cursor.fetchall()}

    def count_of(self, file_ids: Iterable[str]) -> dict[str, int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT file_id, count(*) FROM chunks WHERE file_id = ANY(%s) GROUP BY file_id",
                [list(set(file_ids))],
            )
            return {file_id: count for file_id, count in cursor.fetchall()}

    def count(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM chunks")
            return int(cursor.fetchone()[0])

    def term_weights(self, stems: Iterable[str]) -> dict[str, float]:
        """Each stem's BM25 IDF among the stored chunks, counted through the GIN index."""
        stems = [stem for stem in dict.fromkeys(stems) if stem.isalnum()]
        if not stems:
            return {}
        counts = ", ".join("count(*) FILTER (WHERE search @@ %s::tsquery)" for _ in stems)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM chunks")
            total = int(cursor.fetchone()[0])
            cursor.execute(
                f"SELECT {counts} FROM chunks WHERE search @@ to_tsquery('simple', %s)",
                [*(f"'{stem}'" for stem in stems), lexeme_query(stems)],
            )
            found = cursor.fetchone()
        return {
            stem: float(np.log1p((total - df + 0.5) / (df + 0.5))) if df else 0.0
            for stem, df in zip(stems, found, strict=True)
        }

    def search(
        self,
        query: np.ndarray,
        query_terms: Sequence[str],
        *,
        workspace: str | None,
        top_k: int,
        method: str = "hybrid",
    ) -> list[ChunkHit]:
        if top_k <= 0:
            return []
        depth = max(50, 4 * top_k)
        vector = vector_literal(query)
        scope = "AND workspace = %s" if workspace is not None else ""
        scoped = [workspace] if workspace is not None else []
        lexemes = lexeme_query(query_terms)
        with transaction.atomic(), connection.cursor() as cursor:
            self._check()
            cursor.execute(f"SET LOCAL hnsw.ef_search = {max(40, depth)}")
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            rankings = {}
            if method in ("hybrid", "dense"):
                cursor.execute(
                    f"SELECT id, 1 - (embedding::vector({self.dim}) <=> %s::vector({self.dim})) "
                    f"FROM chunks WHERE TRUE {scope} "
                    f"ORDER BY embedding::vector({self.dim}) <=> %s::vector({self.dim}) LIMIT %s",
                    [vector, *scoped, vector, depth],
                )
                rankings["dense"] = [(row[0], float(row[1])) for row in cursor.fetchall()]
            if method in ("hybrid", "lexical") and lexemes:
                cursor.execute(
                    "SELECT id, ts_rank(search, q, 1) AS rank "
                    "FROM chunks, to_tsquery('simple', %s) q "
                    f"WHERE search @@ q {scope} ORDER BY rank DESC, id LIMIT %s",
                    [lexemes, *scoped, depth],
                )
                rankings["lexical"] = [(row[0], float(row[1])) for row in cursor.fetchall()]
            ranked = (fuse(rankings.values()) if method == "hybrid" else rankings.get(method, []))[
                :top_k
            ]
            if not ranked:
                return []
            cursor.execute(
                "SELECT id, file_id, workspace, chunk_index, context, text, "
                f"1 - (embedding::vector({self.dim}) <=> %s::vector({self.dim})), "
                "CASE WHEN %s = '' THEN 0 ELSE ts_rank(search, to_tsquery('simple', %s), 1) END "
                "FROM chunks WHERE id = ANY(%s)",
                [vector, lexemes, lexemes or "x", [row for row, _ in ranked]],
            )
            details = {row[0]: row for row in cursor.fetchall()}
        return [
            ChunkHit(
                chunk_id=f"{details[row][1]}:{details[row][3]}",
                file_id=details[row][1],
                workspace=details[row][2],
                chunk_index=details[row][3],
                context=details[row][4],
                text=details[row][5],
                score=round(score, 6),
                dense=float(details[row][6]),
                lexical=float(details[row][7]),
            )
            for row, score in ranked
            if row in details
        ]
