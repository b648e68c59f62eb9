"""Background ingestion, measured: the 202, one worker's rate, /ask beside a worker, and
two workers against one. Each figure is printed beside its floor.

    apt-get install postgresql-doc-15     # the documents: the PostgreSQL 15 manual
    .venv/bin/python bench/bench_jobs.py [--uploads 20] [--rounds 3] [--web-threads N] [--jobs 6]

The service runs as production runs it (gunicorn, 2 uvicorn workers, DEBUG=false,
all-MiniLM-L6-v2) on a scratch database `bench_jobs` on DATABASE_URL's server (default
the local PostgreSQL), dropped after, with its own data directory. Workers are real
`manage.py db_worker` processes.

- The 202: the time to answer an `async=true` upload of a 1,000-chunk document (p50,
  p99), beside the floor: the same upload refused for its workspace (400), which
  receives and parses the same body and stops there.
- One worker's rate: the chunks of a 1,000-chunk document over its job's run (from its
  start to its end, the model already loaded), beside sentence-transformers' own
  `encode` of the same chunks in this process, at the same number of threads; --rounds
  rounds alternate the two, and their medians are compared.
- /ask p50/p99 of the 56 questions of bench/data, three times each, over a 1,000-chunk
  document, while one worker ingests, against the same questions on an idle service:
  the web servers at their default EMBEDDING_THREADS (or --web-threads); the worker on
  one thread at JOB_WORKER_NICE=0 (a core left by threads), then on all at 0, then on
  all at its default priority.
- Jobs/s of --jobs documents of 200 chunks with one worker, then two (one thread each).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402
from bench_import import scratch_database  # noqa: E402

from tests.support.live import LiveService, multipart  # noqa: E402
from tests.support.processes import run_manage, running_server, running_worker  # noqa: E402

MANUAL = Path("/usr/share/doc/postgresql-doc-15/html")
QUESTIONS = ROOT / "bench" / "data" / "pg15_questions.json"
WORDS_PER_CHUNK = 100  # 120-word chunks overlapping by 20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3, help="jobs for one worker's rate")
    parser.add_argument(
        "--web-threads", type=int, help="the web servers' EMBEDDING_THREADS (default: theirs)"
    )
    return parser.parse_args()


def manual_text() -> list[str]:
    """The manual's pages as plain text, largest first."""
    if not MANUAL.is_dir():
        sys.exit(f"{MANUAL} is missing: apt-get install postgresql-doc-15")
    from bs4 import BeautifulSoup

    pages = []
    for page in sorted(MANUAL.glob("*.html")):
        text = BeautifulSoup(page.read_bytes(), "html.parser").get_text(" ")
        pages.append(re.sub(r"\s+", " ", text))
    return sorted(pages, key=len, reverse=True)


def document(pages: list[str], chunks: int, start: int) -> bytes:
    """A text document of about `chunks` chunks, made of whole manual pages from the
    `start`th on (so documents differ)."""
    words: list[str] = []
    index = start
    while len(words) < chunks * WORDS_PER_CHUNK:
        words.extend(pages[index % len(pages)].split())
        index += 1
    return " ".join(words[: chunks * WORDS_PER_CHUNK]).encode()


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms"


def timed(call: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = call()
    return result, (time.perf_counter() - started) * 1000


def upload(service: LiveService, name: str, data: bytes, **fields: str) -> tuple[int, dict]:
    body, headers = multipart(name, data, fields)
    status, _, answer = service.request("POST", "/ingest/file", body, headers)
    return status, answer


def wait_all(
    service: LiveService, job_ids: list[str], *, poll: float = 0.2, timeout: float = 3600
) -> list[dict]:
    """Wait for the jobs to end, reading each every `poll` seconds, as a client would."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = [service.call("GET", f"/jobs/{job_id}")[1] for job_id in job_ids]
        if all(job["status"] in ("succeeded", "failed", "cancelled") for job in jobs):
            failed = [job for job in jobs if job["status"] != "succeeded"]
            if failed:
                sys.exit(f"jobs did not succeed: {failed[:2]}")
            return jobs
        if time.monotonic() > deadline:
            sys.exit("the jobs did not end in time")
        time.sleep(poll)


def manage(env: dict[str, str], *args: str) -> str:
    done = run_manage(*args, env=env)
    if done.returncode:
        sys.exit(f"manage.py {' '.join(args)} failed: {done.stderr[-2000:]}")
    return done.stdout


def encode_model(threads: int) -> Any:
    """all-MiniLM-L6-v2 as sentence-transformers loads it, in this process, warmed up."""
    import torch
    from sentence_transformers import SentenceTransformer

    from ingest.search.embeddings import BATCH, minilm_directory

    torch.set_num_threads(threads)
    model = SentenceTransformer(minilm_directory(), device="cpu")
    model.encode(["Warm the model up."] * BATCH, batch_size=BATCH, show_progress_bar=False)
    return model


def encode_rate(model: Any, texts: list[str]) -> float:
    """sentence-transformers' own rate on `texts` (chunks/s): one encode() call."""
    from ingest.search.embeddings import BATCH

    started = time.perf_counter()
    model.encode(texts, batch_size=BATCH, normalize_embeddings=True, show_progress_bar=False)
    return len(texts) / (time.perf_counter() - started)


def chunk_texts(data: bytes) -> list[str]:
    """What the worker embeds for `data`: its chunks with their headings."""
    from ingest.preparing import Upload, cut

    return cut(Upload(data, "manual.txt", content_type="text/plain")).searchable()


def main() -> None:
    options = parse_args()
    # Django in this process too, for cutting chunks and the scratch database's cleanup.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("ENV_FILE", "")
    import django

    django.setup()
    pages = manual_text()
    questions = [q["q"] for q in orjson.loads(QUESTIONS.read_bytes())["questions"]]
    threads = min(os.cpu_count() or 1, 4)
    with scratch_database("bench_jobs") as url, tempfile.TemporaryDirectory() as scratch:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "ENV_FILE": "",
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + "x" * 60,
            "ALLOWED_HOSTS": "127.0.0.1",
            "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback, no proxy in front
            "DATABASE_URL": url,
            "DATA_DIR": scratch,
            "EMBEDDER": "minilm",
            "PYTHONPATH": str(ROOT),
        }
        manage(env, "migrate", "--noinput")
        key = manage(env, "create_api_key", "bench").strip().splitlines()[-1]
        web = {**env}
        if options.web_threads:
            web["EMBEDDING_THREADS"] = str(options.web_threads)
        with running_server(web, workers=2) as base:
            service = LiveService(base, key, Path(scratch), env)
            run_all(service, env, pages, questions, threads, options)


def run_all(
    service: LiveService,
    env: dict[str, str],
    pages: list[str],
    questions: list[str],
    threads: int,
    options: argparse.Namespace,
) -> None:
    big = [document(pages, 1000, start=n * 7) for n in range(options.uploads)]
    print(f"{len(big)} documents of about 1,000 chunks ({len(big[0]) / 1e6:.1f} MB each)")

    # -- the 202 ---------------------------------------------------------------------
    accepted, refused, job_ids = [], [], []
    for number, data in enumerate(big):

        def refuse(d: bytes = data) -> tuple[int, dict]:
            return upload(service, "m.txt", d, workspace="a b")

        def accept(d: bytes = data, n: int = number) -> tuple[int, dict]:
            return upload(service, f"m{n}.txt", d, **{"async": "true", "workspace": "big"})

        for step in (refuse, accept) if number % 2 else (accept, refuse):  # either first
            (status, body), ms = timed(step)
            if step is refuse:
                assert status == 400, (status, body)
                refused.append(ms)
            else:
                assert status == 202, (status, body)
                accepted.append(ms)
                job_ids.append(body["jobId"])
    print(
        f"\nthe 202 of an async upload: {percentiles(accepted)}\n"
        f"  floor, the same upload refused for its workspace: {percentiles(refused)}\n"
        f"  beyond receiving it: p50 "
        f"{statistics.median(accepted) - statistics.median(refused):.1f} ms"
    )
    for job_id in job_ids[1:]:  # keep one for the rate
        file_id = service.call("GET", f"/jobs/{job_id}")[1]["fileId"]
        service.call("DELETE", f"/documents/{file_id}")
    slowest = ", ".join(f"{ms:.0f}" for ms in sorted(accepted)[-3:])
    print(f"  the three slowest 202s: {slowest} ms")

    # -- one worker's rate -------------------------------------------------------------
    # Rounds alternate a job (the worker embedding) with the floor (this process's
    # encode, the worker idle beside it), so both meet the same machine; medians compare.
    model = encode_model(threads)
    texts = chunk_texts(big[0])
    warm = upload(service, "warm.txt", b"Warm the model up. " * 50, **{"async": "true"})[1]
    job_ids = job_ids[:1]
    rates, floors = [], []
    with running_worker({**env, "EMBEDDING_THREADS": str(threads)}):
        wait_all(service, [warm["jobId"]])
        for round_ in range(options.rounds):
            if round_:  # the same chunks again, as a new document of another workspace
                again = upload(
                    service, "m.txt", big[0], **{"async": "true", "workspace": f"r{round_}"}
                )
                job_ids.append(again[1]["jobId"])
            # Polled once a second: each poll is a request the web server and the database
            # answer on the same two cores as the worker's embedding threads.
            [job] = wait_all(service, job_ids[-1:], poll=1.0)
            seconds = job["finishedAt"] - job["startedAt"]
            rates.append(job["progress"]["chunksTotal"] / seconds)
            floors.append(encode_rate(model, texts))
            print(
                f"  round {round_ + 1}: the job {rates[-1]:.1f} chunks/s "
                f"({job['progress']['chunksTotal']} chunks in {seconds:.1f} s), "
                f"encode {floors[-1]:.1f} chunks/s"
            )
    rate, floor = statistics.median(rates), statistics.median(floors)
    print(
        f"\none worker, {threads} threads: {rate:.1f} chunks/s (median of {len(rates)} jobs "
        f"of {len(texts)} chunks, from the job's start to its end)\n"
        f"  floor, sentence-transformers encode of the same chunks: {floor:.1f} chunks/s "
        f"({rate / floor:.2f}x)"
    )
    for job_id in job_ids[1:]:  # the first stays, for the questions
        file_id = service.call("GET", f"/jobs/{job_id}")[1]["fileId"]
        service.call("DELETE", f"/documents/{file_id}")
    del model

    # -- /ask beside a worker ----------------------------------------------------------
    def ask_times() -> list[float]:
        """Each question three times, of the 1,000-chunk document kept in `big`."""
        times = []
        for question in questions * 3:
            (status, answer), ms = timed(
                lambda q=question: service.post_json("/ask", {"q": q, "workspace": "big"})
            )
            assert status == 200, answer
            times.append(ms)
        return times

    ask_times()  # load the model in the web workers
    idle = ask_times()
    print(
        f"\n/ask ({len(idle)} questions; web servers at EMBEDDING_THREADS="
        f"{options.web_threads or 'default'}), idle: {percentiles(idle)}"
    )
    # A core left to the API by threads alone (1), then by priority (None: the default).
    for worker_threads, nice in ((1, "0"), (threads, "0"), (threads, None)):
        busy_job = upload(service, "busy.txt", big[1], **{"async": "true", "workspace": "busy"})
        worker_env = {**env, "EMBEDDING_THREADS": str(worker_threads)}
        if nice is not None:
            worker_env["JOB_WORKER_NICE"] = nice
        with running_worker(worker_env):
            job_id = busy_job[1]["jobId"]
            # Embedding under way: the model loaded and the first batches counted.
            while service.call("GET", f"/jobs/{job_id}")[1]["progress"]["chunksDone"] < 64:
                time.sleep(0.2)
            before, started = service.call("GET", f"/jobs/{job_id}")[1], time.monotonic()
            busy = ask_times()
            after, seconds = service.call("GET", f"/jobs/{job_id}")[1], time.monotonic() - started
        embedded = after["progress"]["chunksDone"] - before["progress"]["chunksDone"]
        service.call("DELETE", f"/documents/{busy_job[1]['fileId']}")  # not for the next
        print(
            f"  while a worker ({worker_threads} thread(s), JOB_WORKER_NICE={nice or 'default'}) "
            f"ingests: {percentiles(busy)}; meanwhile it embedded about {embedded} chunks in "
            f"{seconds:.1f} s (counted every 64; its job was {after['status']} at the end)"
        )

    # -- one worker against two --------------------------------------------------------
    rates = []
    for workers in (1, 2):
        batch = [
            upload(
                service,
                f"w{workers}-{n}.txt",
                document(pages, 200, start=500 + workers * 50 + n * 3),
                **{"async": "true", "workspace": f"w{workers}"},
            )[1]["jobId"]
            for n in range(options.jobs)
        ]
        started = time.monotonic()
        worker_env = {**env, "EMBEDDING_THREADS": "1"}
        second = running_worker(worker_env) if workers == 2 else contextlib.nullcontext()
        with running_worker(worker_env), second:
            wait_all(service, batch)
        elapsed = time.monotonic() - started
        rates.append(options.jobs / elapsed)
        print(
            f"\n{workers} worker(s), one thread each: {options.jobs} jobs of 200 chunks in "
            f"{elapsed:.1f} s, {rates[-1]:.3f} jobs/s (model loads included)"
        )
    print(
        f"  two against one: {rates[1] / rates[0]:.2f}x on this {os.cpu_count()}-core machine; "
        "on two hosts each worker has its own cores, so about 2x"
    )


if __name__ == "__main__":
    main()
