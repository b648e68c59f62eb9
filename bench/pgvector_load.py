"""The chunks bench_pgvector.py measures, loaded into the pgvector store: the PostgreSQL
manual's chunks as the retrieval evaluation embedded them and perturbed copies of them, their
registry rows, the COPY (or `import_vectors`), the search indexes built and timed, and the
table's sizes. Imported once Django is set up, as the bench's server is in its settings."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from django.db import connection, transaction

from ingest.search.embeddings import get_embedder
from ingest.stores import get_vector_store
from ingest.stores.base import StoredChunks
from ingest.stores.pgvector import _copy_rows
from ingest.stores.pgvector_sql import copy_chunk_rows, drop_search_indexes
from ingest.stores.vector_file import JsonFileStore
from registry.models import Document
from registry.records import now_seconds

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT_CHUNKS = 20
WORKSPACES = [f"ws-{n}" for n in range(10)]
SMALL = "small"  # 1% of the documents


def source_chunks(source: Path) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """The evaluation's chunks: their texts, headings, documents' names and vectors."""
    embedder = get_embedder()
    store = JsonFileStore(source, embedder=embedder.name, dim=embedder.dim)
    documents = store.documents()
    texts = [text for d in documents for text in d.texts]
    contexts = [d.context(i) for d in documents for i in range(len(d.texts))]
    titles = [d.title for d in documents for _ in d.texts]
    return texts, contexts, titles, np.vstack([d.vectors for d in documents])


def scaled(source: Path, total: int) -> list[StoredChunks]:
    """`total` chunks in documents of 20: the real ones, then perturbed copies."""
    texts, contexts, titles, base = source_chunks(source)
    rng = np.random.default_rng(7)
    rows = np.arange(total) % len(base)
    vectors = base[rows].astype(np.float32)
    for start in range(len(base), total, 100_000):  # copies, a block at a time
        block = vectors[start : start + 100_000]
        # Per-dimension noise s gives cosine about 1 / sqrt(1 + s² dim) to the original.
        scale = rng.uniform(0.01, 0.04, size=len(block))[:, None]
        block += (rng.normal(size=block.shape) * scale).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    documents = []
    for number, start in enumerate(range(0, total, DOCUMENT_CHUNKS)):
        end = min(start + DOCUMENT_CHUNKS, total)
        workspace = SMALL if number % 100 == 0 else WORKSPACES[number % len(WORKSPACES)]
        documents.append(
            StoredChunks(
                file_id=f"bench-{number:07d}",
                workspace=workspace,
                indexes=list(range(end - start)),
                texts=[texts[r] for r in rows[start:end]],
                vectors=vectors[start:end],
                contexts=[contexts[r] for r in rows[start:end]],
                title=titles[rows[start]],
            )
        )
    return documents


def registry_rows(documents: list[StoredChunks]) -> None:
    now = now_seconds()
    Document.objects.all().delete()
    Document.objects.bulk_create(
        [
            Document(
                file_id=d.file_id,
                filename=d.title or f"{d.file_id}.html",
                workspace=d.workspace,
                num_chunks=len(d.texts),
                indexed=True,
                created_at=now,
                updated_at=now,
            )
            for d in documents
        ],
        batch_size=5_000,
    )


def time_import(path: Path) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "manage.py", "import_vectors", str(path), "--no-progress"],
        cwd=ROOT,
        env=os.environ,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def time_plain_copy(documents: list[StoredChunks], dim: int) -> tuple[float, float]:
    """A plain binary COPY of the same rows, already in memory, into a table of the same
    columns, then the HNSW index built on it: the floor of an import."""
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS chunks_floor")
        cursor.execute(
            "CREATE TABLE chunks_floor (LIKE chunks INCLUDING DEFAULTS INCLUDING GENERATED)"
        )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        copy_chunk_rows(cursor, "chunks_floor", _copy_rows(documents, None, 0))
    copied = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE INDEX ON chunks_floor USING hnsw ((embedding::vector({dim})) "
            "vector_cosine_ops)"
        )
        cursor.execute("DROP TABLE chunks_floor")
    return copied, time.perf_counter() - started


def load(source: Path, total: int, *, import_vectors: bool) -> None:
    """The chunks by COPY (or `import_vectors`), then their search indexes built, timed."""
    dim = get_embedder().dim
    documents = scaled(source, total)
    small = sum(len(d.texts) for d in documents if d.workspace == SMALL)
    print(f"{total} chunks of {dim} dimensions, {len(documents)} documents ({small} in {SMALL})")
    registry_rows(documents)
    if import_vectors:
        embedder = get_embedder()
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "vectors.json"
            JsonFileStore(path, embedder=embedder.name, dim=dim).write_all(documents)
            imported = time_import(path)
        copied, indexed = time_plain_copy(documents, dim)
        print(
            f"import_vectors (a process): {imported:.1f} s; floor: plain COPY {copied:.1f} s "
            f"({imported / copied:.2f}x), COPY + HNSW build {indexed:.1f} s "
            f"({imported / indexed:.2f}x)"
        )
    else:
        get_vector_store().replace(documents[:1])  # claims the store, makes its indexes
    with transaction.atomic(), connection.cursor() as cursor:
        definitions = drop_search_indexes(cursor)
        if not import_vectors:
            started = time.perf_counter()
            copy_chunk_rows(cursor, "chunks", _copy_rows(documents[1:], None, 0))
            print(f"COPY of the rows: {time.perf_counter() - started:.1f} s")
    del documents
    for definition in sorted(definitions, key=lambda d: "hnsw" not in d):
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(definition)
        kind = "HNSW" if "USING hnsw" in definition else "GIN"
        print(f"{kind} index built: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE chunks")
    print(f"VACUUM ANALYZE: {time.perf_counter() - started:.1f} s")


def sizes() -> None:
    def mb(size: int) -> str:
        return f"{size / 2**20:,.0f} MB"

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size('chunks'), pg_table_size('chunks'), "
            "pg_indexes_size('chunks'), pg_total_relation_size('chunks')"
        )
        heap, table, indexes, total = cursor.fetchone()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = 'chunks'::regclass ORDER BY 2 DESC"
        )
        each = ", ".join(f"{name} {mb(size)}" for name, size in cursor.fetchall())
    print(
        f"chunks: table {mb(heap)} (pg_relation_size), {mb(table)} with TOAST "
        f"(pg_table_size); indexes {mb(indexes)} (pg_indexes_size); total {mb(total)} "
        f"(pg_total_relation_size)\n  {each}"
    )
