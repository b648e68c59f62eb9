"""Faults made real for a test: a database that refuses a write."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator


@contextlib.contextmanager
def refusing(operation: str, table: str, env: dict[str, str] | None = None) -> Iterator[None]:
    """A real database failure on every `operation` (INSERT, UPDATE, DELETE) of a row of
    `table`, as a full disk or a lost connection would cause: a trigger, not a mock. In
    the test's database, or in a child service's (`env`: its SQLite file, or the test
    run's PostgreSQL); dropped afterwards."""
    name = f"refuse_{operation.lower()}_{table}"
    url = (env or {}).get("DATABASE_URL", "")

    def execute(*statements: str) -> None:
        if url.startswith("sqlite:///"):
            with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
                for statement in statements:
                    db.execute(statement)
                db.commit()
            return
        from django.db import connection

        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)

    from django.db import connection

    if url.startswith("sqlite:///") or (not url and connection.vendor == "sqlite"):
        execute(
            f"CREATE TRIGGER {name} BEFORE {operation} ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'simulated storage failure'); END"
        )
        drop = [f"DROP TRIGGER {name}"]
    else:
        execute(
            f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'simulated storage failure'; END $$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {name} BEFORE {operation} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {name}()",
        )
        drop = [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]
    try:
        yield
    finally:
        execute(*drop)
