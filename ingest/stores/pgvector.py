"""VECTOR_STORE=pgvector: chunks in the PostgreSQL table `chunks`, beside the registry.

The same interface as the store file (json_file.py) and the same hybrid
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
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo

from common.progress import EVERY, Progress, report
from ingest.exceptions import VectorStoreError
from ingest.search.fusion import K
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
)
from registry.records import DocumentRecord, WorkspaceFilter, workspace_names

logger = logging.getLogger(__name__)

LABEL = "the PostgreSQL table chunks"
# maintenance_work_mem while an import builds the indexes: an HNSW graph built within it
# is built several times faster (100,000 vectors of 384 dimensions take about 200 MB).
BUILD_MEMORY = "512MB"
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


def _index(dim: int) -> str:
    return f"chunks_embedding_hnsw_{int(dim)}"


def create_hnsw_index(cursor: Any, dim: int) -> None:
    """The HNSW index for cosine distance at this dimension, unless it exists (DDL locks
    the table: once per dimension). A role that may not create it (the service's, after
    `grant_app_role`) leaves searches exact and slower, and says so in the log, rather
    than failing the write; `migrate`, `reindex` and `import_vectors` run as the owner
    build it.

    The index is partial, over the rows of this dimension: a reindex rewrites every row
    in one transaction, and the versions it replaced stay in the table until vacuumed,
    where building an index of their cast to the new dimension failed ("expected 256
    dimensions, not 384") once the rows did not fit their pages."""
    cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [_index(dim)])
    if cursor.fetchone() is not None:
        return
    try:
        with transaction.atomic():
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {_index(dim)} ON chunks "
                f"USING hnsw ((embedding::vector({int(dim)})) vector_cosine_ops) "
                f"WHERE vector_dims(embedding) = {int(dim)}"
            )
    except ProgrammingError as exc:  # insufficient privilege: not the table's owner
        logger.warning(
            "the chunks table has no HNSW index for %s dimensions and this role cannot "
            "build it (%s): searches scan every row until the owner runs `manage.py "
            "migrate` (or reindex) with this EMBEDDER",
            dim,
            str(exc).strip(),
        )


def drop_other_hnsw_indexes(cursor: Any, dim: int) -> None:
    """Drop the HNSW indexes made for another dimension than `dim`."""
    cursor.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'chunks' "
        "AND indexname LIKE 'chunks_embedding_hnsw_%%' AND indexname <> %s",
        [_index(dim)],
    )
    for (name,) in cursor.fetchall():
        try:
            with transaction.atomic():
                cursor.execute(f'DROP INDEX "{name}"')
        except ProgrammingError as exc:  # insufficient privilege: not the table's owner
            raise VectorStoreError(
                f"the chunks table has the index {name} for vectors of another dimension, "
                f"and this role cannot drop it ({str(exc).strip()}): run `manage.py "
                f"reindex` as the database owner to move the store to {dim} dimensions"
            ) from None


def copy_chunk_rows(cursor: Any, table: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """COPY rows of (file_id, workspace, chunk_index, context, text, float32 vector) into
    `table`, in binary: each vector goes as its float32s (pgvector's dumper, on this cursor
    only); formatting 100,000 vectors as text took longer than the COPY itself."""
    raw = cursor.cursor
    register_vector_info(raw, TypeInfo.fetch(raw.connection, "vector"))
    with raw.copy(
        f"COPY {table} (file_id, workspace, chunk_index, context, text, embedding) "
        "FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["varchar", "varchar", "int4", "text", "text", "vector"])
        for row in rows:
            copy.write_row(row)


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form; nine significant digits carry a float32 exactly."""
    return "[" + ",".join(f"{value:.9g}" for value in vector.astype(np.float32)) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.array(text.strip("[]").split(","), dtype=np.float32)


def lexeme_query(stems: Iterable[str]) -> str:
    """An OR tsquery of the stems (already stemmed and free of stopwords)."""
    return " | ".join(f"'{stem}'" for stem in dict.fromkeys(stems) if stem.isalnum())


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
            self.require_compatible()
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

    def load(self, documents: list[StoredChunks], *, progress: Progress | None = None) -> int:
        """replace() for a whole store's worth (`import_vectors`): the rows go by COPY,
        in one transaction, and a load at least as large as what the table keeps drops
        the search indexes first and builds them again after (see _drop_search_indexes).
        Returns the chunks loaded."""
        total = sum(len(d.texts) for d in documents)
        with transaction.atomic(), connection.cursor() as cursor:
            self.require_compatible()
            self._claim(cursor, self.embedder, self.dim)
            cursor.execute(
                "DELETE FROM chunks WHERE file_id = ANY(%s)", [[d.file_id for d in documents]]
            )
            cursor.execute("SELECT count(*) FROM chunks")
            rebuilt = _drop_search_indexes(cursor) if total >= cursor.fetchone()[0] else []
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

    def documents(self, file_ids: Collection[str] | None = None) -> list[StoredChunks]:
        where, params = (
            ("", []) if file_ids is None else ("WHERE file_id = ANY(%s)", [list(file_ids)])
        )
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT file_id, workspace, chunk_index, context, text, embedding::text "
                f"FROM chunks {where} ORDER BY file_id, chunk_index",
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
            )
            for file_id, chunks in grouped.items()
        ]

    def chunk_texts(self, file_id: str) -> list[ChunkText]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT chunk_index, context, text FROM chunks WHERE file_id = %s "
                "ORDER BY chunk_index",
                [file_id],
            )
            return [ChunkText(*row) for row in cursor.fetchall()]

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
        stems = _searchable_stems(query_terms)
        if top_k <= 0:
            return Found([], {})
        depth = max(50, 4 * top_k)
        ef_search = int(settings.PGVECTOR_EF_SEARCH)
        vector = vector_literal(query)
        dim = int(self.dim)
        names = workspace_names(workspace)
        only: str | list[str] | None = None
        scope = ""
        if names is not None and len(names) == 1:
            only, scope = next(iter(names)), "AND workspace = %(workspace)s"
        elif names is not None:  # a key's several workspaces
            only, scope = sorted(names), "AND workspace = ANY(%(workspace)s)"
        lexical = LEXICAL.format(scope=scope) if method != "dense" and stems else NOTHING
        dense = DENSE.format(scope=scope, dim=dim) if method != "lexical" else NOTHING
        sql = SEARCH.format(
            weights=WEIGHTS, candidates=CANDIDATES, dense=dense, lexical=lexical, dim=dim
        )
        params = {
            "stems": stems,
            "query": vector,
            "workspace": only,
            "depth": depth,
            "top_k": top_k,
            "method": method,
            "any": lexeme_query(stems) or "x",
        }
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"SET LOCAL hnsw.ef_search = {min(1000, max(ef_search, depth))}; "
                    "SET LOCAL hnsw.iterative_scan = relaxed_order"
                )
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
            )
            done += 1
            if done % EVERY == 0:
                report(progress, "copying", done, total)


def _drop_search_indexes(cursor: Any) -> list[str]:
    """Drop the table's HNSW and GIN indexes; the statements that build them again.

    Building an index over the copied rows at once is several times faster than adding
    each row to it (an HNSW graph most of all), so a load that brings at least as many
    rows as the table keeps drops them first. The table is locked until the commit; a
    smaller load keeps them and the table stays readable.
    """
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks' "
        "AND (indexdef LIKE '%%USING hnsw%%' OR indexdef LIKE '%%USING gin%%')"
    )
    found = cursor.fetchall()
    for name, _ in found:
        cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in found]


ONE = {"dense": 7, "lexical": 8}  # the column of a method's own score


def _searchable_stems(stems: Iterable[str]) -> list[str]:
    """The distinct stems a tsquery can hold (the analyzer's stems are alphanumeric)."""
    return [stem for stem in dict.fromkeys(stems) if stem.isalnum()]


# Each query stem's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)), 0 for a stem no chunk
# holds, as the json store computes it. Below 10,000 rows N and every df are counted.
# Above, N is the planner's row estimate, and the df of a common stem is its frequency
# among the column's most common lexemes, which ANALYZE (and autovacuum) records in
# pg_stats (counting a stem held by a third of 100,000 chunks takes 100 ms). Rarer stems
# are still counted through the GIN index, quickly. A few percent off moves an IDF by less.
WEIGHTS = """
n AS MATERIALIZED (
    SELECT CASE WHEN reltuples >= 10000 THEN reltuples::float8
    ELSE (SELECT count(*) FROM chunks)::float8 END AS n
    FROM pg_class WHERE oid = 'chunks'::regclass
),
common AS MATERIALIZED (
    SELECT e.lexeme, e.freq
    FROM pg_stats s
    CROSS JOIN LATERAL unnest(s.most_common_elems::text::text[], s.most_common_elem_freqs)
        AS e(lexeme, freq)
    WHERE s.schemaname = current_schema() AND s.tablename = 'chunks'
        AND s.attname = 'search' AND (SELECT n FROM n) >= 10000
),
w AS MATERIALIZED (
    SELECT t.lexeme, t.i, t.lexeme::tsquery AS q, f.df,
        CASE WHEN f.df = 0 THEN 0.0::float8
        ELSE ln(1 + (n.n - f.df + 0.5) / (f.df + 0.5)) END AS idf
    FROM unnest(%(stems)s::text[]) WITH ORDINALITY AS t(lexeme, i)
    CROSS JOIN n
    LEFT JOIN common ON common.lexeme = t.lexeme
    CROSS JOIN LATERAL (
        SELECT coalesce(
            common.freq * n.n,
            (SELECT count(*) FROM chunks WHERE search @@ t.lexeme::tsquery)
        )::float8 AS df
    ) AS f
)"""

# A chunk's lexical score: the sum over the query's stems of IDF times ts_rank of that
# stem alone (which grows with the stem's count in the chunk and saturates), BM25's shape
# over the generated tsvector; normalization 0, as chunks are cut to similar lengths.
# Fused, it ranks at MRR@10 0.628 against 0.639 for BM25 in the json store; the variants
# tried (length normalization, ts_rank of the whole query, exact BM25) ranked lower or no
# better: `bench/eval_retrieval.py --store pgvector` measures it.
LEXICAL_SCORE = "coalesce((SELECT sum(w.idf * ts_rank(c.search, w.q, 0)) FROM w), 0.0)"

DENSE = """
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM (
        SELECT id, embedding::vector({dim}) <=> %(query)s::vector({dim}) AS distance
        FROM chunks WHERE vector_dims(embedding) = {dim} {scope}
        ORDER BY distance LIMIT %(depth)s
    ) AS nearest"""

LEXICAL = (
    """
    SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank FROM (
        SELECT c.id, """
    + LEXICAL_SCORE
    + """ AS score
        FROM chunks c WHERE c.search @@ (SELECT q FROM candidates) {scope}
        ORDER BY score DESC, c.id LIMIT %(depth)s
    ) AS best"""
)

# Which chunks the lexical side scores: those holding one of the question's rarest stems,
# taken rarest first while they add up to at most CANDIDATE_ROWS chunks (the rarest one
# always). A chunk holding only common stems scores below one holding a rare one. At
# 100,000 chunks the hybrid search takes 16 ms (p50) with this budget against 150 ms
# scoring every chunk that holds a stem, ranking as well (bench/bench_pgvector.py,
# bench/eval_retrieval.py --store pgvector).
CANDIDATE_ROWS = 1000
CANDIDATES = (
    """
candidates AS MATERIALIZED (
    SELECT coalesce(
        (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | '))
         FROM (SELECT lexeme, df, sum(df) OVER (ORDER BY df, lexeme) AS running
               FROM w WHERE df > 0) AS rarest
         WHERE running - df < """
    + str(CANDIDATE_ROWS)
    + """),
        to_tsquery('simple', %(any)s)
    ) AS q
)"""
)

NOTHING = "SELECT NULL::bigint AS id, NULL::bigint AS rank WHERE FALSE"

# The nearest chunks by the HNSW index (re-sorted: an iterative scan may return them
# slightly out of order) and the best lexical matches, both filtered by workspace inside
# the query, fused by reciprocal rank fusion (ingest/search/fusion.py: 1 / (60 + rank), ties
# by row id) or ranked by one of them; with each hit its cosine similarity, its lexical
# score, which embedder built the store, and the query stems' weights.
SEARCH = (
    """
WITH {weights}, {candidates},
dense AS MATERIALIZED ({dense}),
lexical AS MATERIALIZED ({lexical}),
fused AS (
    SELECT id,
        CASE %(method)s
            WHEN 'dense' THEN -d.rank::float8
            WHEN 'lexical' THEN -l.rank::float8
            ELSE coalesce(1.0::float8 / ("""
    + str(K)
    + """ + d.rank), 0.0)
                + coalesce(1.0::float8 / ("""
    + str(K)
    + """ + l.rank), 0.0)
        END AS fused
    FROM dense d FULL JOIN lexical l USING (id)
    ORDER BY fused DESC, id LIMIT %(top_k)s
)
SELECT c.id, c.file_id, c.workspace, c.chunk_index, c.context, c.text, f.fused,
    1 - (c.embedding::vector({dim}) <=> %(query)s::vector({dim})),
    """
    + LEXICAL_SCORE
    + """,
    s.embedder, s.dim, (SELECT array_agg(w.idf ORDER BY w.i) FROM w)
FROM fused f JOIN chunks c ON c.id = f.id LEFT JOIN chunk_store s ON s.id = 1
ORDER BY f.fused DESC, c.id"""
)
