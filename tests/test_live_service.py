"""The service under gunicorn: several worker processes, the ASGI upload limit."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import orjson
import pytest

from tests.conftest import LiveService

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads committed rows


def request(
    service: LiveService, method: str, path: str, body: bytes = b"", headers: dict | None = None
) -> tuple[int, dict]:
    parts = urlsplit(service.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        connection.request(
            method, path, body=body, headers={"X-API-Key": service.api_key, **(headers or {})}
        )
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        connection.close()


def multipart(filename: str, data: bytes, workspace: str = "default") -> tuple[bytes, dict]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="workspace"\r\n\r\n'
            f'{workspace}\r\n--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_concurrent_ingests_from_several_processes_lose_nothing(live_service: LiveService):
    def ingest(n: int) -> tuple[int, dict]:
        text = f"Report {n}. The {n}th shipment of widgets arrived on day {n}. " * 40
        body, headers = multipart(f"report-{n}.txt", text.encode())
        return request(live_service, "POST", "/ingest/file", body, headers)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(ingest, range(24)))
    assert [status for status, _ in results] == [201] * 24, results
    assert request(live_service, "GET", "/documents?limit=500")[1]["total"] == 24
    vectors = orjson.loads((live_service.data_dir / "vec.json").read_bytes())
    stored: dict[str, int] = {}
    for chunk in vectors["chunks"]:
        stored[chunk["file_id"]] = stored.get(chunk["file_id"], 0) + 1
    assert stored == {d["file_id"]: d["num_chunks"] for _, d in results}


def test_the_same_upload_at_once_from_several_workers_stores_one_document(
    live_service: LiveService,
):
    body, headers = multipart("same.txt", b"Identical content sent many times at once.")
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(
            pool.map(
                lambda _: request(live_service, "POST", "/ingest/file", body, headers), range(6)
            )
        )
    statuses = sorted(status for status, _ in results)
    assert statuses.count(201) == 1 and statuses.count(200) == 5, statuses
    assert len({document["file_id"] for _, document in results}) == 1
    vectors = orjson.loads((live_service.data_dir / "vec.json").read_bytes())
    assert {chunk["file_id"] for chunk in vectors["chunks"]} == {results[0][1]["file_id"]}


def test_an_oversized_upload_is_refused_from_its_content_length(live_service: LiveService):
    parts = urlsplit(live_service.base_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
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
    assert time.monotonic() - started < 10
    connection.close()


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
    status, listing = request(live_service, "GET", "/documents")
    assert (status, listing["total"]) == (200, 0)


def test_health_and_a_real_pdf_under_gunicorn(live_service: LiveService):
    from tests.documents import HANDBOOK_PDF_PAGES, make_pdf

    assert request(live_service, "GET", "/health") == (200, {"ok": True, "db": True})
    body, headers = multipart("handbook.pdf", make_pdf(HANDBOOK_PDF_PAGES))
    status, document = request(live_service, "POST", "/ingest/file", body, headers)
    assert status == 201
    status, answer = request(
        live_service,
        "POST",
        "/ask",
        orjson.dumps({"question": "Where do employees park?"}),
        {"Content-Type": "application/json"},
    )
    assert status == 200
    assert "lot B" in answer["answer"]
    assert answer["sources"][0]["file_id"] == document["file_id"]
