"""GET /metrics (issue 36): scraped as Prometheus scrapes it, read with prometheus-client's
own parser, from real servers and workers: every process of a host served as one, the
counters moving with requests, questions and jobs, the queue read from the database, the
pools' waits and the database's outages, and the scrape refused to whoever may not have it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from common.metrics import remove_dead_files
from config.serving.metrics import route_label
from tests.formats.test_scans import saved, scanned_page
from tests.support.live import LiveService, multipart
from tests.support.processes import (
    Postgres,
    child_process,
    free_port,
    running_server,
    service_of_its_own,
)

pytestmark = pytest.mark.django_db(transaction=True)  # the servers and workers commit

PARKING = b"# Parking\n\nEmployees park in lot B behind the warehouse. Visitors park in front."
HTTP = "docservice_http_request_duration_seconds_count"
TOKEN = "scrape-token-" + "x" * 24


@dataclass(frozen=True)
class Scrape:
    """One scrape's samples, by name and labels."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def __call__(self, name: str, **labels: str) -> float | None:
        """The sample's value, or None when the scrape has no such sample."""
        return self.samples.get((name, frozenset(labels.items())))

    def names(self) -> set[str]:
        return {name for name, _ in self.samples}


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def scrape(base_url: str, headers: dict[str, str] | None = None) -> Scrape:
    status, text = fetch(base_url + "/metrics", headers)
    assert status == 200, text
    return Scrape(
        {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
    )


def wait_until(condition: Callable[[], Any], *, within: float = 60, what: str = "") -> Any:
    deadline = time.monotonic() + within
    while not (result := condition()):
        assert time.monotonic() < deadline, f"not within {within} s: {what}"
        time.sleep(0.2)
    return result


def post_async(service: LiveService, name: str, data: bytes) -> dict[str, Any]:
    body, headers = multipart(name, data, {"async": "true"})
    status, _, job = service.request("POST", "/ingest/file", body, headers)
    assert status == 202, job
    return job


def finished(service: LiveService, job_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        job = service.call("GET", f"/jobs/{job_id}")[1]
        return job if job["status"] in ("succeeded", "failed", "cancelled") else None

    return wait_until(ended, what=f"job {job_id} to end")


def processes_counting(metrics_dir: Path, route: str) -> set[str]:
    """The pids whose own file (a process's, in METRICS_DIR) counts requests to `route`."""
    pids = set()
    for file in metrics_dir.glob("histogram_*.db"):
        for metric in MultiProcessCollector.merge([str(file)]):
            for sample in metric.samples:
                if sample.name == HTTP and sample.labels["route"] == route and sample.value:
                    pids.add(file.stem.rpartition("_")[2])
    return pids


def worker(env: dict[str, str], *more: str) -> Any:
    """A db_worker polling often, with more options."""
    args = ["manage.py", "db_worker", "--interval", "0.2", "--no-startup-delay", "--no-reload"]
    return child_process([*args, *more], env, None)


def test_two_web_workers_and_a_db_worker_are_scraped_as_one_host(start_live_service):
    service = start_live_service(workers=2)
    route = "/documents/{fileId}"
    # Requests on connections of their own, eight at a time, until both web workers
    # have answered some: each counts in a file of its own.
    sent = 0
    while len(processes_counting(service.data_dir / "metrics", route)) < 2:
        assert sent < 400, "one web worker answered every request"
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(
                pool.map(lambda n: service.call("GET", f"/documents/missing-{n}"), range(8))
            )
        assert {status for status, _ in answers} == {404}
        sent += 8
    # Whichever worker answers the scrape, it counts every process's requests.
    for _ in range(4):
        metrics = scrape(service.base_url)
        assert metrics(HTTP, route=route, method="GET", status="404") == sent
        assert metrics("docservice_ingest_jobs", status="queued") == 0

    job = post_async(service, "parking.md", PARKING)
    queued = wait_until(
        lambda: (m := scrape(service.base_url))("docservice_ingest_jobs", status="queued") and m,
        what="the job counted as queued (the queue is read at most every 2 s)",
    )
    assert queued("docservice_ingest_jobs_total", outcome="succeeded") == 0
    time.sleep(3.5)  # each process reads the queue at most every 2 s
    assert scrape(service.base_url)("docservice_ingest_queue_oldest_seconds") >= 1.5
    with worker(service.env):
        done = finished(service, job["jobId"])
        assert done["status"] == "succeeded", done
    # The db_worker has ended (SIGTERM): what it counted stays counted.
    metrics = scrape(service.base_url)
    assert metrics("docservice_ingest_jobs_total", outcome="succeeded") == 1
    assert metrics("docservice_chunks_embedded_total") == done["document"]["numChunks"]
    assert metrics(HTTP, route=route, method="GET", status="404") == sent
    assert metrics(HTTP, route="/ingest/file", method="POST", status="202") == 1
    assert metrics("docservice_db_down") == 0
    wait_until(
        lambda: scrape(service.base_url)("docservice_ingest_jobs", status="queued") == 0,
        what="the queue read empty again",
    )
    assert (
        metrics(
            "docservice_info",
            embedder="hashing-v1",
            vector_store=service.env.get("VECTOR_STORE", "json"),
            registry="database",
            answer_generator="extractive",
        )
        == 1
    )


class TestCounting:
    """Each test reads what its own requests added (a server shared by the module)."""

    @pytest.fixture
    def service(self, start_module_service) -> LiveService:
        return start_module_service()

    def test_routes_are_url_patterns_whatever_the_path(self, service):
        before = scrape(service.base_url)
        for path in ("/documents/a", "/documents/b", "/documents/c"):
            assert service.call("GET", path)[0] == 404
        assert service.call("GET", "/documents/a", with_key=False)[0] == 401
        assert fetch(service.base_url + "/no/such/thing")[0] == 404
        after = scrape(service.base_url)

        def added(route: str, status: str) -> float:
            labels = {"route": route, "method": "GET", "status": status}
            return (after(HTTP, **labels) or 0) - (before(HTTP, **labels) or 0)

        assert added("/documents/{fileId}", "404") == 3
        assert added("/documents/{fileId}", "401") == 1
        assert added("unmatched", "404") == 1
        assert not any(
            "/documents/a" in str(labels) or "/no/such" in str(labels)
            for _, labels in after.samples
        )

    def test_a_question_counts_each_of_its_phases(self, service):
        status, document = service.post_file("parking.md", PARKING, {"workspace": "phases"})
        assert status == 200, document
        before = scrape(service.base_url)
        for stream in (False, True):  # a streamed answer's events are read to the end
            question = {"q": "Where do employees park?", "workspace": "phases", "stream": stream}
            request = urllib.request.Request(  # noqa: S310
                service.base_url + "/ask",
                data=orjson.dumps(question),
                headers={"Content-Type": "application/json", "X-API-Key": service.api_key},
            )
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                assert (response.status, b"lot B" in response.read()) == (200, True)
        after = scrape(service.base_url)
        for phase in ("embedding", "search", "answering"):
            count = "docservice_ask_phase_seconds_count"
            assert after(count, phase=phase) - before(count, phase=phase) == 2, phase
            seconds = "docservice_ask_phase_seconds_sum"
            assert after(seconds, phase=phase) > before(seconds, phase=phase), phase
        labels = {"route": "/ask", "method": "POST", "status": "200"}
        assert after(HTTP, **labels) - (before(HTTP, **labels) or 0) == 2
        assert after("docservice_chunks_embedded_total") >= document["numChunks"]


def test_a_scrape_from_elsewhere_or_with_a_wrong_token_is_refused(start_live_service):
    """In production (DEBUG=false, HTTPS redirects on), with loopback not allowed: only the
    token opens it, over plain HTTP and to an address Django's ALLOWED_HOSTS does not list."""
    service = start_live_service(
        DEBUG="false",
        SECRET_KEY="metrics-test-" + "k" * 40,
        ALLOW_SQLITE_IN_PRODUCTION="true",
        METRICS_ALLOWED_NETWORKS="192.0.2.0/24",
        METRICS_TOKEN=TOKEN,
    )
    url = service.base_url + "/metrics"
    for headers in (
        {},
        {"Authorization": "Bearer wrong-" + TOKEN},
        {"Authorization": TOKEN},  # no scheme
        {"X-API-Key": service.api_key},  # an API key is not a scrape token
    ):
        status, text = fetch(url, headers)
        assert (status, text) == (
            403,
            "Metrics are served to METRICS_ALLOWED_NETWORKS reaching the server directly, "
            "or with an Authorization: Bearer METRICS_TOKEN header\n",
        ), headers
    port = service.base_url.rsplit(":", 1)[1]
    allowed = {"Authorization": f"Bearer {TOKEN}", "Host": f"10.1.2.3:{port}"}
    metrics = scrape(service.base_url, allowed)
    assert metrics(HTTP, route="/metrics", method="GET", status="403") == 4


def test_behind_a_proxy_a_local_address_is_not_enough(client, settings):
    """A proxy on the same host makes every client local: a request that carries a
    forwarding header needs the token."""
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 403
    for header in ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP"):
        forwarded = {header: "203.0.113.9"}
        response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", **forwarded)
        assert response.status_code == 403, header
        settings.METRICS_TOKEN = TOKEN
        with_token = client.get(
            "/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **forwarded
        )
        assert with_token.status_code == 200, header
        settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


def test_route_labels_read_as_the_api_documents_them():
    assert route_label("documents/<fileId>") == "/documents/{fileId}"
    assert route_label("documents/<fileId>/file") == "/documents/{fileId}/file"
    assert route_label("admin/registry/document/<path:object_id>/change/") == (
        "/admin/registry/document/{object_id}/change/"
    )
    assert route_label("") == "/"


def test_without_metrics_there_is_no_endpoint_and_no_directory(start_live_service):
    service = start_live_service(METRICS_ENABLED="false")
    assert fetch(service.base_url + "/metrics")[0] == 404
    assert service.call("GET", "/documents")[0] == 200
    assert not (service.data_dir / "metrics").exists()


def test_requests_waiting_for_a_pooled_connection_are_counted(start_live_service):
    """One connection per pool and many reads at once: most of them wait for it. Each
    process samples its pools every 5 s (common/db/pool_metrics.py)."""
    service = start_live_service(DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0")
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(lambda _: service.call("GET", "/documents"), range(160)))
    assert {status for status, _ in answers} == {200}
    assert service.post_file("parking.md", PARKING)[0] == 200  # Django's pool: a write

    def sampled() -> Scrape | None:
        metrics = scrape(service.base_url)
        waits = metrics("docservice_db_pool_waits_total", pool="async-reads")
        return metrics if waits and metrics("docservice_db_pool_connections", **django) else None

    django = {"pool": "django", "state": "open"}
    metrics = wait_until(sampled, within=20, what="the pools sampled")
    assert metrics("docservice_db_pool_wait_seconds_total", pool="async-reads") > 0
    assert metrics("docservice_db_pool_connections", pool="async-reads", state="open") == 1
    assert metrics("docservice_db_pool_errors_total", pool="async-reads") == 0
    assert metrics("docservice_db_pool_requests_waiting", pool="async-reads") == 0


def test_the_database_s_outage_is_a_gauge_while_it_lasts(postgres: Postgres, tmp_path: Path):
    data = tmp_path / "data"
    env, key = service_of_its_own(postgres.url, data, HEALTH_TIMEOUT="2")
    with running_server(env, workers=1) as base:
        service = LiveService(base, key, data)
        assert service.call("GET", "/documents")[0] == 200
        assert scrape(base)("docservice_db_down") == 0
        postgres.stop()
        assert service.call("GET", "/documents")[0] == 503
        time.sleep(2.1)  # the queue, read at most every 2 s, is read again
        down = scrape(base)  # a scrape answers all the same, without the queue
        assert (down("docservice_db_down"), down("docservice_db_outages_total")) == (1, 1)
        assert down("docservice_ingest_jobs", status="queued") is None
        postgres.start()
        wait_until(lambda: service.call("GET", "/documents")[0] == 200, within=30)
        back = scrape(base)
        assert (back("docservice_db_down"), back("docservice_db_outages_total")) == (0, 1)
        assert back("docservice_ingest_jobs", status="queued") == 0


def test_a_worker_on_a_host_of_its_own_serves_its_metrics(start_live_service, tmp_path):
    """A db_worker with --metrics-port and a METRICS_DIR of its own (another host): it
    serves what it counts (its job, the pages it read by OCR, the chunks it embedded),
    under the same rule; the queue's figures are the web servers'."""
    service = start_live_service()
    port = free_port()
    env = {
        **service.env,
        "METRICS_DIR": str(tmp_path / "worker-host"),
        "METRICS_ALLOWED_NETWORKS": "192.0.2.0/24",
        "METRICS_TOKEN": TOKEN,
    }
    scan = saved([scanned_page("The boiler room key is kept\nby the night porter.")], "PNG")
    job = post_async(service, "notes.png", scan)
    with worker(env, "--metrics-port", str(port)):
        done = finished(service, job["jobId"])
        assert done["status"] == "succeeded", done
        base = f"http://127.0.0.1:{port}"
        assert fetch(base + "/metrics")[0] == 403
        metrics = scrape(base, {"Authorization": f"Bearer {TOKEN}"})
    assert metrics("docservice_ingest_jobs_total", outcome="succeeded") == 1
    assert metrics("docservice_ocr_pages_total") == 1
    assert metrics("docservice_chunks_embedded_total") == done["document"]["numChunks"]
    assert "docservice_ingest_jobs" not in metrics.names()
    served = scrape(service.base_url)  # the web server's host counted none of it
    assert served("docservice_ingest_jobs_total", outcome="succeeded") == 0
    assert served("docservice_ocr_pages_total") == 0


def test_gunicorn_starting_keeps_the_files_of_processes_still_running(tmp_path: Path):
    """`make run` starts its db_worker a moment before gunicorn, whose start removes a
    previous run's files: the worker's, its process running, stay."""
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    gone, running = int(ended.stdout), os.getpid()
    for pid in (gone, running):
        for kind in ("counter", "histogram", "gauge_livemax"):
            (tmp_path / f"{kind}_{pid}.db").write_bytes(b"")
    assert remove_dead_files(tmp_path) == 3
    assert sorted(file.name for file in tmp_path.iterdir()) == [
        f"counter_{running}.db",
        f"gauge_livemax_{running}.db",
        f"histogram_{running}.db",
    ]
