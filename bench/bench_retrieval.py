"""Retrieval speed with the default embedder (all-MiniLM-L6-v2): embedding rate, store
load, `/ask` latency and worker memory, each beside its floor.

    .venv/bin/python bench/bench_retrieval.py [--sizes 10000,100000] [--questions 200]
                                              [--embed-chunks 640] [--embedded] [--pages]
                                              [--clients 8,32]

Run from the project root. Everything happens in bench/out/bench-retrieval (the stores are
kept between runs), never in data/. It prints numbers and asserts nothing about them.

- embedding: chunks/s of the service's embedder on real chunk text (the PostgreSQL
  manual's, from bench/eval_retrieval.py's store when it exists, else synthetic), beside
  sentence-transformers' own `encode` on the same texts (the floor).
- load: a fresh process reads the store and builds the BM25 index (its first query).
- /ask: POST /ask over HTTP to the service under gunicorn (two uvicorn workers, the
  production config), one request at a time on a kept-alive connection, query embedding
  included, beside the floor of embedding the question alone; then with `--clients`
  (8 and 32 by default) clients at once, each on a connection of its own. With random vectors no
  chunk is evidence, so every answer is "nothing found" with no sources; `--embedded`
  stores MiniLM's own vectors of the chunks' texts (embedded once, about 5 minutes for
  10,000 chunks, and kept in bench/out/bench-retrieval/vectors-N.npy), so that answers
  are extracted and carry their sources, and `--pages` gives each chunk a page span
  (chunk i of a document on page i // 3 + 1), so that each source carries `pageSpan`.
- memory: the resident set of a process with the model loaded and the store searched,
  as a gunicorn worker holds them.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKDIR = ROOT / "bench" / "out" / "bench-retrieval"
EVAL_STORE = ROOT / "bench" / "out" / "eval-minilm-default-default" / "vectors.json"
sys.path.insert(0, str(ROOT))
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "ENV_FILE": "",
        "EMBEDDER": "minilm",
        "API_KEYS_REQUIRED": "false",
        "DATABASE_URL": f"sqlite:///{WORKDIR / 'db.sqlite3'}",
    }
)
WORKDIR.mkdir(parents=True, exist_ok=True)

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import orjson  # noqa: E402

CHUNKS_PER_DOCUMENT = 50
LOAD_REPEATS = 3
CREATED = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
WORDS = (
    "index table query vacuum replication backup restore role privilege schema column "
    "trigger function partition transaction lock isolation snapshot checkpoint wal "
    "archive standby primary sequence constraint foreign key unique check default view "
    "materialized refresh statistics planner join hash merge nested loop sort memory "
    "buffer cache connection pool timeout parameter setting server client extension json "
    "array range text search dictionary collation encoding locale tablespace cluster"
).split()


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def real_texts(count: int) -> list[str]:
    from ingest.search.fusion import searchable

    if EVAL_STORE.exists():
        chunks = orjson.loads(EVAL_STORE.read_bytes())["chunks"]
        random.Random(7).shuffle(chunks)
        return [searchable(c["context"], c["text"]) for c in chunks[:count]]
    return [synthetic_text(random.Random(n)) for n in range(count)]


def synthetic_text(rng: random.Random, words: int = 110) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def bench_embedding(count: int) -> None:
    from sentence_transformers import SentenceTransformer

    from ingest.search.embeddings import BATCH, get_embedder, minilm_directory

    texts = real_texts(count)
    words = statistics.mean(len(t.split()) for t in texts)
    embedder = get_embedder()
    embedder.embed(texts[:BATCH])  # load the model
    started = time.perf_counter()
    embedder.embed(texts)
    ours = count / (time.perf_counter() - started)
    model = SentenceTransformer(minilm_directory(), device="cpu")
    started = time.perf_counter()
    model.encode(texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
    floor = count / (time.perf_counter() - started)
    print(
        f"embedding {count} chunks ({words:.0f} words on average): the service "
        f"{ours:.1f} chunks/s; sentence-transformers encode {floor:.1f} chunks/s (floor)"
    )


def build_store(path: Path, size: int, *, embedded: bool, pages: bool) -> list[str]:
    """A store of `size` synthetic chunks written through the store's own writer; returns
    the document ids. Its vectors are random unit vectors, or with `embedded` MiniLM's
    vectors of the texts; with `pages` chunk i of a document is on page i // 3 + 1."""
    from ingest.search.embeddings import MINILM
    from ingest.stores.base import StoredChunks
    from ingest.stores.vector_file import JsonFileStore

    rng = random.Random(size)
    file_ids = [f"{n:032x}" for n in range(size // CHUNKS_PER_DOCUMENT)]
    if path.exists():
        return file_ids
    texts = [synthetic_text(rng) for _ in range(len(file_ids) * CHUNKS_PER_DOCUMENT)]
    vectors = embedded_vectors(texts) if embedded else None
    spans = {"pages": [(i // 3 + 1, i // 3 + 1) for i in range(CHUNKS_PER_DOCUMENT)]}
    store = JsonFileStore(path, embedder=MINILM, dim=384)
    documents = []
    for number, file_id in enumerate(file_ids):
        rows = slice(number * CHUNKS_PER_DOCUMENT, (number + 1) * CHUNKS_PER_DOCUMENT)
        if vectors is None:
            random_rows = np.random.default_rng(number).standard_normal((CHUNKS_PER_DOCUMENT, 384))
            document_vectors = random_rows / np.linalg.norm(random_rows, axis=1, keepdims=True)
        else:
            document_vectors = vectors[rows]
        documents.append(
            StoredChunks(
                file_id,
                f"ws-{number % 10}",
                list(range(CHUNKS_PER_DOCUMENT)),
                texts[rows],
                document_vectors,
                **(spans if pages else {}),
            )
        )
    started = time.perf_counter()
    store.replace(documents)
    print(f"  built {size:,} chunks in {time.perf_counter() - started:.1f} s")
    return file_ids


def embedded_vectors(texts: list[str]) -> np.ndarray:
    """MiniLM's vectors of `texts`, embedded once and kept beside the stores."""
    from ingest.search.embeddings import get_embedder

    cache = WORKDIR / f"vectors-{len(texts)}.npy"
    if cache.exists():
        return np.load(cache)
    started = time.perf_counter()
    vectors = get_embedder().embed(texts)
    print(f"  embedded {len(texts):,} chunks in {time.perf_counter() - started:.0f} s")
    np.save(cache, vectors)
    return vectors


def load_child(path: Path) -> None:
    """In a fresh process: load the store and build its BM25 index, then the model."""
    from ingest.search.embeddings import MINILM, get_embedder
    from ingest.search.lexical import terms
    from ingest.stores.vector_file import JsonFileStore

    before = rss_mb()
    started = time.perf_counter()
    store = JsonFileStore(path, embedder=MINILM, dim=384)
    store.built_by()  # parses the file
    parsed = time.perf_counter() - started
    store.search(
        np.ones(384, dtype=np.float32) / 384**0.5, terms("vacuum"), workspace=None, top_k=5
    )
    loaded = time.perf_counter() - started
    store_mb = rss_mb() - before
    embedder = get_embedder()
    query = embedder.embed(["How do I vacuum a table?"])[0]
    store.search(query, terms("vacuum table"), workspace="ws-1", top_k=15)
    print(json.dumps({"parsed": parsed, "loaded": loaded, "store_mb": store_mb, "rss": rss_mb()}))


def bench_size(size: int, questions: int, *, embedded: bool, pages: bool) -> None:
    from django.core.management import call_command

    from registry.models import Document

    suffix = "-embedded" * embedded + "-pages" * pages
    path = WORKDIR / f"store-{size}{suffix}.json"
    file_ids = build_store(path, size, embedded=embedded, pages=pages)
    print(f"\n{size:,} chunks: store file {path.stat().st_size / 2**20:.0f} MB")
    runs = []
    for _ in range(LOAD_REPEATS):
        out = subprocess.run(
            [sys.executable, __file__, "--load-child", str(path)],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    child = runs[-1]
    parsed = sorted(run["parsed"] for run in runs)
    loaded = sorted(run["loaded"] for run in runs)
    print(
        f"  load in a fresh process ({LOAD_REPEATS} runs, fastest / slowest): parse "
        f"{parsed[0]:.2f} / {parsed[-1]:.2f} s, with the BM25 index {loaded[0]:.2f} / "
        f"{loaded[-1]:.2f} s; store {child['store_mb']:.0f} MB; worker RSS with the model "
        f"loaded {child['rss']:.0f} MB"
    )

    call_command("migrate", verbosity=0)
    Document.objects.all().delete()
    Document.objects.bulk_create(
        Document(
            file_id=file_id,
            filename=f"doc-{n}.txt",
            size_bytes=1000,
            workspace=f"ws-{n % 10}",
            num_chunks=CHUNKS_PER_DOCUMENT,
            sha256=f"{n:064x}",
            created_at=CREATED,
            updated_at=CREATED,
        )
        for n, file_id in enumerate(file_ids)
    )
    latencies, floor, answers = ask_over_http(path, questions)
    print(
        f"  /ask over HTTP (gunicorn, 2 uvicorn workers, keep-alive) p50 "
        f"{statistics.median(latencies) * 1000:.1f} ms, p95 "
        f"{np.percentile(latencies, 95) * 1000:.1f} ms, p99 "
        f"{np.percentile(latencies, 99) * 1000:.1f} ms over {questions} questions; "
        f"embedding the question alone p50 {statistics.median(floor) * 1000:.1f} ms (floor)"
    )
    for clients, (times, seconds) in CONCURRENT.items():
        print(
            f"  /ask with {clients} clients at once: p50 {statistics.median(times) * 1000:.1f} ms,"
            f" p99 {np.percentile(times, 99) * 1000:.1f} ms, {len(times) / seconds:.1f} answers/s"
            f" ({len(times)} questions)"
        )
    sources = [source for answer in answers for source in answer["sources"]]
    spans = [source["pageSpan"] for source in sources if source.get("pageSpan")]
    print(
        f"  {sum(1 for answer in answers if answer['sources'])} of {len(answers)} answers "
        f"had sources ({len(sources)} in all), {len(spans)} sources a pageSpan"
        + (f" (the first: {spans[0]})" if spans else "")
    )


# --clients: /ask with this many clients at once, each on a kept-alive connection of its
# own, each asking the questions in turn from its own place in the list; their latencies
# and the seconds the run took, by the number of clients.
CLIENTS: list[int] = []
CONCURRENT: dict[int, tuple[list[float], float]] = {}


def ask_concurrently(port: int, asked: list[str], clients: int) -> tuple[list[float], float]:
    """Every client asks len(asked) questions (at least 4 each): latencies, seconds."""
    from concurrent.futures import ThreadPoolExecutor

    each = max(4, len(asked) // clients)

    def client(number: int) -> list[float]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        times = []
        for n in range(each):
            question = asked[(number * each + n) % len(asked)]
            body = orjson.dumps({"q": question, "workspace": f"ws-{(number + n) % 10}"})
            started = time.perf_counter()
            connection.request("POST", "/ask", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            assert response.status == 200, response.status
            times.append(time.perf_counter() - started)
        connection.close()
        return times

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = [t for times in pool.map(client, range(clients)) for t in times]
    return latencies, time.perf_counter() - started


def ask_over_http(path: Path, questions: int) -> tuple[list[float], list[float], list[Any]]:
    """Time POST /ask against the service as production runs it, one request at a time;
    returns the latencies, the floor's and the answers (parsed once timed)."""
    from ingest.search.embeddings import get_embedder

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "VECTOR_JSON_PATH": str(path),
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PYTHONPATH": str(ROOT),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.asgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(600):
            try:
                connection.request("GET", "/health")
                connection.getresponse().read()
                break
            except OSError:
                connection.close()
                time.sleep(0.1)
        rng = random.Random(1)
        asked = [
            f"How does {rng.choice(WORDS)} {rng.choice(WORDS)} work?" for _ in range(questions)
        ]

        bodies = []

        def ask(question: str, workspace: str) -> float:
            body = orjson.dumps({"q": question, "workspace": workspace})
            started = time.perf_counter()
            connection.request("POST", "/ask", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            bodies.append(response.read())
            assert response.status == 200, response.status
            return time.perf_counter() - started

        for number in range(20):  # both workers load the model and the store
            fresh = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            fresh.request(
                "POST", "/ask", orjson.dumps({"q": "warm up", "workspace": f"ws-{number % 10}"})
            )
            fresh.getresponse().read()
            fresh.close()
        connection.close()  # idle through the warm-up: the server may have closed it
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        latencies = [ask(q, f"ws-{n % 10}") for n, q in enumerate(asked)]
        for clients in CLIENTS:
            CONCURRENT[clients] = ask_concurrently(port, asked, clients)
    finally:
        server.terminate()
        server.wait(timeout=30)
    embedder = get_embedder()
    embedder.embed(["warm up"])
    floor = []
    for question in asked:
        started = time.perf_counter()
        embedder.embed([question])
        floor.append(time.perf_counter() - started)
    return latencies, floor, [orjson.loads(body) for body in bodies]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--embed-chunks", type=int, default=640)
    parser.add_argument("--embedded", action="store_true", help="MiniLM's vectors, not random")
    parser.add_argument("--pages", action="store_true", help="each chunk with a page span")
    parser.add_argument(
        "--clients", default="8,32", help="/ask with this many clients at once (0: none)"
    )
    parser.add_argument("--load-child", type=Path)
    args = parser.parse_args()
    if args.load_child:
        load_child(args.load_child)
        return
    import torch

    print(f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    CLIENTS.extend(int(n) for n in args.clients.split(",") if int(n) > 0)
    if args.embed_chunks:
        bench_embedding(args.embed_chunks)
    for size in (int(s) for s in args.sizes.split(",")):
        bench_size(size, args.questions, embedded=args.embedded, pages=args.pages)


if __name__ == "__main__":
    main()
