"""Requests per second of this project beside the stack it replaces, on one PostgreSQL.

    apt-get install wrk
    python3 -m venv /tmp/anchor-venv && /tmp/anchor-venv/bin/pip install fastapi \
        'sqlalchemy[asyncio]' asyncpg uvicorn uvloop httptools
    .venv/bin/python bench/bench_http.py [--records 10000] [--rounds 3] [--seconds 10]

The old stack is ../shared/anchors/fastapi_seed (FastAPI, SQLAlchemy async, asyncpg,
uvicorn with uvloop and httptools, 2 workers). This project runs under its production
gunicorn config (gunicorn.conf.py, 2 uvicorn workers, DEBUG=false) with an API key sent
on every request. Both load the same legacy registry of --records rows into a scratch
database `bench_http` on DATABASE_URL's server (default the local PostgreSQL), which is
dropped after. Each round measures every endpoint on the old stack, then on this
project (`wrk -t2 -c32`), alternating; it prints req/s and p50/p99 latency per endpoint,
the median over the rounds, and the project/old ratio. Beside them, unless --no-floors,
the framework floors of bench/floor_app.py (a bare Django view and a bare django-ninja
endpoint, same JSON, same gunicorn config), with each one's ratio to the old stack and
the project's to the ninja floor.

The project is measured twice per endpoint and round, with an unscoped key (every
workspace, write: what keys made before scopes are) and with a scoped read-only key of
three workspaces, the two the registry has among them (issue 26); a second table gives
the scoped key's rate over the unscoped one's, and a third the two keys' latencies
requested one at a time, alternating (`--pairs`). `--without-old` measures only those.

`--versus NAME=VALUE` serves the project a second time with that setting (say
DB_ASYNC_READS=false) and measures it beside the first in every round, on every endpoint,
with the unscoped key: the last table gives the second's rate over the first's.
`--pairs 0` skips the one-at-a-time latencies.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402
import psycopg  # noqa: E402
from bench_import import legacy_records  # noqa: E402

ANCHOR = ROOT.parent / "shared" / "anchors" / "fastapi_seed"
ANCHOR_PYTHON = Path("/tmp/anchor-venv/bin/python")
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCRATCH_DB = "bench_http"
SECRET = "bench-" + "x" * 60
LOGS: list[Path] = []  # each server's log, shown when a server answers errors


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=3000, help="scoped/unscoped pairs")
    parser.add_argument(
        "--without-old", action="store_true", help="skip the old stack: scoped vs unscoped only"
    )
    parser.add_argument(
        "--versus", metavar="NAME=VALUE", help="also serve the project with this setting"
    )
    parser.add_argument(
        "--no-floors", action="store_true", help="skip the bare Django and django-ninja floors"
    )
    return parser.parse_args()


def with_database(url: str, name: str, scheme: str | None = None) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}", scheme=scheme or parts.scheme))


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: held open together while chosen, so that no two of
    the servers started after are given the same one."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def serve(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """A server writing its log to a file: a pipe nobody reads fills up and stops a
    server that logs each request."""
    LOGS.append(log)
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)


def wait_for(url: str, process: subprocess.Popen, log: Path) -> None:
    """Until `url` answers 200 twenty times in a row, each on a connection of its own:
    every worker has warmed up (one still loading its model answers 503 and takes a
    core from the first round)."""
    deadline, in_a_row = time.monotonic() + 120, 0
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"the server for {url} exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310
            in_a_row += 1
            if in_a_row == 20:
                return
        except OSError:
            in_a_row = 0
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within 120 s")


def paired(base: str, path: str, keys: dict[str, str], pairs: int) -> tuple[list, list]:
    """Each key's latencies (ms) for `path`, requested one at a time, alternating
    request by request (the order swapped every pair) on a kept-alive connection per
    key, so that both meet the same machine: at wrk's rates this 2-core machine drifts
    by more than the 5% asked of scopes between two runs of the same key."""
    parts = urlsplit(base)
    connections = {name: http.client.HTTPConnection(parts.hostname, parts.port) for name in keys}
    times: dict[str, list[float]] = {name: [] for name in keys}
    order = list(keys)
    for n in range(pairs + 50):  # the first 50 pairs warm up
        for name in order if n % 2 else reversed(order):
            started = time.perf_counter()
            connections[name].request("GET", path, headers={"X-API-Key": keys[name]})
            response = connections[name].getresponse()
            response.read()
            if response.status != 200:
                sys.exit(f"{path} with the {name} key: {response.status}")
            if n >= 50:
                times[name].append((time.perf_counter() - started) * 1000)
    for connection in connections.values():
        connection.close()
    unscoped, scoped = times.values()
    return unscoped, scoped


def answer(url: str, key: str | None) -> str:
    """One request's status and body, to show what went wrong."""
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return f"{response.status} {response.read()[:300]!r}"
    except urllib.error.HTTPError as exc:
        return f"{exc.code} {exc.read()[:300]!r}"


def wrk(url: str, seconds: int, connections: int, key: str | None) -> tuple[float, float, float]:
    """req/s, p50 ms, p99 ms; fails on any non-2xx answer."""
    # A request slower than 10 s is an error; slower than wrk's default 2 s, a latency.
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "10s",
        "--latency",
        url,
    ]
    if key:
        command[1:1] = ["-H", f"X-API-Key: {key}"]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        tails = "\n".join(f"{log}:\n{log.read_text()[-3000:]}" for log in LOGS)
        sys.exit(f"{url} answered errors under load ({answer(url, key)}):\n{out}\n{tails}")

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    if rate == 0:
        sys.exit(f"{url} answered nothing under load:\n{out}")
    return rate, ms("50"), ms("99")


FLOORS = ("django", "ninja")  # bench/floor_app.py: a bare Django view, a bare ninja endpoint


def floors_table(endpoints: list[str], floors: list[str], median: Callable) -> None:
    """req/s of the old stack, each framework floor and the service, and the ratios an
    operator reads: the service and each floor over the old stack, the service over the
    bare ninja floor."""
    names = ["old", *floors, "project"]
    print(f"\n{'req/s (p50/p99 ms)':<40}" + "".join(f"{name:>21}" for name in names))
    for endpoint in endpoints:
        cells = [median(endpoint, name) for name in names]
        print(
            f"{endpoint[:40]:<40}"
            + "".join(f"{c[0]:>8,.0f} ({c[1]:>4.1f}/{c[2]:>5.1f})" for c in cells)
        )
    print(
        f"\n{'ratio':<40}"
        + "".join(f"{n + '/old':>14}" for n in names[1:])
        + f"{'project/ninja':>15}"
    )
    for endpoint in endpoints:
        old, *rest = (median(endpoint, name)[0] for name in names)
        ninja = median(endpoint, "ninja")[0] if "ninja" in floors else float("nan")
        print(
            f"{endpoint[:40]:<40}"
            + "".join(f"{rate / old:>14.2f}" for rate in rest)
            + f"{rest[-1] / ninja:>15.2f}"
        )


def main() -> None:
    args = parse_args()
    if not args.without_old and not ANCHOR_PYTHON.exists():
        sys.exit(f"{ANCHOR_PYTHON} is missing: see this script's docstring")
    base_url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    with psycopg.connect(base_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {SCRATCH_DB}")
    url = with_database(base_url, SCRATCH_DB)
    processes: list[subprocess.Popen] = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            registry = Path(scratch) / "registry.json"
            records = legacy_records(args.records)
            for record in records:
                record["workspace"] = "default" if record["numChunks"] % 2 else "eng"
            registry.write_bytes(orjson.dumps(records))
            project_env = {
                **os.environ,
                "ENV_FILE": "",
                "DEBUG": "false",
                "SECRET_KEY": SECRET,
                "ALLOWED_HOSTS": "127.0.0.1",
                "DATABASE_URL": url,
                "DATA_DIR": scratch,
                "WEB_CONCURRENCY": "2",
                "SECURE_SSL_REDIRECT": "false",
            }
            manage = [sys.executable, "manage.py"]
            for command in (
                ["migrate", "-v0"],
                ["import_registry", str(registry), "--no-progress"],
            ):
                subprocess.run([*manage, *command], cwd=ROOT, env=project_env, check=True)
            one_record = records[len(records) // 2]

            def new_key(*options: str) -> str:
                made = subprocess.run(
                    [*manage, "create_api_key", *options],
                    cwd=ROOT,
                    env=project_env,
                    check=True,
                    capture_output=True,
                    text=True,
                )
                return made.stdout.split()[-1]

            key = new_key("bench")
            scoped_key = new_key(  # the two workspaces the registry has, and one more
                "bench-scoped", "--read-only",
                *("--workspace", "default", "--workspace", "eng", "--workspace", "docs"),
            )  # fmt: skip
            anchor_env = {
                **os.environ,
                "DATABASE_URL": with_database(url, SCRATCH_DB, "postgresql+asyncpg"),
            }
            if not args.without_old:
                subprocess.run(
                    [str(ANCHOR_PYTHON), "seed_db.py", str(registry)],
                    cwd=ANCHOR,
                    env=anchor_env,
                    check=True,
                    capture_output=True,
                )
            # Both tables as autovacuum leaves them a minute after a load: planner
            # statistics and the visibility map (index-only counts), in one run here.
            with psycopg.connect(url, autocommit=True) as loaded:
                loaded.execute("VACUUM ANALYZE")

            project_port, anchor_port, versus_port, *floor_ports = free_ports(3 + len(FLOORS))
            project_log, anchor_log = Path(scratch) / "project.log", Path(scratch) / "old.log"
            gunicorn = [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py"]
            project = serve(
                [*gunicorn, "config.asgi:application"],
                ROOT,
                {**project_env, "BIND": f"127.0.0.1:{project_port}"},
                project_log,
            )
            processes = [project]
            project_base = f"http://127.0.0.1:{project_port}"
            versus_base = ""
            if args.versus:
                name, _, value = args.versus.partition("=")
                versus_log = Path(scratch) / "versus.log"
                versus_env = {**project_env, name: value, "BIND": f"127.0.0.1:{versus_port}"}
                processes.append(
                    serve([*gunicorn, "config.asgi:application"], ROOT, versus_env, versus_log)
                )
                versus_base = f"http://127.0.0.1:{versus_port}"
                wait_for(versus_base + "/health", processes[-1], versus_log)
            floors: list[tuple[str, str]] = []
            if not args.no_floors:
                for floor, floor_port in zip(FLOORS, floor_ports, strict=True):
                    floor_log = Path(scratch) / f"{floor}.log"
                    floor_env = {**project_env, "FLOOR": floor, "BIND": f"127.0.0.1:{floor_port}"}
                    command = [*gunicorn, "--pythonpath", "bench", "floor_app:application"]
                    processes.append(serve(command, ROOT, floor_env, floor_log))
                    floors.append((floor, f"http://127.0.0.1:{floor_port}"))
                    wait_for(floors[-1][1] + "/health", processes[-1], floor_log)
            anchor_base = f"http://127.0.0.1:{anchor_port}"
            if not args.without_old:
                uvicorn = [str(ANCHOR_PYTHON), "-m", "uvicorn", "app:app", "--workers", "2"]
                uvicorn += ["--port", str(anchor_port), "--log-level", "warning"]
                processes.append(serve(uvicorn, ANCHOR, anchor_env, anchor_log))
                wait_for(anchor_base + "/health", processes[-1], anchor_log)
            wait_for(project_base + "/health", project, project_log)

            one = str(one_record["fileId"])
            endpoints = [
                "/health",
                f"/documents/{one}",
                "/documents?workspace=default&limit=50",
            ]
            runs = [("project", project_base, key), ("scoped", project_base, scoped_key)]
            runs[:0] = [(floor, base, None) for floor, base in floors]
            if not args.without_old:
                runs.insert(0, ("old", anchor_base, None))
            if args.versus:
                runs.insert(
                    runs.index(("project", project_base, key)) + 1, ("versus", versus_base, key)
                )
            results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
            for _ in range(args.rounds):
                for endpoint in endpoints:
                    for name, base, sent in runs:
                        if name == "scoped" and endpoint == "/health":
                            continue  # no key is read there
                        measured = wrk(base + endpoint, args.seconds, args.connections, sent)
                        results.setdefault((endpoint, name), []).append(measured)
            keys = {"unscoped": key, "scoped": scoped_key}
            pairs = {
                e: paired(project_base, e, keys, args.pairs) for e in endpoints[1:] if args.pairs
            }

        def median(endpoint: str, name: str) -> list[float]:
            rounds = results[(endpoint, name)]
            return [statistics.median(v) for v in zip(*rounds, strict=True)]

        print(
            f"\n{args.records} rows, wrk -t2 -c{args.connections} -d{args.seconds}s, "
            f"median of {args.rounds} alternating rounds"
        )

        def table(heading: str, first: str, second: str, labels: tuple[str, str]) -> None:
            """Each endpoint measured for both runs: req/s, p50/p99, second over first."""
            print(
                f"\n{heading:<40} {labels[0][:10]:>10} {'p50/p99 ms':>12} "
                f"{labels[1][:22]:>22} {'p50/p99 ms':>12} {'ratio':>6}"
            )
            for endpoint in endpoints:
                if (endpoint, second) not in results:
                    continue
                a, b = median(endpoint, first), median(endpoint, second)
                print(
                    f"{endpoint[:40]:<40} {a[0]:>10,.0f} {a[1]:>5.1f}/{a[2]:<6.1f} "
                    f"{b[0]:>22,.0f} {b[1]:>5.1f}/{b[2]:<6.1f} {b[0] / a[0]:>6.2f}"
                )

        if not args.without_old:
            table("endpoint", "old", "project", ("old req/s", "project"))
        if floors and not args.without_old:
            floors_table(endpoints, [floor for floor, _ in floors], median)
        table("endpoint (project)", "project", "scoped", ("unscoped", "scoped"))
        if args.versus:
            table("endpoint (project)", "project", "versus", ("req/s", args.versus))
        if not pairs:
            return
        print(
            f"\n{args.pairs:,} requests per key, one at a time, the two keys alternating on "
            "one connection each (ms)"
        )
        print(
            f"{'endpoint (project)':<40} {'unscoped':>10} {'mean':>7} {'scoped':>9} "
            f"{'mean':>7} {'median ratio':>13}"
        )
        for endpoint, (unscoped_ms, scoped_ms) in pairs.items():
            a, b = statistics.median(unscoped_ms), statistics.median(scoped_ms)
            print(
                f"{endpoint[:40]:<40} {a:>10.3f} {statistics.fmean(unscoped_ms):>7.3f} "
                f"{b:>9.3f} {statistics.fmean(scoped_ms):>7.3f} {b / a:>13.3f}"
            )
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        with psycopg.connect(base_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {SCRATCH_DB} WITH (FORCE)")


if __name__ == "__main__":
    main()
