"""The service under gunicorn, as an operator runs it: several worker processes, the ASGI
upload limit; behind a proxy, its log, its control socket, the bare address (issue 13)."""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest

from tests.support.documents import HANDBOOK_PDF_PAGES, make_pdf
from tests.support.inspection import stored_chunks
from tests.support.live import LiveService, without_queue
from tests.support.paths import ROOT
from tests.support.processes import child_env, running_server

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads committed rows


@pytest.fixture
def live_service(start_module_service) -> LiveService:
    """One server of three workers for the module's tests; each keeps to a workspace of
    its own."""
    return start_module_service(workers=3)


def file_ids_in(service: LiveService, workspace: str) -> list[str]:
    """The document id of every chunk the store holds in `workspace`."""
    chunks = stored_chunks(service.data_dir)
    return [chunk["file_id"] for chunk in chunks if chunk["workspace"] == workspace]


def test_concurrent_ingests_from_several_processes_lose_nothing(live_service: LiveService):
    def ingest(n: int) -> tuple[int, dict]:
        text = f"Report {n}. The {n}th shipment of widgets arrived on day {n}. " * 40
        return live_service.post_file(f"report-{n}.txt", text.encode(), {"workspace": "concurrent"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(ingest, range(24)))
    assert [(status, body["created"]) for status, body in results] == [(200, True)] * 24, results
    listed = live_service.call("GET", "/documents?workspace=concurrent&limit=500")[1]
    assert listed["total"] == 24
    stored = Counter(file_ids_in(live_service, "concurrent"))
    assert stored == {d["fileId"]: d["numChunks"] for _, d in results}


def test_the_same_upload_at_once_from_several_workers_stores_one_document(
    live_service: LiveService,
):
    same = b"Identical content sent many times at once."
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(
                lambda _: live_service.post_file("same.txt", same, {"workspace": "same"}),
                range(6),
            )
        )
    created = sorted(body["created"] for _, body in results)
    assert created == [False] * 5 + [True], results
    assert len({document["fileId"] for _, document in results}) == 1
    assert set(file_ids_in(live_service, "same")) == {results[0][1]["fileId"]}


def test_an_oversized_upload_is_refused_from_its_content_length(live_service: LiveService):
    parts = urlsplit(live_service.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    started = time.monotonic()
    connection.putrequest("POST", "/ingest/file")
    connection.putheader("X-API-Key", live_service.api_key)
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(200 * 1024 * 1024))
    connection.endheaders()
    connection.send(b"--x\r\n")  # and never the other 200 MB
    response = connection.getresponse()
    assert response.status == 413
    assert orjson.loads(response.read()) == {
        "detail": "Request body over the 25 MB upload limit (MAX_UPLOAD_MB)"
    }
    assert time.monotonic() - started < 30  # at once, not when the client gives up (60 s)
    connection.close()


def test_an_oversized_upload_in_the_admin_gets_a_page_not_json(live_service: LiveService):
    parts = urlsplit(live_service.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    connection.putrequest("POST", "/admin/registry/document/add/")
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Content-Length", str(200 * 1024 * 1024))
    connection.endheaders()
    connection.send(b"--x\r\n")
    response = connection.getresponse()
    assert response.status == 413
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    page = response.read().decode()
    assert "<h1>Upload too large</h1>" in page
    assert "over the 25 MB upload limit (MAX_UPLOAD_MB). Go back and choose a smaller" in page
    connection.close()


def test_a_client_that_sends_a_body_just_over_the_limit_reads_the_413(live_service):
    # http.client sends the whole body before it reads: the server must not hang up on it
    # mid-send (a broken pipe), however often this is tried.
    body = b"word " * (26 * 1024 * 1024 // 5)
    for _ in range(5):
        status, error = live_service.post_file("big.txt", body)
        assert (status, error) == (
            413,
            {"detail": "Request body over the 25 MB upload limit (MAX_UPLOAD_MB)"},
        )


def test_an_oversized_chunked_upload_is_cut_off(live_service: LiveService):
    parts = urlsplit(live_service.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.putrequest("POST", "/ingest/file")
    connection.putheader("X-API-Key", live_service.api_key)
    connection.putheader("Content-Type", "multipart/form-data; boundary=x")
    connection.putheader("Transfer-Encoding", "chunked")
    connection.endheaders()
    block = b"a" * (1024 * 1024)
    try:
        for _ in range(40):  # 40 MB, well over the 25 MB limit
            connection.send(b"%x\r\n" % len(block) + block + b"\r\n")
        connection.send(b"0\r\n\r\n")
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server may stop reading once it has answered
    response = connection.getresponse()
    assert response.status == 413
    connection.close()
    status, listing = live_service.call("GET", "/documents")  # the default workspace
    assert (status, listing["total"]) == (200, 0)


def test_health_and_a_real_pdf_under_gunicorn(live_service: LiveService):
    assert without_queue(live_service.call("GET", "/health")) == (200, {"ok": True, "db": True})
    status, document = live_service.post_file(
        "handbook.pdf", make_pdf(HANDBOOK_PDF_PAGES), {"workspace": "handbook"}
    )
    assert (status, document["created"]) == (200, True)
    status, answer = live_service.post_json(
        "/ask", {"q": "Where do employees park?", "workspace": "handbook"}
    )
    assert status == 200
    assert "lot B" in answer["answer"]
    assert answer["sources"][0]["fileId"] == document["fileId"]


SECRET = "operations-test-" + "k" * 50


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
    """Status and headers (names in lower case), redirects not followed."""
    opener = urllib.request.build_opener(_NoRedirects)
    request = urllib.request.Request(url, headers=headers or {})  # noqa: S310
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}


def production(child_database_url: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return child_env(
        DEBUG="false",
        SECRET_KEY=SECRET,
        ALLOWED_HOSTS="127.0.0.1",
        DATABASE_URL=child_database_url,
        DATA_DIR=str(data),
        XDG_RUNTIME_DIR=str(tmp_path),
        # The SQLite pass runs production settings on its file too.
        ALLOW_SQLITE_IN_PRODUCTION=str(child_database_url.startswith("sqlite")).lower(),
        **overrides,
    )


class TestBehindAProxy:
    """One setting decides whose X-Forwarded-Proto counts, for the server and Django."""

    def forwarded_https(self, env: dict[str, str]) -> int:
        with running_server(env, workers=1) as base:
            return fetch(base + "/docs", {"X-Forwarded-Proto": "https"})[0]

    def test_not_trusted_by_default_even_from_localhost(self, child_database_url, tmp_path):
        env = production(child_database_url, tmp_path)
        assert self.forwarded_https(env) == 301  # still redirected to https

    def test_trusted_from_the_trusted_proxies(self, child_database_url, tmp_path):
        env = production(child_database_url, tmp_path, TRUST_X_FORWARDED_PROTO="true")
        assert self.forwarded_https(env) == 200

    def test_not_trusted_from_any_other_address(self, child_database_url, tmp_path):
        env = production(
            child_database_url,
            tmp_path,
            TRUST_X_FORWARDED_PROTO="true",
            TRUSTED_PROXIES="10.9.9.9",
        )
        assert self.forwarded_https(env) == 301


def test_the_log_has_no_lifespan_or_static_noise_and_each_4xx_once(
    child_database_url, child_api_key, tmp_path
):
    env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path), DEBUG="true")
    key = child_api_key
    log: list[str] = []
    with running_server(env, workers=2, log=log) as base:
        assert fetch(base + "/documents/no-such-document", {"X-API-Key": key})[0] == 404
        stylesheet = base + "/static/admin/css/base.css"
        with urllib.request.urlopen(stylesheet, timeout=10) as css:  # noqa: S310
            assert css.headers["Content-Type"].startswith("text/css")
            assert b"body" in css.read()
    text = "\n".join(log)
    assert "lifespan" not in text
    assert "StreamingHttpResponse" not in text, text[-2000:]  # static files served async
    assert text.count("Not Found: /documents/no-such-document") == 1, text[-2000:]


def test_the_bare_address_leads_to_the_api_docs(child_database_url, tmp_path):
    env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path))
    with running_server(env, workers=1) as base:
        status, headers = fetch(base + "/")
    assert (status, headers.get("location")) == (302, "/docs"), headers


def test_each_instance_has_a_control_socket_of_its_own(child_database_url, tmp_path):
    env = child_env(
        DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path)
    )
    with running_server(env, workers=1):
        with running_server(env, workers=1):
            assert len(list(tmp_path.glob("docservice-*.ctl"))) == 2
        # The second stopped: the first one's socket is still there.
        assert len(list(tmp_path.glob("docservice-*.ctl"))) == 1


def test_a_configuration_error_under_gunicorn_is_one_line(tmp_path):
    env = child_env(DEBUG="false", SECRET_KEY="", BIND="127.0.0.1:0", DATA_DIR=str(tmp_path))
    started = subprocess.run(
        [sys.executable, "-m", "gunicorn", "config.asgi:application", "-c", "gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 1
    assert "Configuration error: Missing SECRET_KEY: set it in .env or environment" in (
        started.stderr
    )
    assert "Traceback" not in started.stderr
    assert len(started.stderr.strip().splitlines()) <= 2, started.stderr  # and gunicorn's hello
