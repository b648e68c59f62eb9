"""Moving vectors between the store file (VECTOR_JSON_PATH) and the pgvector table, for
the cutover to VECTOR_STORE=pgvector and the rollback from it.

`import_vectors` copies a store file into `chunks` with COPY, in one transaction: each
document it holds replaces that document's chunks, so a second run leaves the table as
it was. Chunks of documents the registry lacks are reported and left out (their rows
must exist: the foreign key). An import at least as large as what the table keeps
rebuilds the search indexes after the COPY instead of updating them row by row.
`export_vectors` writes the table back to a store file, atomically. Ids, texts, headings
and vectors survive both ways to the bit: pgvector prints a float4 in the shortest form
that reads back as the same float.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from django.db import connection, transaction

from ingest.embeddings import get_embedder
from ingest.exceptions import VectorStoreError
from ingest.pg_vector_store import PgVectorStore, copy_chunk_rows, parse_vector
from ingest.vector_store import StoredChunks, VectorStore, check_built_by
from registry.backends import get_backend
from registry.progress import EVERY, Progress, report

# maintenance_work_mem while an import builds the indexes: an HNSW graph built within it
# is built several times faster (100,000 vectors of 384 dimensions take about 200 MB).
BUILD_MEMORY = "512MB"


@dataclass(frozen=True)
class Moved:
    documents: int
    chunks: int
    unknown: list[str]  # documents of the file the registry does not hold, left out


def _pg_store() -> PgVectorStore:
    embedder = get_embedder()
    return PgVectorStore(embedder=embedder.name, dim=embedder.dim)


def import_vectors(path: Path, *, progress: Progress | None = None) -> Moved:
    embedder = get_embedder()
    source = VectorStore(path, embedder=embedder.name, dim=embedder.dim)
    if not path.exists():
        raise VectorStoreError(f"vector store {path} does not exist")
    check_built_by(str(path), source.built_by(), embedder.name, embedder.dim)
    documents = source.documents()
    known = get_backend().get_many([d.file_id for d in documents])
    wanted = [d for d in documents if d.file_id in known]
    unknown = sorted(d.file_id for d in documents if d.file_id not in known)
    total = sum(len(d.texts) for d in wanted)
    store = _pg_store()
    with transaction.atomic(), connection.cursor() as cursor:
        store._check()
        store._claim(cursor, embedder.name, embedder.dim)
        cursor.execute("DELETE FROM chunks WHERE file_id = ANY(%s)", [[d.file_id for d in wanted]])
        cursor.execute("SELECT count(*) FROM chunks")
        rebuilt = _drop_search_indexes(cursor) if total >= cursor.fetchone()[0] else []
        copy_chunk_rows(cursor, "chunks", _rows(wanted, progress, total))
        report(progress, "copying", total, total)
        if rebuilt:
            cursor.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
            for number, definition in enumerate(rebuilt):
                report(progress, "indexing", number, len(rebuilt))
                cursor.execute(definition)
            report(progress, "indexing", len(rebuilt), len(rebuilt))
    return Moved(len(wanted), total, unknown)


def _rows(
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
    each row to it (an HNSW graph most of all), so an import that brings at least as many
    rows as the table keeps drops them first. The table is locked until the commit; a
    smaller import keeps them and the table stays readable.
    """
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'chunks' "
        "AND (indexdef LIKE '%%USING hnsw%%' OR indexdef LIKE '%%USING gin%%')"
    )
    found = cursor.fetchall()
    for name, _ in found:
        cursor.execute(f'DROP INDEX "{name}"')
    return [definition for _, definition in found]


def export_vectors(path: Path) -> Moved:
    """Write every chunk of the table to the store file at `path`, replacing it."""
    store = _pg_store()
    with transaction.atomic(), connection.cursor() as cursor:
        store._check()
        cursor.execute(
            "SELECT file_id, workspace, chunk_index, context, text, embedding::text "
            "FROM chunks ORDER BY file_id, chunk_index"
        )
        rows = cursor.fetchall()
    documents: dict[str, list[tuple]] = {}
    for row in rows:
        documents.setdefault(row[0], []).append(row)
    stored = [
        StoredChunks(
            file_id=file_id,
            workspace=chunks[0][1],
            indexes=[c[2] for c in chunks],
            texts=[c[4] for c in chunks],
            vectors=np.vstack([parse_vector(c[5]) for c in chunks]),
            contexts=[c[3] for c in chunks],
        )
        for file_id, chunks in documents.items()
    ]
    target = VectorStore(path, embedder=store.embedder, dim=store.dim)
    written = target.write_all(stored)
    return Moved(len(stored), written, [])
