"""One log line per request with its id, the id on every line of the request, and no
secret in any line (issue 13: request logging)."""

from __future__ import annotations

import logging
import re

import orjson
import pytest

from tests.support.processes import child_env, running_server

pytestmark = pytest.mark.django_db


def request_lines(caplog) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "docservice.request"]


def test_each_request_gets_an_id_and_one_line(api, caplog):
    caplog.set_level(logging.INFO)
    first = api.get("/documents")
    second = api.get("/documents/no-such-document")
    ids = [first.headers["X-Request-ID"], second.headers["X-Request-ID"]]
    assert ids[0] != ids[1] and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    lines = request_lines(caplog)
    assert [(r.method, r.path, r.status) for r in lines] == [
        ("GET", "/documents", 200),
        ("GET", "/documents/no-such-document", 404),
    ]
    assert all(r.duration_ms >= 0 for r in lines)
    assert re.fullmatch(r"GET /documents 200 \d+\.\dms", lines[0].getMessage())


def test_a_proxy_s_request_id_is_kept_and_a_hostile_one_replaced(api):
    assert api.get("/health", HTTP_X_REQUEST_ID="lb-1234.abc").headers["X-Request-ID"] == (
        "lb-1234.abc"
    )
    hostile = api.get("/health", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: a=b").headers
    assert re.fullmatch(r"[0-9a-f]{32}", hostile["X-Request-ID"])


def test_the_admin_is_logged_too(client, caplog):
    caplog.set_level(logging.INFO)
    response = client.get("/admin/login/")
    assert response.headers["X-Request-ID"]
    assert [(r.path, r.status) for r in request_lines(caplog)] == [("/admin/login/", 200)]


@pytest.mark.django_db(transaction=True)  # the server reads the key's committed row
def test_json_lines_carry_the_id_on_every_line_and_no_secret(
    child_database_url, child_api_key, tmp_path
):
    env = child_env(
        DATABASE_URL=child_database_url,
        DATA_DIR=str(tmp_path),
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    key = child_api_key
    log: list[str] = []
    with running_server(env, workers=1, log=log) as base:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(  # noqa: S310
            base + "/documents/missing?token=secret-in-query",
            headers={"X-API-Key": key, "Cookie": "sessionid=session-secret"},
        )
        try:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310
        except urllib.error.HTTPError as error:
            assert error.code == 404
            request_id = error.headers["X-Request-ID"]
    entries = [orjson.loads(line) for line in log if line.startswith("{")]
    mine = [entry for entry in entries if entry["request_id"] == request_id]
    assert {entry["logger"] for entry in mine} == {"docservice.request", "django.request"}
    line = next(entry for entry in mine if entry["logger"] == "docservice.request")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/documents/missing", 404)
    text = "\n".join(log)
    for secret in (key, "session-secret", "secret-in-query", child_database_url):
        assert secret not in text
    # Every line the service wrote is JSON (gunicorn's own start-up lines aside).
    assert all(line.startswith(("{", "[")) for line in log if line.strip()), log[-5:]
