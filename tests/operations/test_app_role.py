"""manage.py grant_app_role: the service runs as a role that cannot change the schema.

PostgreSQL only: these tests skip in the SQLite pass and, like the rest of the PostgreSQL
pass, fail when the server cannot be reached.
"""

from __future__ import annotations

import subprocess
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from registry.models import ApiKey
from tests.support.inspection import on_pgvector
from tests.support.live import LiveService, http_get, without_queue
from tests.support.processes import child_env, postgres_url, run_manage, running_server

POLICY = b"Passwords must be rotated every ninety days."

pytestmark = pytest.mark.django_db(transaction=True)


def on_postgres() -> bool:
    return connection.vendor == "postgresql"


@pytest.fixture
def role() -> str:
    """A role name of this run's own (roles are cluster-wide), dropped afterwards."""
    if not on_postgres():
        pytest.skip("roles are PostgreSQL's: runs in the PostgreSQL pass of the suite")
    name = f"test_app_{uuid.uuid4().hex[:12]}"
    yield name
    connection.close()  # a fresh connection, whatever state the test left
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [name])
        if cursor.fetchone():
            cursor.execute(f'DROP OWNED BY "{name}"')
            cursor.execute(f'DROP ROLE "{name}"')


def grant(*args: str) -> str:
    out = StringIO()
    call_command("grant_app_role", *args, stdout=out)
    return out.getvalue()


def url_as(role: str) -> str:
    return postgres_url(user=role)


def run_as(role: str, code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = child_env(DATABASE_URL=url_as(role), DATA_DIR=str(tmp_path))
    return run_manage("shell", "-c", code, env=env)


def privileges(role: str, check: str, *args: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {check}", [role, *args])
        return cursor.fetchone()[0]


REGISTRY_WORK = """
from datetime import UTC, datetime
from registry.backends.database import DatabaseRegistry
from registry.records import DocumentRecord

registry = DatabaseRegistry()
at = datetime(2024, 1, 1, tzinfo=UTC)
registry.upsert(DocumentRecord(file_id="a", filename="a.pdf", created_at=at, updated_at=at))
registry.upsert(DocumentRecord(file_id="b", filename="b.pdf", created_at=at, updated_at=at))
registry.upsert(DocumentRecord(file_id="a", filename="a2.pdf", created_at=at, updated_at=at))
registry.delete_many(["b"])
registry.check()
print([(r.file_id, r.filename) for r in registry.list()], registry.count())
"""

SCHEMA_CHANGES = """
from django.db import connection, transaction
for statement in ["CREATE TABLE x (i int)", "DROP TABLE documents",
                  "ALTER TABLE documents ADD COLUMN x int", "TRUNCATE documents",
                  "CREATE SCHEMA x"]:
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement)
        print(statement, "-> allowed")
    except Exception as exc:
        print(statement, "->", getattr(exc.__cause__, "sqlstate", None), str(exc).splitlines()[0])
"""


class TestGrantAppRole:
    def test_the_role_runs_the_registry(self, role: str, tmp_path: Path):
        grant(role)
        result = run_as(role, REGISTRY_WORK, tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == "[('a', 'a2.pdf')] 1"

    def test_the_role_cannot_create_alter_or_drop(self, role: str, tmp_path: Path):
        grant(role)
        result = run_as(role, SCHEMA_CHANGES, tmp_path)
        assert result.returncode == 0, result.stderr
        # 42501: insufficient_privilege
        assert [line for line in result.stdout.splitlines() if " -> " in line] == [
            "CREATE TABLE x (i int) -> 42501 permission denied for schema public",
            "DROP TABLE documents -> 42501 must be owner of table documents",
            "ALTER TABLE documents ADD COLUMN x int -> 42501 must be owner of table documents",
            "TRUNCATE documents -> 42501 permission denied for table documents",
            "CREATE SCHEMA x -> 42501 permission denied for database "
            + connection.settings_dict["NAME"],
        ]

    def test_the_api_answers_health_and_authenticated_requests(self, role: str, tmp_path: Path):
        grant(role)
        api_key = ApiKey(name="least-privilege test")
        raw_key = api_key.set_new_key()
        api_key.save()
        env = child_env(DATABASE_URL=url_as(role), DATA_DIR=str(tmp_path))
        with running_server(env) as base:
            assert without_queue(http_get(base + "/health")) == (200, {"ok": True, "db": True})
            status, body = http_get(base + "/documents", headers={"X-API-Key": raw_key})
            assert status == 200, body
        api_key.refresh_from_db()
        assert api_key.last_used_at is not None  # the role wrote to api_keys

    def test_the_role_ingests_answers_and_deletes(self, role: str, tmp_path: Path):
        """With VECTOR_STORE=pgvector this writes the chunks table and chunk_store too."""
        grant(role)
        api_key = ApiKey(name="least-privilege test")
        raw_key = api_key.set_new_key()
        api_key.save()
        env = child_env(DATABASE_URL=url_as(role), DATA_DIR=str(tmp_path))
        if on_pgvector():
            env["VECTOR_STORE"] = "pgvector"
        with running_server(env) as base:
            service = LiveService(base, raw_key, tmp_path)
            status, document = service.post_file("policy.txt", POLICY)
            assert status == 200, document
            status, body = service.post_json("/ask", {"q": "How often are passwords rotated?"})
            assert status == 200 and body["sources"][0]["fileId"] == document["fileId"], body
            status, body = service.post_json("/delete", {"fileId": document["fileId"]})
            assert (status, body["removed"]) == (200, 1), body

    def test_it_grants_dml_only_and_takes_back_anything_more(self, role: str):
        grant(role)
        with connection.cursor() as cursor:
            cursor.execute(f'GRANT TRUNCATE, REFERENCES, TRIGGER ON documents TO "{role}"')
        grant(role)  # a rerun, as after every migrate
        table_privilege = "has_table_privilege(%s, %s, %s)"
        for allowed in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            assert privileges(role, table_privilege, "documents", allowed)
            assert privileges(role, table_privilege, "django_session", allowed)
            assert privileges(role, table_privilege, "api_keys", allowed)
            assert privileges(role, table_privilege, "auth_user", allowed)
        for refused in ("TRUNCATE", "REFERENCES", "TRIGGER"):
            assert not privileges(role, table_privilege, "documents", refused)
        assert privileges(role, table_privilege, "django_migrations", "SELECT")
        assert not privileges(role, table_privilege, "django_migrations", "INSERT")
        sequence = "has_sequence_privilege(%s, pg_get_serial_sequence('documents', 'id'), %s)"
        assert privileges(role, sequence, "USAGE")
        assert not privileges(role, sequence, "UPDATE")

    def test_it_takes_create_from_public_where_an_older_database_still_grants_it(self, role: str):
        with connection.cursor() as cursor:
            # What every database created before PostgreSQL 15 still has.
            cursor.execute("GRANT CREATE ON SCHEMA public TO PUBLIC")
        try:
            message = grant(role)
            assert not privileges(role, "has_schema_privilege(%s, 'public', 'CREATE')")
        finally:
            with connection.cursor() as cursor:
                cursor.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        assert "it cannot create, alter or drop tables in public, nor create schemas" in message

    def test_print_sql_shows_the_statements_and_changes_nothing(self, role: str):
        sql = grant(role, "--print-sql")
        assert f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE' in sql
        assert f'GRANT USAGE ON SCHEMA "public" TO "{role}";' in sql
        assert f'REVOKE CREATE ON SCHEMA "public" FROM "{role}";' in sql
        grant_line = next(
            line for line in sql.splitlines() if "ON TABLE" in line and "DELETE" in line
        )
        assert grant_line.startswith("GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE ")
        assert '"documents"' in grant_line and '"api_keys"' in grant_line
        assert "DROP" not in sql
        assert not privileges(role, "EXISTS (SELECT 1 FROM pg_roles WHERE rolname = %s)")

    def test_a_password_comes_from_the_environment_not_the_command_line(
        self, role: str, monkeypatch
    ):
        monkeypatch.setenv("TEST_APP_PASSWORD", "s3cret-for-a-test")
        grant(role, "--password-env", "TEST_APP_PASSWORD")
        assert privileges(
            role, "(SELECT rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid WHERE rolname = %s)"
        )
        with pytest.raises(CommandError, match="NO_SUCH_VARIABLE: that variable is empty or unset"):
            grant(role, "--password-env", "NO_SUCH_VARIABLE")

    def test_it_refuses_the_owner_and_superusers(self, role: str):
        owner = connection.settings_dict["USER"]
        with pytest.raises(CommandError, match="is the role running this command"):
            grant(owner)
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE ROLE "{role}" SUPERUSER')
        with pytest.raises(CommandError, match=f"role {role} is a superuser"):
            grant(role)

    def test_it_refuses_a_name_that_is_not_a_plain_identifier(self, role: str):
        with pytest.raises(CommandError, match="must be lower-case letters"):
            grant('app"; DROP TABLE documents; --')


@pytest.mark.django_db(transaction=False)
def test_on_sqlite_it_says_roles_need_postgresql(tmp_path: Path):
    env = child_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", DATA_DIR=str(tmp_path))
    result = run_manage("grant_app_role", "docs_app", env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "CommandError: grant_app_role needs PostgreSQL; DATABASE_URL points at sqlite, "
        "which has no roles"
    )
