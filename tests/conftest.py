from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from django.db import connection

from registry.backends import reset_backend
from registry.backends.base import RegistryBackend
from registry.backends.db import DatabaseRegistry
from registry.backends.json_file import JsonFileRegistry

ROOT = Path(__file__).resolve().parent.parent


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture(autouse=True)
def _fresh_backend() -> Iterator[None]:
    reset_backend()
    yield
    reset_backend()


@pytest.fixture
def json_registry_path(tmp_path: Path, settings) -> Path:
    """Switch the service to the JSON registry in a file of this test's own."""
    path = tmp_path / "registry.json"
    settings.USE_JSON_REGISTRY = True
    settings.REGISTRY_JSON_PATH = path
    return path


@pytest.fixture(
    params=[pytest.param("database", marks=pytest.mark.django_db(transaction=True)), "json"]
)
def backend(request, tmp_path: Path) -> RegistryBackend:
    """Each registry backend in turn; the database one commits for real, so callbacks
    that wait for a commit run as they do in production."""
    if request.param == "database":
        return DatabaseRegistry()
    return JsonFileRegistry(tmp_path / "registry.json")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env(**overrides: str) -> dict[str, str]:
    """The environment for a child process of the service: no .env, explicit settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")}
    env.update({"ENV_FILE": "", "PYTHONPATH": str(ROOT)})
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


@pytest.fixture
def data_dir(tmp_path: Path, settings) -> Path:
    """Vectors and the JSON registry of this test's own, in a temporary directory."""
    directory = tmp_path / "data"
    directory.mkdir()
    settings.VECTOR_JSON_PATH = directory / "vec.json"
    settings.REGISTRY_JSON_PATH = directory / "registry.json"
    return directory


@pytest.fixture(params=["database", "json"])
def registry_mode(request, settings, data_dir: Path) -> str:
    """Run the test with each registry live in turn; the API needs the database for
    its keys either way."""
    settings.USE_JSON_REGISTRY = request.param == "json"
    return request.param


@pytest.fixture
def api_key(db) -> str:
    from registry.models import ApiKey

    key = ApiKey(name="tests")
    raw = key.set_new_key()
    key.save()
    return raw


@pytest.fixture
def api(client, api_key: str, data_dir: Path):
    """Django's test client with a valid API key on every request."""
    client.defaults["HTTP_X_API_KEY"] = api_key
    return client


def vector_file_ids(data_dir: Path) -> list[str]:
    """The document id of every chunk in vec.json, as a user inspecting the file sees it."""
    import orjson

    path = data_dir / "vec.json"
    if not path.exists():
        return []
    return [chunk["file_id"] for chunk in orjson.loads(path.read_bytes())["chunks"]]


class LiveService:
    """The service under gunicorn with uvicorn workers, as production runs it."""

    def __init__(self, base_url: str, api_key: str, data_dir: Path) -> None:
        self.base_url = base_url
        self.api_key = api_key
        self.data_dir = data_dir


@pytest.fixture
def live_service(tmp_path: Path) -> Iterator[LiveService]:
    """gunicorn (3 workers) on this test's data directory and the test run's database.

    On PostgreSQL it serves the test database, so tests using it must be marked
    django_db(transaction=True) for their rows to be visible to it; on SQLite, whose test
    database lives in memory, it gets a migrated file of its own.
    """
    import time
    import urllib.request

    from django.conf import settings as django_settings

    from registry.models import ApiKey

    data = tmp_path / "live-data"
    data.mkdir()
    if on_postgres():
        db = connection.settings_dict
        host, port = db["HOST"] or "127.0.0.1", db["PORT"] or 5432
        database_url = f"postgresql://{db['USER']}@{host}:{port}/{db['NAME']}"
        env = child_env(DATABASE_URL=database_url, DATA_DIR=str(data), DB_POOL_SIZE="1")
        key = ApiKey(name="live")
        raw_key = key.set_new_key()
        key.save()
    else:
        env = child_env(DATABASE_URL=f"sqlite:///{data / 'db.sqlite3'}", DATA_DIR=str(data))
        assert run_manage("migrate", "-v0", env=env).returncode == 0
        created = run_manage("create_api_key", "live", env=env)
        raw_key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    env.update(
        BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="3",
        MAX_UPLOAD_MB=str(django_settings.MAX_UPLOAD_MB),
        INGEST_ALLOW_PRIVATE_URLS="false",
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.asgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(f"gunicorn exited: {process.stderr.read()[-3000:]}")
            try:
                with urllib.request.urlopen(base_url + "/health", timeout=2):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError("gunicorn did not answer /health within 60 s") from None
                time.sleep(0.3)
        yield LiveService(base_url, raw_key, data)
    finally:
        process.terminate()
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def http_get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def wait_until_listening(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.stderr.read())
        try:
            urllib.request.urlopen(base + "/docs", timeout=1)  # noqa: S310
            return
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError("the server did not start")
