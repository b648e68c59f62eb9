from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

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
