"""GET /health: what a load balancer and an operator see."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.support.live import http_get, without_queue
from tests.support.processes import child_env, free_port, running_server


@pytest.mark.django_db
def test_it_reports_ok_when_the_database_answers(client):
    response = client.get("/health")
    assert response.status_code == 200
    assert without_queue(response.json()) == {"ok": True, "db": True}


@pytest.mark.django_db
def test_it_names_the_json_registry_when_it_is_live(client, json_registry_path: Path):
    response = client.get("/health")
    assert response.status_code == 200
    assert without_queue(response.json()) == {"ok": True, "db": True, "registry": "json"}


@pytest.mark.django_db
def test_a_corrupt_json_registry_is_not_ok(client, json_registry_path: Path):
    json_registry_path.write_bytes(b'[{"fileId": "trunc')
    response = client.get("/health")
    assert response.status_code == 503
    assert without_queue(response.json()) == {"ok": False, "db": True, "registry": "json"}


def test_it_answers_503_quickly_when_the_database_is_down(tmp_path: Path):
    closed = free_port()  # nothing listens here
    env = child_env(
        DATABASE_URL=f"postgresql+asyncpg://postgres@127.0.0.1:{closed}/postgres?sslmode=disable",
        DATA_DIR=str(tmp_path),
        DB_POOL_TIMEOUT="60",
    )
    with running_server(env) as base:
        started = time.monotonic()
        status, body = http_get(base + "/health")
        elapsed = time.monotonic() - started
        assert status == 503
        assert body == {"ok": False, "db": False}
        # HEALTH_TIMEOUT (default 3 s) at most: never the pool's 60 s wait.
        assert elapsed < 30, f"/health took {elapsed:.1f}s with the database down"
        # A second probe is just as quick: nothing is left hanging from the first.
        started = time.monotonic()
        assert http_get(base + "/health")[0] == 503
        assert time.monotonic() - started < 30
