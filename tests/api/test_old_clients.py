"""The old service's clients, unchanged, against this service under gunicorn.

Every request of the old contract is replayed as its clients send it (camelCase JSON,
multipart uploads, no key), and each answer is checked to hold at least what the old
service answered. Once with API_KEYS_REQUIRED=false (the cutover window) and no key, once
with keys required and a key.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import pytest

from tests.support.documents import HANDBOOK_PDF_PAGES, POLICY_TEXT, RELEASE_HTML, make_pdf
from tests.support.http_server import CannedServer
from tests.support.live import LiveService, without_queue

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads committed rows

HEX32 = re.compile("[0-9a-f]{32}")
NOTHING_FOUND = {"answer": "I couldn't find relevant context.", "sources": []}


@pytest.fixture
def site() -> Iterator[CannedServer]:
    with CannedServer("127.0.0.1") as server:
        server.routes["/release.html"] = lambda h: h.respond(
            200, RELEASE_HTML, [("Content-Type", "text/html; charset=utf-8")]
        )
        server.routes["/handbook.pdf"] = lambda h: h.respond(
            200, make_pdf(HANDBOOK_PDF_PAGES), [("Content-Type", "application/pdf")]
        )
        yield server


# The settings of each run: the cutover window without keys, and keys required.
SETTINGS = {
    "keys not required, no key": {"API_KEYS_REQUIRED": "false"},
    "keys required, a key": {"API_KEYS_REQUIRED": "true"},
}
COMMON = {"INGEST_TRUSTED_NETWORKS": "127.0.0.1/32", "MAX_UPLOAD_MB": "1"}


@pytest.fixture(params=list(SETTINGS))
def service(request, start_module_service: Callable[..., LiveService]) -> tuple[LiveService, bool]:
    """The service under gunicorn with these settings, shared by the module's tests."""
    service = start_module_service(**SETTINGS[request.param], **COMMON)
    return service, request.param.startswith("keys required")


def ingested(body: dict, workspace: str) -> None:
    """What the old service answered for an ingest, at least."""
    assert body["ok"] is True
    assert HEX32.fullmatch(body["fileId"]), body
    assert isinstance(body["chunks"], int) and body["chunks"] >= 1
    assert body["workspace"] == workspace


def test_every_old_request_gets_at_least_the_old_answer(service, site: CannedServer):
    live, with_key = service
    call, post_json, post_file = (
        lambda *a, **k: live.call(*a, with_key=with_key, **k),
        lambda *a, **k: live.post_json(*a, with_key=with_key, **k),
        lambda *a, **k: live.post_file(*a, with_key=with_key, **k),
    )

    # GET /health
    assert without_queue(call("GET", "/health")) == (200, {"ok": True, "db": True})

    # POST /ingest/file: multipart file, workspace optional (empty or missing: default)
    status, handbook = post_file("handbook.pdf", make_pdf(HANDBOOK_PDF_PAGES))
    assert status == 200
    ingested(handbook, "default")
    status, policy = post_file("policy.txt", POLICY_TEXT.encode(), {"workspace": ""})
    assert status == 200
    ingested(policy, "default")
    status, legal = post_file(
        "legal.txt", b"Contracts are signed by two directors.", {"workspace": "legal"}
    )
    assert status == 200
    ingested(legal, "legal")

    # POST /ingest/url: fileUrl, filename, workspace?, fileId?
    status, page = post_json(
        "/ingest/url",
        {
            "fileUrl": site.url("/release.html"),
            "filename": "release-notes.html",
            "workspace": "eng",
        },
    )
    assert status == 200
    ingested(page, "eng")
    assert page["filename"] == "release-notes.html"
    # A client-chosen fileId re-ingests and replaces that document.
    status, again = post_json(
        "/ingest/url",
        {
            "fileUrl": site.url("/handbook.pdf"),
            "filename": "handbook-v2.pdf",
            "workspace": "eng",
            "fileId": page["fileId"],
        },
    )
    assert status == 200
    ingested(again, "eng")
    assert (again["fileId"], again["filename"]) == (page["fileId"], "handbook-v2.pdf")

    # POST /ask: q, workspace? (default), k? (default 15)
    status, answer = post_json("/ask", {"q": "Where can employees park?"})
    assert status == 200
    assert "lot B" in answer["answer"]
    assert answer["sources"][0]["filename"] == "handbook.pdf"
    assert all(isinstance(source["chunkId"], int) for source in answer["sources"])
    assert {source["fileId"] for source in answer["sources"]} <= {
        handbook["fileId"],
        policy["fileId"],
    }
    status, eng = post_json("/ask", {"q": "Where can employees park?", "workspace": "eng", "k": 1})
    assert status == 200
    assert [source["filename"] for source in eng["sources"]] == ["handbook-v2.pdf"]
    status, replaced = post_json(
        "/ask", {"q": "Which format does the exporter write?", "workspace": "eng"}
    )
    assert replaced == NOTHING_FOUND  # the release notes were replaced by the handbook
    assert post_json("/ask", {"q": "Who won the 1954 world cup?"}) == (200, NOTHING_FOUND)

    # POST /delete: fileId; an unknown id is 200 with removed 0
    status, deleted = post_json("/delete", {"fileId": policy["fileId"]})
    assert status == 200
    assert (deleted["ok"], deleted["removed"]) == (True, policy["chunks"])
    status, unknown = post_json("/delete", {"fileId": "0" * 32})
    assert status == 200
    assert (unknown["ok"], unknown["removed"]) == (True, 0)
    status, answer = post_json("/ask", {"q": "How often must passwords be rotated?"})
    assert policy["fileId"] not in {source["fileId"] for source in answer["sources"]}


def test_what_the_old_service_read_leniently_is_read_so_here(service, site: CannedServer):
    """Its clients' requests that the old service accepted as it read them: spaces around
    a workspace, a null or zero k, ids sent as numbers."""
    live, with_key = service
    post_json = lambda *a, **k: live.post_json(*a, with_key=with_key, **k)  # noqa: E731
    post_file = lambda *a, **k: live.post_file(*a, with_key=with_key, **k)  # noqa: E731

    status, cranes = post_file(
        "cranes.txt", b"Harbour cranes lift containers.", {"workspace": "  oldws  "}
    )
    assert (status, cranes["workspace"]) == (200, "oldws"), cranes
    for k in (None, 0):
        status, answer = post_json(
            "/ask", {"q": "What do harbour cranes lift?", "workspace": " oldws ", "k": k}
        )
        assert status == 200, answer
        assert answer["sources"][0]["fileId"] == cranes["fileId"], k

    status, numbered = post_json(
        "/ingest/url",
        {
            "fileUrl": site.url("/release.html"),
            "filename": "r.html",
            "fileId": 777,
            "workspace": " numbers",
        },
    )
    assert (status, numbered["fileId"], numbered["workspace"]) == (200, "777", "numbers")
    status, deleted = post_json("/delete", {"fileId": 777})
    assert (status, deleted["fileId"], deleted["deleted"]) == (200, "777", True)
    status, unknown = post_json("/delete", {"fileId": 12345})
    assert (status, unknown["removed"], unknown["fileId"]) == (200, 0, "12345")

    # A new id chosen for content the workspace holds: made as asked, and said so.
    status, copy = post_file(
        "cranes-copy.txt",
        b"Harbour cranes lift containers.",
        {"workspace": "oldws", "fileId": "cranes-2"},
    )
    assert status == 200, copy
    assert (copy["fileId"], copy["created"], copy["copyOf"]) == ("cranes-2", True, cranes["fileId"])


def detail(response: tuple[int, dict]) -> tuple[int, str]:
    status, body = response
    assert isinstance(body.get("detail"), str), body
    return status, body["detail"]


def test_each_documented_error_is_a_detail_with_a_precise_status(service, site: CannedServer):
    live, with_key = service
    post_json = lambda *a, **k: live.post_json(*a, with_key=with_key, **k)  # noqa: E731
    post_file = lambda *a, **k: live.post_file(*a, with_key=with_key, **k)  # noqa: E731

    status, message = detail(post_file("photo.gif", b"GIF89a" + b"\x00" * 64))
    assert status == 415 and "not an accepted type" in message
    status, message = detail(post_file("empty.txt", b""))
    assert status == 422 and message.startswith("No text to index")
    status, message = detail(post_file("big.txt", b"word " * 300_000))
    assert status == 413 and "1 MB" in message
    status, message = detail(
        post_json("/ingest/url", {"fileUrl": "http://10.0.0.1/x", "filename": "x"})
    )
    assert status == 400 and "private address" in message
    status, message = detail(
        post_json("/ingest/url", {"fileUrl": site.url("/missing"), "filename": "x"})
    )
    assert status == 422 and "404" in message
    status, message = detail(
        live.call(
            "POST", "/ask", b'{"q": ', {"Content-Type": "application/json"}, with_key=with_key
        )
    )
    assert status == 400 and "Cannot parse request body" in message
    status, message = detail(post_json("/ask", {}))
    assert (status, message) == (422, "Invalid request: q: Field required")
    status, message = detail(post_json("/ask", {"q": "x", "workspace": "no spaces"}))
    assert status == 400 and message.startswith("Invalid workspace 'no spaces'")
    status, first = post_file("same.txt", b"The same words twice.")
    post_file("other.txt", b"Other words.", {"fileId": "other"})
    status, message = detail(post_file("same.txt", b"The same words twice.", {"fileId": "other"}))
    assert (status, message) == (
        409,
        f"Document {first['fileId']!r} already holds this content in workspace 'default'; "
        "re-ingest that id or delete it first",
    )
    status, message = detail(live.call("DELETE", f"/documents/{'0' * 32}", with_key=with_key))
    assert (status, message) == (404, f"Document {'0' * 32!r} not found")


def test_with_keys_required_a_request_without_one_is_refused(start_module_service):
    live = start_module_service(**SETTINGS["keys required, a key"], **COMMON)
    status, message = detail(live.post_json("/ask", {"q": "anything"}, with_key=False))
    assert status == 401 and "X-API-Key" in message
    assert without_queue(live.call("GET", "/health", with_key=False)) == (
        200,
        {"ok": True, "db": True},
    )
