"""Several hosts with a network between them (docs/deployment.md#several-hosts).

PostgreSQL 18 with pgvector, two web servers, two job workers, the embedding service and
the test's client each on a host of their own: Linux network namespaces on one switch
(tests/support/netns.py), VECTOR_STORE=pgvector. A host is cut off by taking its cable
out: its packets are dropped, as on a dead link, not refused as by a stopped server.

Each host has its own data directory: nothing is shared but the database. Jobs embed
through a stand-in for Gemini's embedding API on its own host that answers a batch of
100 chunks after 1.5 s (tests/support/http_server.slow_embeddings), so a 150-chunk job
is mid-way for seconds without taking a core.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.jobs.test_background_ingest import PARKING, ended, long_text
from tests.support.http_server import CannedServer, slow_embeddings
from tests.support.live import multipart
from tests.support.netns import (
    Host,
    NamespacedPostgres,
    Network,
    http,
    require,
    serving,
    working,
)
from tests.support.paths import ROOT
from tests.support.processes import child_env


class Cluster:
    """The hosts' service: its settings, its API key, and requests from the client."""

    def __init__(self, client: Host, env: dict[str, str], key: str) -> None:
        self.client, self.env, self.key = client, env, key

    def call(self, base: str, method: str, path: str, payload: Any = None) -> tuple[int, Any]:
        body = None if payload is None else json.dumps(payload).encode()
        headers = {"X-API-Key": self.key, "Content-Type": "application/json"}
        status, answer = http(self.client, method, base + path, body, headers)
        return status, json.loads(answer) if answer.startswith((b"{", b"[")) else answer

    def upload(self, base: str, name: str, data: bytes) -> dict[str, Any]:
        body, headers = multipart(name, data, {"async": "true"})
        status, answer = http(self.client, "POST", base + "/ingest/file", body,
                              {**headers, "X-API-Key": self.key})  # fmt: skip
        assert status == 202, answer
        return json.loads(answer)

    def wait(
        self, base: str, job: dict, until: Callable[[dict], bool], seconds: float = 120
    ) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            status, state = self.call(base, "GET", f"/jobs/{job['jobId']}")
            if status == 200 and until(state):
                return state
            assert time.monotonic() < deadline, state
            time.sleep(0.2)


# How a job's run ends in its worker's log (ingest/jobs/runner.py).
ENDS = ("stopped: cancelled or taken back", "left to its lease", "queued again")


def manage(host: Host, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = host.command(sys.executable, str(ROOT / "manage.py"), *args)
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)


def set_up(net: Network, names: list[str]) -> dict[str, Host]:
    """The database's host, the client's, and these; the client and the web servers on
    the front network too."""
    return {
        name: net.host(name, front=name == "client" or name.startswith("web"))
        for name in ["db", "client", *names]
    }


def service_env(postgres: NamespacedPostgres, hosts: dict[str, Host], **settings: str) -> dict:
    addresses = ",".join(host.front_address for host in hosts.values() if host.front_address)
    return child_env(
        DATABASE_URL=postgres.url, VECTOR_STORE="pgvector", ALLOWED_HOSTS=addresses, **settings
    )


def start(postgres: NamespacedPostgres, hosts: dict[str, Host], env: dict) -> Cluster:
    migrated = manage(hosts["db"], env, "migrate", "--noinput")
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    made = manage(hosts["db"], env, "create_api_key", "hosts")
    assert made.returncode == 0, made.stderr[-3000:]
    return Cluster(hosts["client"], env, made.stdout.strip().splitlines()[-1])


def chunk_rows(postgres: NamespacedPostgres, file_id: str) -> list[int]:
    rows = postgres.rows("SELECT chunk_index FROM chunks WHERE file_id = %s", (file_id,))
    return sorted(index for (index,) in rows)


def own_data(env: dict[str, str], tmp_path: Path, host: Host) -> dict[str, str]:
    """The host's settings with a data directory of its own: hosts share no disk."""
    directory = tmp_path / host.name
    directory.mkdir(exist_ok=True)
    return {**env, "DATA_DIR": str(directory)}


def test_an_upload_to_one_web_server_is_answered_by_the_other_and_jobs_outlive_their_workers(
    tmp_path: Path,
):
    require()
    log: list[str] = []
    with Network() as net:
        hosts = set_up(net, ["web1", "web2", "worker1", "worker2", "embedder"])
        postgres = NamespacedPostgres(hosts["db"], tmp_path / "postgres")
        embedder = hosts["embedder"]
        try:
            with slow_embeddings(1.5, lambda: embedder.run(CannedServer, embedder.address)) as ai:
                env = service_env(
                    postgres,
                    hosts,
                    JOB_LEASE_SECONDS="4",
                    JOB_RETRY_SECONDS="1",
                    GENERATION_TIMEOUT="5",
                    **ai,
                )
                service = start(postgres, hosts, env)
                on = {name: own_data(env, tmp_path, hosts[name]) for name in hosts}
                client = hosts["client"]
                with (
                    serving(hosts["web1"], on["web1"], client, log) as one,
                    serving(hosts["web2"], on["web2"], client, log) as two,
                ):
                    run_the_scenarios(service, postgres, hosts, on, one, two, log)
        finally:
            postgres.stop()


def run_the_scenarios(
    service: Cluster,
    postgres: NamespacedPostgres,
    hosts: dict[str, Host],
    on: dict[str, dict[str, str]],
    one: str,
    two: str,
    log: list[str],
) -> None:
    # An upload sent in the background to web server 1 is answered by /ask on web server 2.
    with working(hosts["worker1"], on["worker1"], log) as first:
        parking = service.upload(one, "parking.txt", PARKING.encode())
        done = service.wait(two, parking, ended)
        assert done["status"] == "succeeded", (done, first.lines[-20:])
        # The stand-in's vectors are words hashed: a question close in words to the chunk.
        question = {"q": "Where do employees park behind the warehouse?"}
        status, answer = service.call(two, "POST", "/ask", question)
        assert status == 200, answer
        assert [source["fileId"] for source in answer["sources"]][:1] == [parking["fileId"]], (
            answer,
            service.call(two, "GET", "/documents"),
            log[-30:],
        )

        # The worker holding a job is killed (SIGKILL); the other finishes it, once.
        manifest = service.upload(one, "manifest.txt", long_text(150))
        service.wait(two, manifest, lambda job: job["progress"]["chunksDone"] >= 64)
        with working(hosts["worker2"], on["worker2"], log) as second:
            first.process.kill()
            first.process.wait()
            done = service.wait(two, manifest, ended)
            assert (done["status"], done["attempts"]) == ("succeeded", 2), second.lines[-20:]
            chunks = done["document"]["numChunks"]
            assert chunk_rows(postgres, manifest["fileId"]) == list(range(chunks))

            # The worker holding a job is cut off mid-job: the other takes it over after
            # the lease; the cut-off one's late writes are refused when its link returns,
            # and it carries on with new jobs by itself.
            ledger = service.upload(one, "ledger.txt", long_text(160))  # not a copy
            service.wait(two, ledger, lambda job: job["progress"]["chunksDone"] >= 64)
            with working(hosts["worker1"], on["worker1"], log) as replacement:
                hosts["worker2"].cut()
                cut = time.monotonic()
                done = service.wait(two, ledger, ended, seconds=180)
                taken_over = time.monotonic() - cut
                assert (done["status"], done["attempts"]) == ("succeeded", 2), (
                    done,
                    replacement.lines[-20:],
                )
            hosts["worker2"].restore()
            deadline = time.monotonic() + 60

            def outcome() -> list[str]:  # what the cut-off worker did with its job at last
                late = [line for line in second.lines if ledger["jobId"] in line]
                return [line for line in late if any(word in line for word in ENDS)]

            while not outcome():
                assert time.monotonic() < deadline, second.lines[-20:]
                time.sleep(0.2)
            # Either its write came after the link and was refused (the fencing), or it
            # met the dead link first and left the job to its lease: never "queued again".
            assert any(end in outcome()[0] for end in ENDS[:2]), outcome()
            chunks = done["document"]["numChunks"]
            assert chunk_rows(postgres, ledger["fileId"]) == list(range(chunks))
            assert service.call(two, "GET", f"/jobs/{ledger['jobId']}")[1]["attempts"] == 2

            # It carries on by itself: the only worker left runs the next job.
            notes = service.upload(two, "notes.txt", b"The tide at pier 4 turns at noon.")
            assert service.wait(one, notes, ended)["status"] == "succeeded", second.lines[-20:]
            assert second.process.poll() is None
    checked = manage(hosts["worker1"], on["worker1"], "check_registry")
    assert checked.returncode == 0, checked.stdout[-2000:] + checked.stderr[-2000:]
    print(f"job taken over {taken_over:.1f} s after its worker was cut off")


def test_a_web_server_cut_off_from_the_database_answers_503_in_time_and_200_once_it_is_back(
    tmp_path: Path,
):
    """Measured before (issue 36): the first request on a pooled connection hung past
    60 s, /health took 8 s. Now: DB_NETWORK_TIMEOUT (5 s) bounds every wait on the dead
    link, within DB_POOL_TIMEOUT (10 s), and the first request after the link returns
    is served within a second."""
    require()
    log: list[str] = []
    with Network() as net:
        hosts = set_up(net, ["web"])
        postgres = NamespacedPostgres(hosts["db"], tmp_path / "postgres")
        try:
            env = service_env(postgres, hosts, DB_POOL_SIZE="2")
            service = start(postgres, hosts, env)
            with serving(hosts["web"], own_data(env, tmp_path, hosts["web"]), service.client,
                         log) as web:  # fmt: skip
                for path in ("/documents", "/health", "/documents", "/health"):  # pools warm
                    assert service.call(web, "GET", path)[0] == 200
                hosts["web"].cut()
                timings = []
                for path in ("/documents", "/documents", "/health", "/documents"):
                    started = time.monotonic()
                    status, body = service.call(web, "GET", path)
                    timings.append((path, status, round(time.monotonic() - started, 2)))
                    assert status == 503, (path, body, timings)
                assert all(took < 10 for _, _, took in timings), timings  # DB_POOL_TIMEOUT
                assert timings[1][2] < 2, timings  # the outage is known: refused at once
                hosts["web"].restore()
                back = time.monotonic()
                while (status := service.call(web, "GET", "/documents")[0]) != 200:
                    assert status == 503
                    assert time.monotonic() - back < 1.0, "not served within 1 s of the link"
                    time.sleep(0.05)
                served_after = time.monotonic() - back
                assert served_after < 1.0, f"served {served_after:.2f} s after the link"
                assert service.call(web, "GET", "/health")[0] == 200
        finally:
            postgres.stop()
    print(f"503s: {timings}; served {served_after:.2f} s after the link returned")
