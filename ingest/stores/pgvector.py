"""VECTOR_STORE=pgvector: chunks in the PostgreSQL table `chunks`, beside the registry.

The same interface as the store file (vector_file.py) and the same hybrid
ranking: the nearest chunks by an HNSW index for cosine distance, the best full-text
matches over a generated `tsvector` (GIN index), fused by reciprocal rank fusion, with
the workspace filtered inside both queries. `hnsw.iterative_scan` (pgvector 0.8) keeps
a filtered HNSW scan going until it has its rows, so a small workspace still gets top_k.

The embedding column is an unconstrained `vector`; the HNSW index is an expression index
on `embedding::vector(dim)` for the store's dimension, created on the first write, so a
reindex to another model needs no migration. Which embedder built the store is kept in
the one-row table `chunk_store`.

Each method runs on the calling thread's database connection, inside its transaction
when there is one: a document's row and its chunks are written in one transaction
(`write_document`), and the chunks' foreign key cascades a row's deletion.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import psycopg.errors
from django.conf import settings
from django.db import DataError, ProgrammingError, connection, transaction

from common.progress import EVERY, Progress, report
from ingest.exceptions import VectorStoreError
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
from ingest.stores.pgvector_sql import (
    BUILD_MEMORY,
    ONE,
    copy_chunk_rows,
    create_hnsw_index,
    drop_other_hnsw_indexes,
    drop_search_indexes,
    parse_vector,
    search_statement,
    searchable_stems,
    vector_literal,
)
from registry.records import DocumentRecord, WorkspaceFilter, workspace_names

logger = logging.getLogger(__name__)

LABEL = "the PostgreSQL table chunks"
MISSING = (
    "VECTOR_STORE=pgvector needs the PostgreSQL extension pgvector ('vector'), and this "
    "database has no chunks table: install pgvector on the server, run CREATE EXTENSION "
    "vector as the database owner, then `manage.py migrate ingest zero` and `manage.py "
    "migrate ingest`; or set VECTOR_STORE=json"
)


def _raise_if_missing(exc: ProgrammingError) -> None:
    """VectorStoreError(MISSING) when the error says the table does not exist; any other
    (a role without its grants, say) is the database's own error."""
    if isinstance(exc.__cause__, psycopg.errors.UndefinedTable):
        raise VectorStoreError(MISSING) from None


class PgVectorStore(VectorStore):
    thread_sensitive: ClassVar[bool] = True

    @property
    def label(self) -> str:
        return LABEL

    # -- bookkeeping ---------------------------------------------------------------------
    def built_by(self) -> tuple[str, int] | None:
        with connection.cursor() as cursor:
            try:
                with transaction.atomic():
                    cursor.execute("SELECT embedder, dim FROM chunk_store WHERE id = 1")
            except ProgrammingError as exc:
                _raise_if_missing(exc)
                raise
            row = cursor.fetchone()
            if row is None:
                return None
            cursor.execute("SELECT EXISTS (SELECT 1 FROM chunks)")
            return (row[0], row[1]) if cursor.fetchone()[0] else None

    def _claim(self, cursor: Any, embedder: str, dim: int) -> None:
        """Record (embedder, dim) as the store's, with the HNSW index for dim and none for
        another dimension (an index on vector(384) refuses rows of 768). Called before
        rows of a new dimension are written, and only when no rows of another remain (or
        all are being rewritten: reembed)."""
        drop_other_hnsw_indexes(cursor, dim)
        cursor.execute(
            "INSERT INTO chunk_store (id, embedder, dim) VALUES (1, %s, %s) "
            "ON CONFLICT (id) DO UPDATE SET embedder = EXCLUDED.embedder, dim = EXCLUDED.dim",
            [embedder, dim],
        )
        create_hnsw_index(cursor, dim)

    # -- the services' units of work -----------------------------------------------------
    def write_document(
        self, chunks: StoredChunks, write_row: WriteRow
    ) -> tuple[DocumentRecord, bool]:
        """The row, then its chunks (the foreign key wants the row), in one transaction."""
        with transaction.atomic():
            stored, kept = write_row()
            if kept:
                self.replace([chunks])
        return stored, kept

    def remove_documents(self, file_ids: Collection[str], delete_rows: DeleteRows) -> Removed:
        """The rows, and with them their chunks (the foreign key cascades), in one
        transaction."""
        with transaction.atomic():
            counts = self.chunk_counts(file_ids)
            documents = delete_rows(file_ids)
        return Removed(documents, sum(counts.get(d.file_id, 0) for d in documents))

    # -- bulk writes ---------------------------------------------------------------------
    def replace(self, documents: list[StoredChunks]) -> int:
        rows = []
        for document in documents:
            if document.vectors.shape != (len(document.texts), self.dim):
                raise ValueError(f"expected vectors of {self.dim} for {document.file_id}")
            for position, (index, text) in enumerate(
                zip(document.indexes, document.texts, strict=True)
            ):
                first, last = document.page_span(position) or (None, None)
                rows.append(
                    (
                        document.file_id,
                        document.workspace,
                        index,
                        document.context(position),
                        text,
                        vector_literal(document.vectors[position]),
                        first,
                        last,
                        document.title,
                    )
                )
        with transaction.atomic(), connection.cursor() as cursor:
            self.require_compatible()
            self._claim(cursor, self.embedder, self.dim)
            cursor.execute(
                "DELETE FROM chunks WHERE file_id = ANY(%s)", [[d.file_id for d in documents]]
            )
            cursor.executemany(
                "INSERT INTO chunks (file_id, workspace, chunk_index, context, text, embedding, "
                "first_page, last_page, title) "
                "VALUES (%s, %s, %s, %s, %s, %s::vector, %s, %s, %s)",
                rows,
            )
        return len(rows)

    def load(self, documents: list[StoredChunks], *, progress: Progress | None = None) -> int:
        """replace() for a whole store's worth (`import_vectors`): the rows go by COPY,
        in one transaction, and a load at least as large as what the table keeps drops
        the search indexes first and builds them again after (see pgvector_sql.drop_search_indexes).
        Returns the chunks loaded."""
        total = sum(len(d.texts) for d in documents)
        with transaction.atomic(), connection.cursor() as cursor:
            self.require_compatible()
            self._claim(cursor, self.embedder, self.dim)
            cursor.execute(
                "DELETE FROM chunks WHERE file_id = ANY(%s)", [[d.file_id for d in documents]]
            )
            cursor.execute("SELECT count(*) FROM chunks")
            rebuilt = drop_search_indexes(cursor) if total >= cursor.fetchone()[0] else []
            copy_chunk_rows(cursor, "chunks", _copy_rows(documents, progress, total))
            report(progress, "copying", total, total)
            if rebuilt:
                cursor.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
                for number, definition in enumerate(rebuilt):
                    report(progress, "indexing", number, len(rebuilt))
                    cursor.execute(definition)
                report(progress, "indexing", len(rebuilt), len(rebuilt))
        return total

    def remove_chunks(self, file_ids: Iterable[str]) -> int:
        wanted = list(set(file_ids))
        if not wanted:
            return 0
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM chunks WHERE file_id = ANY(%s)", [wanted])
            return cursor.rowcount

    def reembed(self, vectors_for: VectorsFor, *, embedder: str, dim: int) -> int:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE chunks IN SHARE ROW EXCLUSIVE MODE")
            chunks = self._meta(cursor, "ORDER BY id")
            ids = [chunk.pop("id") for chunk in chunks]
            matrix = vectors_for(chunks)
            if matrix.shape != (len(chunks), dim):
                raise ValueError(f"expected {len(chunks)} vectors of {dim}")
            drop_other_hnsw_indexes(cursor, dim)  # before rows of a new dimension
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
            "SELECT id, file_id, workspace, chunk_index, context, text, first_page, last_page "
            "FROM chunks " + tail,
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
                **({"pages": [row[6], row[7]]} if row[6] is not None else {}),
            }
            for row in cursor.fetchall()
        ]

    def chunks(self) -> list[dict[str, Any]]:
        with connection.cursor() as cursor:
            chunks = self._meta(cursor, "ORDER BY id")
        for chunk in chunks:
            chunk.pop("id")
        return chunks

    def documents(self, file_ids: Collection[str] | None = None) -> list[StoredChunks]:
        where, params = (
            ("", []) if file_ids is None else ("WHERE file_id = ANY(%s)", [list(file_ids)])
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT file_id, workspace, chunk_index, context, text, embedding::text, "
                f"first_page, last_page, title FROM chunks {where} "
                "ORDER BY file_id, chunk_index",
                params,
            )
            rows = cursor.fetchall()
        if rows:
            self.require_compatible()
        grouped: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            grouped.setdefault(row[0], []).append(row)
        return [
            StoredChunks(
                file_id=file_id,
                workspace=chunks[0][1],
                indexes=[c[2] for c in chunks],
                texts=[c[4] for c in chunks],
                vectors=np.vstack([parse_vector(c[5]) for c in chunks]),
                contexts=[c[3] for c in chunks],
                pages=[page_span(c[6:8]) for c in chunks],
                title=chunks[0][8],
            )
            for file_id, chunks in grouped.items()
        ]

    def chunk_texts(self, file_id: str) -> list[ChunkText]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT chunk_index, context, text, first_page, last_page FROM chunks "
                "WHERE file_id = %s ORDER BY chunk_index",
                [file_id],
            )
            return [
                ChunkText(index, context, text, page_span((first, last)))
                for index, context, text, first, last in cursor.fetchall()
            ]

    def titles(self) -> dict[str, str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT file_id, min(title) FROM chunks GROUP BY file_id")
            return dict(cursor.fetchall())

    def chunk_counts(self, file_ids: Collection[str] | None = None) -> dict[str, int]:
        where, params = (
            ("", []) if file_ids is None else ("WHERE file_id = ANY(%s)", [list(set(file_ids))])
        )
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT file_id, count(*) FROM chunks {where} GROUP BY file_id", params)
            return {file_id: count for file_id, count in cursor.fetchall()}

    def search(
        self,
        query: np.ndarray,
        query_terms: Sequence[str],
        *,
        workspace: WorkspaceFilter,
        top_k: int,
        method: str = "hybrid",
    ) -> Found:
        """The search and the query terms' weights in one statement (see SEARCH), after
        one statement of settings for the HNSW scan."""
        stems = searchable_stems(query_terms)
        if top_k <= 0:
            return Found([], {})
        names = workspace_names(workspace)
        only: str | list[str] | None = None
        if names is not None:
            only = next(iter(names)) if len(names) == 1 else sorted(names)
        setup, sql, params = search_statement(
            query,
            stems,
            dim=int(self.dim),
            workspace=only,
            top_k=top_k,
            method=method,
            ef_search=int(settings.PGVECTOR_EF_SEARCH),
        )
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(setup)
                cursor.execute(sql, params)
                rows = cursor.fetchall()
        except ProgrammingError as exc:
            _raise_if_missing(exc)
            raise
        except DataError:  # vectors of another dimension: say so, as the json store does
            self.require_compatible()
            raise
        if not rows:
            return Found([], {})
        check_built_by(LABEL, (rows[0][9], rows[0][10]), self.embedder, self.dim)
        weights = dict(zip(stems, (float(idf) for idf in rows[0][11] or []), strict=False))
        hits = [
            ChunkHit(
                chunk_id=f"{row[1]}:{row[3]}",
                file_id=row[1],
                workspace=row[2],
                chunk_index=row[3],
                context=row[4],
                text=row[5],
                score=round(float(row[6 if method == "hybrid" else ONE[method]]), 6),
                dense=float(row[7]),
                lexical=float(row[8]),
                pages=page_span(row[12:14]),
            )
            for row in rows
        ]
        return Found(hits, weights)


def _copy_rows(
    documents: list[StoredChunks], progress: Progress | None, total: int
) -> Iterator[tuple[Any, ...]]:
    """The documents' chunks as COPY rows, reporting every EVERY rows."""
    done = 0
    for document in documents:
        vectors = document.vectors.astype(np.float32, copy=False)
        for position, index in enumerate(document.indexes):
            yield (
                document.file_id,
                document.workspace,
                index,
                document.context(position),
                document.texts[position],
                vectors[position],
                *(document.page_span(position) or (None, None)),
                document.title,
            )
            done += 1
            if done % EVERY == 0:
                report(progress, "copying", done, total)
