"""The SQL of the pgvector store (pgvector.py): its search statement and the parts it is
made of, the HNSW and GIN indexes' DDL, and the COPY of chunk rows."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from django.db import ProgrammingError, transaction
from pgvector.psycopg.vector import register_vector_info
from psycopg.types import TypeInfo

from ingest.exceptions import VectorStoreError
from ingest.search.fusion import K

logger = logging.getLogger("ingest.stores.pgvector")

# maintenance_work_mem while an import builds the indexes: an HNSW graph built within it
# is built several times faster (100,000 vectors of 384 dimensions take about 200 MB).
BUILD_MEMORY = "512MB"


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
    """COPY rows of (file_id, workspace, chunk_index, context, text, float32 vector,
    first_page, last_page, title) into `table`, in binary: each vector goes as its float32s
    (pgvector's dumper, on this cursor only); formatting 100,000 vectors as text took
    longer than the COPY itself."""
    raw = cursor.cursor
    register_vector_info(raw, TypeInfo.fetch(raw.connection, "vector"))
    with raw.copy(
        f"COPY {table} (file_id, workspace, chunk_index, context, text, embedding, "
        "first_page, last_page, title) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(
            ["varchar", "varchar", "int4", "text", "text", "vector", "int4", "int4", "text"]
        )
        for row in rows:
            copy.write_row(row)


def vector_literal(vector: np.ndarray) -> str:
    """pgvector's text form; nine significant digits carry a float32 exactly."""
    return "[" + ",".join(f"{value:.9g}" for value in vector.astype(np.float32)) + "]"


def parse_vector(text: str) -> np.ndarray:
    return np.array(text.strip("[]").split(","), dtype=np.float32)


def drop_search_indexes(cursor: Any) -> list[str]:
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


def searchable_stems(stems: Iterable[str]) -> list[str]:
    """The distinct stems a tsquery can hold (the analyzer's stems are alphanumeric)."""
    return [stem for stem in dict.fromkeys(stems) if stem.isalnum()]


# Each query stem's BM25 IDF, log(1 + (N - df + 0.5) / (df + 0.5)), 0 for a stem no chunk
# holds, as the json store computes it. Below 10,000 rows N and every df are counted.
# Above, N is the planner's row estimate, and the df of a common stem is its frequency
# among the column's most common lexemes, which ANALYZE (and autovacuum) records in
# pg_stats (counting a stem held by a third of 100,000 chunks takes 100 ms); migration
# 0009 has ANALYZE list every stem held by more than about 0.025% of the chunks, not 0.6%.
# Rarer stems are still counted through the GIN index, quickly (at most a few hundred
# chunks at a million). A few percent off moves an IDF by less.
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
        AND e.lexeme = ANY(%(stems)s::text[])
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
# The tsvector weighs its fields (migration 0008): the document's name A, the headings B,
# the text D. ts_rank counts a stem's best-weighted occurrence in full and the others at
# 1/n², so a field weighs more here than the same weight in the store file's BM25F
# (ingest/search/lexical.py, 3 and 3): at 2 and 2 times the text's 0.1 (ts_rank's own
# default for D) the PostgreSQL manual's 200 index terms rank best, hit@1 130 against
# 121 without fields and 118 at 3 and 3, and its 56 questions at MRR@10 0.667 against
# 0.655 (bench/eval_relevance.py --store pgvector, these constants changed).
CONTEXT_WEIGHT = 2
TITLE_WEIGHT = 2


def field_weights() -> str:
    """ts_rank's weights of D, C, B and A."""
    return f"ARRAY[0.1, 0.1, {0.1 * CONTEXT_WEIGHT:.2f}, {0.1 * TITLE_WEIGHT:.2f}]::float4[]"


LEXICAL_SCORE = (
    "coalesce((SELECT sum(w.idf * ts_rank(" + field_weights() + ", c.search, w.q, 0)) FROM w), 0.0)"
)

DENSE = """
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM (
        SELECT id, embedding::vector({dim}) <=> %(query)s::vector({dim}) AS distance
        FROM chunks WHERE vector_dims(embedding) = {dim} {scope}
        ORDER BY distance LIMIT %(depth)s
    ) AS nearest"""

# Which chunks the lexical side scores: those holding one of the question's rarest stems,
# taken rarest first while they add up to at most CANDIDATE_ROWS chunks (`rare`), and
# those holding the next stem (`next`), at most CANDIDATE_ROWS of them. A chunk holding
# only common stems scores below one holding a rare one. At 100,000 chunks the hybrid
# search took 16 ms (p50) with this budget against 150 ms scoring every chunk that holds
# a stem, ranking as well (bench/bench_pgvector.py, bench/eval_retrieval.py --store
# pgvector). The next stem is the one that takes the sum past the budget, or the rarest
# when even it is held by more chunks (every stem of the question is common: at a million
# chunks, most questions); held by more than CANDIDATE_ROWS chunks, only those also holding
# another of the question's stems count, which score above those holding it alone, and
# of them the first CANDIDATE_ROWS found in the table: reading and ranking every chunk
# holding a common stem took 200 ms for 94,000 of them at a million chunks. The scan that
# finds them starts at the table's first page (synchronize_seqscans off), so a question
# is given the same chunks each time.
CANDIDATE_ROWS = 1000
CANDIDATES = f"""
stems_by_rarity AS (
    SELECT lexeme, df, sum(df) OVER (ORDER BY df, lexeme) AS running,
        row_number() OVER (ORDER BY df, lexeme) AS place
    FROM w WHERE df > 0
),
candidates AS MATERIALIZED (
    SELECT
        (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | '))
         FROM stems_by_rarity WHERE running <= {CANDIDATE_ROWS}) AS rare,
        (SELECT to_tsquery('simple', quote_literal(s.lexeme)
            || CASE WHEN s.df <= {CANDIDATE_ROWS} THEN '' ELSE coalesce(' & (' || (
                SELECT string_agg(quote_literal(o.lexeme), ' | ')
                FROM stems_by_rarity o WHERE o.lexeme <> s.lexeme) || ')', '') END)
         FROM stems_by_rarity s WHERE s.running > {CANDIDATE_ROWS}
         ORDER BY s.place LIMIT 1) AS next
)"""

LEXICAL = (
    """
    SELECT id, row_number() OVER (ORDER BY score DESC, id) AS rank FROM (
        SELECT c.id, """
    + LEXICAL_SCORE
    + """ AS score
        FROM (
            SELECT id, search FROM chunks WHERE search @@ (SELECT rare FROM candidates) {scope}
            UNION ALL (
                SELECT id, search FROM chunks
                WHERE search @@ (SELECT next FROM candidates) {scope}
                    AND NOT coalesce(search @@ (SELECT rare FROM candidates), FALSE)
                LIMIT """
    + str(CANDIDATE_ROWS)
    + """
            )
        ) AS c
        ORDER BY score DESC, c.id LIMIT %(depth)s
    ) AS best"""
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
    s.embedder, s.dim, (SELECT array_agg(w.idf ORDER BY w.i) FROM w),
    c.first_page, c.last_page
FROM fused f JOIN chunks c ON c.id = f.id LEFT JOIN chunk_store s ON s.id = 1
ORDER BY f.fused DESC, c.id"""
)


def search_statement(
    query: np.ndarray,
    stems: list[str],
    *,
    dim: int,
    workspace: str | list[str] | None,
    top_k: int,
    method: str,
    ef_search: int,
) -> tuple[str, str, dict[str, Any]]:
    """The settings of the HNSW scan, the search statement (SEARCH) and its parameters,
    for the searchable `stems` within one workspace, several, or all (None)."""
    depth = max(50, 4 * top_k)
    scope = ""
    if isinstance(workspace, str):
        scope = "AND workspace = %(workspace)s"
    elif workspace is not None:  # a key's several workspaces
        scope = "AND workspace = ANY(%(workspace)s)"
    lexical = LEXICAL.format(scope=scope) if method != "dense" and stems else NOTHING
    dense = DENSE.format(scope=scope, dim=int(dim)) if method != "lexical" else NOTHING
    sql = SEARCH.format(
        weights=WEIGHTS, candidates=CANDIDATES, dense=dense, lexical=lexical, dim=int(dim)
    )
    settings = (
        f"SET LOCAL hnsw.ef_search = {min(1000, max(int(ef_search), depth))}; "
        "SET LOCAL hnsw.iterative_scan = relaxed_order; "
        "SET LOCAL synchronize_seqscans = off"  # the same candidates each time (CANDIDATES)
    )
    params = {
        "stems": stems,
        "query": vector_literal(query),
        "workspace": workspace,
        "depth": depth,
        "top_k": top_k,
        "method": method,
    }
    return settings, sql, params
