"""What an operator meets running the service under gunicorn (issue 13): behind a proxy,
its log, its control socket, the bare address."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import ROOT, child_env, running_server

pytestmark = pytest.mark.django_db(transaction=True)  # the server reads committed rows

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
