"""The service under gunicorn: several worker processes, the ASGI upload limit."""

from __future__ import annotations

import http.client
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import orjson
import pytest

from tests.documents import HANDBOOK_PDF_PAGES, make_pdf
from tests.helpers import LiveService, stored_chunks, without_queue

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads committed rows


@pytest.fixture
def live_service(start_module_service) -> LiveService:
    """One server for the module's tests; each keeps to a workspace of its own."""
    return start_module_service()


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
