"""API requests skip the admin's middleware (config/serving/api_fast_path.py) but keep what every
response had: the host check, the HTTPS redirect and the security headers."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.test import Client

from tests.support.live import without_queue
from tests.support.processes import child_env

pytestmark = pytest.mark.django_db

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


@pytest.mark.parametrize("path", ["/health", "/documents", "/docs", "/admin/login/"])
def test_api_and_admin_responses_carry_the_security_headers(client, api_key, path):
    response = client.get(path, HTTP_X_API_KEY=api_key)
    assert response.status_code == 200
    for header, value in SECURITY_HEADERS.items():
        assert response.headers.get(header) == value, (path, header)


@pytest.mark.parametrize("path", ["/documents", "/docs", "/admin/login/"])
def test_a_host_not_allowed_is_400_everywhere_but_health(client, api_key, path, caplog):
    response = client.get(path, HTTP_X_API_KEY=api_key, HTTP_HOST="evil.example.com")
    assert response.status_code == 400


def test_a_load_balancer_probing_health_by_ip_gets_its_answer(client, caplog):
    # It knows the instance by address, not by the public host name (issue 13 #5).
    response = client.get("/health", HTTP_HOST="10.0.3.7:8000")
    assert (response.status_code, without_queue(response.json())) == (
        200,
        {"ok": True, "db": True},
    )
    assert "DisallowedHost" not in caplog.text


def test_production_redirects_plain_http_on_api_paths_too(client, api_key, settings):
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/documents", HTTP_X_API_KEY=api_key)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://testserver/documents"
    assert client.get("/documents", HTTP_X_API_KEY=api_key, secure=True).status_code == 200


def test_hsts_is_sent_on_https_api_responses(client, api_key, settings):
    settings.SECURE_HSTS_SECONDS = 3600
    response = client.get("/documents", HTTP_X_API_KEY=api_key, secure=True)
    assert response.headers["Strict-Transport-Security"].startswith("max-age=3600")


def test_the_admin_still_has_sessions_and_csrf(client):
    page = client.get("/admin/login/")
    assert "csrfmiddlewaretoken" in page.content.decode()
    refused = client.post("/admin/login/", {"username": "x", "password": "y"})
    assert refused.status_code == 200  # the form again, with its error
    strict = Client(enforce_csrf_checks=True)
    assert strict.post("/admin/login/", {"username": "x", "password": "y"}).status_code == 403


def test_with_api_fast_path_false_every_request_goes_down_the_whole_list(child_database_url):
    """What turning the fast path off changes: /health meets CommonMiddleware's host check
    like every other path; the API answers as before."""
    probe = (
        "import django; django.setup(); from django.test import Client; c = Client(); "
        "print(c.get('/health', HTTP_HOST='10.0.3.7:8000').status_code, "
        "c.get('/docs').status_code, c.get('/docs').headers['X-Frame-Options'])"
    )
    seen = {}
    for value in ("true", "false"):
        env = child_env(
            API_FAST_PATH=value,
            DATABASE_URL=child_database_url,
            DJANGO_SETTINGS_MODULE="config.settings",
        )
        result = subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60
        )
        seen[value] = result.stdout.split()
    assert seen == {"true": ["200", "200", "DENY"], "false": ["400", "200", "DENY"]}
