"""X-API-Key on every endpoint but /health and the docs."""

from __future__ import annotations

import hashlib
import re
import time

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from registry.models import ApiKey
from tests.support.commands import run_on_a_terminal
from tests.support.processes import child_env, run_manage

PROTECTED = [
    ("get", "/documents"),
    ("get", "/documents/some-id"),
    ("delete", "/documents/some-id"),
    ("post", "/delete"),
    ("post", "/ask"),
    ("post", "/ingest/file"),
    ("post", "/ingest/url"),
]


@pytest.mark.django_db
class TestKnownKeys:
    """A process trusts a key it looked up for API_KEY_CACHE_SECONDS (default 5)."""

    def test_a_key_used_a_moment_ago_needs_no_query(self, client, api_key):
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 200
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 200
        assert not [q["sql"] for q in queries.captured_queries if "api_keys" in q["sql"]]

    def test_a_revocation_here_takes_effect_at_once(self, client, api_key):
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 200
        key = ApiKey.objects.get()
        key.revoked_at = timezone.now()
        key.save()
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 403

    def test_a_revocation_elsewhere_takes_effect_within_the_cache_time(
        self, client, api_key, settings
    ):
        settings.API_KEY_CACHE_SECONDS = 0.5
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 200
        # As another process revokes it: a row update, no signal in this process.
        ApiKey.objects.update(revoked_at=timezone.now())
        time.sleep(0.6)
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 403

    def test_with_no_cache_time_every_request_looks_the_key_up(self, client, api_key, settings):
        settings.API_KEY_CACHE_SECONDS = 0
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 200
        ApiKey.objects.update(revoked_at=timezone.now())
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 403


@pytest.mark.django_db
class TestAccess:
    @pytest.mark.parametrize("method, path", PROTECTED)
    def test_without_a_key_every_endpoint_is_401(self, client, method, path):
        response = getattr(client, method)(path)
        assert response.status_code == 401
        assert "X-API-Key" in response.json()["detail"]

    @pytest.mark.parametrize("method, path", PROTECTED)
    def test_an_unknown_key_is_401(self, client, method, path):
        response = getattr(client, method)(path, HTTP_X_API_KEY="dsk_not-a-real-key")
        assert response.status_code == 401

    @pytest.mark.parametrize("method, path", PROTECTED)
    def test_a_revoked_key_is_403(self, client, api_key, method, path):
        ApiKey.objects.update(revoked_at=timezone.now())
        response = getattr(client, method)(path, HTTP_X_API_KEY=api_key)
        assert response.status_code == 403
        assert response.json() == {"detail": "This API key has been revoked"}

    def test_a_valid_key_is_let_in_and_its_use_recorded(self, client, api_key, data_dir):
        response = client.get("/documents", HTTP_X_API_KEY=api_key)
        assert response.status_code == 200
        assert ApiKey.objects.get().last_used_at is not None

    def test_health_and_docs_need_no_key(self, client):
        assert client.get("/health").status_code == 200
        assert client.get("/docs").status_code == 200
        schema = client.get("/openapi.json").json()
        assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
        }

    def test_only_the_hash_is_stored(self, api_key):
        stored = ApiKey.objects.get()
        assert stored.key_hash == hashlib.sha256(api_key.encode()).hexdigest()
        assert stored.prefix == api_key[:12]
        # The key itself is in no column of the table, as a database dump would show it.
        with connection.cursor() as cursor:
            cursor.execute("SELECT * FROM api_keys")
            dumped = " ".join(str(value) for row in cursor.fetchall() for value in row)
        assert stored.name in dumped
        assert api_key not in dumped
        assert api_key[12:] not in dumped


@pytest.mark.django_db
class TestKeysNotRequiredForACutoverWindow:
    @pytest.fixture(autouse=True)
    def _keys_off(self, settings, data_dir):
        settings.API_KEYS_REQUIRED = False

    @pytest.mark.parametrize("method, path", PROTECTED)
    def test_every_endpoint_answers_without_a_key(self, client, method, path):
        response = getattr(client, method)(path)
        assert response.status_code not in (401, 403), response.json()

    def test_a_key_that_is_sent_is_still_checked(self, client, api_key):
        assert client.get("/documents", HTTP_X_API_KEY="dsk_unknown").status_code == 401
        ApiKey.objects.update(revoked_at=timezone.now())
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 403

    def test_start_up_warns_and_check_deploy_flags_it(self, tmp_path):
        env = child_env(
            DEBUG="false",
            SECRET_KEY="x" * 20 + "-production-secret-key-for-tests-only-0123456789",
            DATABASE_URL="postgresql://postgres@127.0.0.1:5432/postgres",
            ALLOWED_HOSTS="docs.example.com",
            API_KEYS_REQUIRED="false",
        )
        result = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
        assert result.returncode != 0
        assert "!!! API_KEYS_REQUIRED=false: the API answers every request without an API key" in (
            result.stderr
        )
        assert "(registry.W001) API_KEYS_REQUIRED=false" in result.stderr + result.stdout
        env["API_KEYS_REQUIRED"] = "true"
        clean = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)
        assert clean.returncode == 0, clean.stderr + clean.stdout


class TestCreateApiKeyCommand:
    def test_it_prints_a_working_key_as_the_last_line(self, tmp_path):
        env = child_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DATA_DIR=str(tmp_path))
        assert run_manage("migrate", "-v0", env=env).returncode == 0
        result = run_manage("create_api_key", "frontend", env=env)
        assert result.returncode == 0, result.stderr
        output = (result.stderr + result.stdout).strip().splitlines()
        key = output[-1]
        assert key.startswith("dsk_") and len(key) > 40
        check = run_manage(
            "shell",
            "-c",
            "from django.test import Client; "
            f"print(Client().get('/documents', HTTP_X_API_KEY='{key}').status_code)",
            env=env,
        )
        assert check.stdout.strip().splitlines()[-1] == "200"

    def test_on_a_terminal_the_success_line_does_not_read_as_an_error(self, tmp_path):
        env = child_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DATA_DIR=str(tmp_path))
        assert run_manage("migrate", "-v0", env=env).returncode == 0
        _, shown = run_on_a_terminal(["create_api_key", "frontend"], env, stdout_too=True)
        assert "Created API key 'frontend'" in shown
        assert "\x1b[31" not in shown  # Django's ERROR style: bold red
        assert "\x1b[32" in shown  # its SUCCESS style: green
        plain = re.sub(r"\x1b\[[0-9;]*m", "", shown)  # the text a person reads
        assert plain.strip().splitlines()[-1].startswith("dsk_")

    def test_an_empty_name_is_refused(self, tmp_path):
        env = child_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
        run_manage("migrate", "-v0", env=env)
        result = run_manage("create_api_key", " ", env=env)
        assert result.returncode != 0
        assert "NAME must be 1 to 100 characters" in result.stderr


@pytest.mark.django_db
class TestAdmin:
    @pytest.fixture
    def staff(self, client):
        user = User.objects.create_superuser("admin", "admin@example.com", "pw")
        client.force_login(user)
        return client

    def test_adding_a_key_shows_it_once(self, staff, client):
        response = staff.post(
            "/admin/registry/apikey/add/",
            {"name": "partner", "access": "write", "all_workspaces": "on"},
            follow=True,
        )
        assert response.status_code == 200
        messages = [str(m) for m in response.context["messages"]]
        key = next(m.split(": ", 1)[1].split(" ")[0] for m in messages if "API key for" in m)
        assert client.get("/documents", HTTP_X_API_KEY=key).status_code == 200
        listing = staff.get("/admin/registry/apikey/").content.decode()
        assert key not in listing

    def test_revoking_in_the_admin_locks_the_key_out(self, staff, client, api_key):
        key_id = ApiKey.objects.get().pk
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 200  # known now
        staff.post(
            "/admin/registry/apikey/",
            {"action": "revoke", "_selected_action": [key_id]},
        )
        assert client.get("/documents", HTTP_X_API_KEY=api_key).status_code == 403

    def test_staff_limit_a_key_to_workspaces_and_to_reading(self, staff, client, api_key):
        api_key_id = ApiKey.objects.get().pk
        assert client.get("/documents?workspace=hr", HTTP_X_API_KEY=api_key).status_code == 200
        page = staff.get(f"/admin/registry/apikey/{api_key_id}/change/").content.decode()
        assert 'name="workspaces"' in page and 'name="access"' in page
        changed = staff.post(
            f"/admin/registry/apikey/{api_key_id}/change/",
            {"access": "read", "workspaces": "eng, docs"},  # every workspace unticked
        )
        assert changed.status_code == 302
        fresh = ApiKey.objects.get()
        assert (fresh.all_workspaces, fresh.workspaces, fresh.access) == (
            False,
            ["docs", "eng"],
            "read",
        )
        refused = client.get("/documents?workspace=hr", HTTP_X_API_KEY=api_key)
        assert refused.json() == {"detail": "This API key has no access to workspace 'hr'"}
        assert client.get("/documents?workspace=eng", HTTP_X_API_KEY=api_key).status_code == 200
        listing = staff.get("/admin/registry/apikey/").content.decode()
        assert "docs, eng" in listing

    @pytest.mark.parametrize(
        ("workspaces", "problem"),
        [
            ("", "Name at least one workspace, or tick every workspace."),
            ("eng, no/slash", "Invalid workspace &#x27;no/slash&#x27;"),
        ],
    )
    def test_a_scope_that_cannot_work_is_refused_in_the_form(self, staff, workspaces, problem):
        page = staff.post(
            "/admin/registry/apikey/add/",
            {"name": "team", "access": "write", "workspaces": workspaces},
        )
        assert page.status_code == 200  # the form again, with the error
        assert problem in page.content.decode()
        assert not ApiKey.objects.exists()
