"""import_registry on 100,000 legacy records beside a PostgreSQL COPY of the same rows.

    .venv/bin/python bench/bench_import.py [--records N]

Uses the PostgreSQL server of DATABASE_URL (default postgresql://postgres@127.0.0.1:5432/
postgres) to create a scratch database `bench_import`, migrates it, runs the command's own
code path into the empty table, then `manage.py import_registry` as a process (start-up
included), and COPYs the same rows, already in memory, into a table of the same shape
(`CREATE TABLE … (LIKE documents INCLUDING ALL)`: same columns, constraints and indexes),
in alternating rounds, and prints the median times and their ratios; then times a second,
idempotent run and a run where 1% of the records changed. Drops the database after.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from config.env import normalise_database_url  # noqa: E402

SCRATCH_DB = "bench_import"
DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def legacy_records(count: int) -> list[dict[str, object]]:
    rng = random.Random(42)
    kinds = ["report", "minutes", "invoice", "handbook", "notes"]
    records = []
    for n in range(count):
        created = 1_600_000_000 + n * 37 + rng.randint(0, 30)
        record: dict[str, object] = {
            "fileId": f"{rng.getrandbits(128):032x}",
            "filename": f"{rng.choice(kinds)}-{n}.{rng.choice(['pdf', 'txt', 'md', 'html'])}",
            "sizeBytes": rng.randint(1_000, 5_000_000),
            "workspace": rng.choice(["default", "eng", "legal", "sales"]),
            "numChunks": rng.randint(1, 400),
            "indexed": True,
            "createdAt": created,
            "updatedAt": created + rng.choice([0, 60, 86_400]),
        }
        if n % 3 == 0:
            record["sha256"] = f"{rng.getrandbits(256):064x}"
            record["contentType"] = "application/pdf"
        records.append(record)
    return records


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


class PhaseClock:
    """Records when each phase of the import first reports, to split its time."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        self.started.setdefault(phase, time.perf_counter())

    def split(self, started: float) -> str:
        marks = [("read", started), *self.started.items(), ("end", time.perf_counter())]
        return ", ".join(
            f"{name} {following - at:.2f} s"
            for (name, at), (_, following) in itertools.pairwise(marks)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of import and COPY")
    options = parser.parse_args()

    with scratch_database(SCRATCH_DB) as scratch_url:
        run(scratch_url, options.records, options.repeat)


@contextlib.contextmanager
def scratch_database(name: str) -> Iterator[str]:
    """A new, empty database `name` on DATABASE_URL's server (default the local
    PostgreSQL), as a URL; dropped after, once Django's connections to it are closed."""
    admin_url = normalise_database_url(os.environ.get("DATABASE_URL") or DEFAULT_URL)

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    drop()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield with_database(admin_url, name)
    finally:
        from django.db import connections

        connections.close_all()
        drop()


def setup_django(database_url: str, **env: str) -> None:
    """Django on `database_url` with production settings (no pool: one connection)."""
    os.environ.update(
        ENV_FILE="",
        DEBUG="false",
        SECRET_KEY="bench-only",  # noqa: S106
        DATABASE_URL=database_url,
        DB_POOL="false",
        DJANGO_SETTINGS_MODULE="config.settings",
        **env,
    )
    import django

    django.setup()


def run(database_url: str, count: int, repeat: int) -> None:
    setup_django(database_url)
    from django.core.management import call_command
    from django.db import connection

    from registry.importing import import_registry
    from registry.legacy import record_from_legacy
    from registry.pg_copy import copy_rows
    from registry.records import RECORD_FIELDS

    call_command("migrate", verbosity=0)
    legacy = legacy_records(count)
    rows = [record.row() for record in map(record_from_legacy, legacy)]
    columns = ", ".join(RECORD_FIELDS)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE documents_copy (LIKE documents INCLUDING ALL)")

    def copy_once(binary: bool = True) -> float:
        """The floor: binary COPY as the import writes it (registry.pg_copy.copy_rows),
        or plain text COPY."""
        with connection.cursor() as wrapper:
            wrapper.execute("TRUNCATE documents_copy")
            started = time.perf_counter()
            if binary:
                copying = copy_rows(wrapper.cursor, sql.Identifier("documents_copy"))
            else:
                copying = wrapper.cursor.copy(f"COPY documents_copy ({columns}) FROM STDIN")
            with copying as copy:
                for row in rows:
                    copy.write_row(row)
            return time.perf_counter() - started

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "registry.json"
        path.write_bytes(orjson.dumps(legacy))
        size_mb = path.stat().st_size / 1e6

        # import_registry() is the whole of the command but for parsing its arguments and
        # printing the report. Each round starts from an empty table, as COPY's does.
        imports, commands, copies, text_copies = [], [], [], []
        command = [sys.executable, "manage.py", "import_registry", str(path), "--no-progress"]
        for _ in range(repeat):
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE documents")
            clock = PhaseClock()
            started = time.perf_counter()
            report = import_registry(path=path, progress=clock)
            imports.append((time.perf_counter() - started, clock.split(started)))
            assert report.created == count, report
            copies.append(copy_once())
            text_copies.append(copy_once(binary=False))
            # The whole command as an operator runs it: process start included.
            with connection.cursor() as cursor:
                cursor.execute("TRUNCATE documents")
            started = time.perf_counter()
            done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
            commands.append(time.perf_counter() - started)
            assert f"{count} created" in done.stdout, done.stdout + done.stderr

        started = time.perf_counter()
        report = import_registry(path=path)
        noop_seconds = time.perf_counter() - started
        assert (report.created, report.updated, report.unchanged) == (0, 0, count), report

        changed = count // 100
        for record in legacy[:changed]:
            record["numChunks"] = int(record["numChunks"]) + 1
            record["updatedAt"] = int(record["updatedAt"]) + 60
        path.write_bytes(orjson.dumps(legacy))
        started = time.perf_counter()
        report = import_registry(path=path)
        changed_seconds = time.perf_counter() - started
        assert (report.updated, report.unchanged) == (changed, count - changed), report

        out = io.StringIO()
        call_command("import_registry", str(path), "--no-progress", stdout=out)

    import_seconds, split = sorted(imports)[len(imports) // 2]
    command_seconds = sorted(commands)[len(commands) // 2]
    copy_seconds = sorted(copies)[len(copies) // 2]
    print(f"{count:,} legacy records, {size_mb:.1f} MB of JSON, PostgreSQL {server_version()}")
    print(f"median of {repeat} rounds, each into an empty table:")
    print(f"  import_registry (all created)   {import_seconds:6.2f} s   ({split})")
    print(
        f"  COPY of the same rows           {copy_seconds:6.2f} s   (binary; as text: "
        f"{sorted(text_copies)[len(text_copies) // 2]:.2f} s)"
    )
    print(f"  ratio import / COPY             {import_seconds / copy_seconds:6.2f}")
    print(f"  manage.py import_registry       {command_seconds:6.2f} s   (a process of its own)")
    print(f"  ratio command / COPY            {command_seconds / copy_seconds:6.2f}")
    print(
        f"  every round: import {fmt(t for t, _ in imports)}; command {fmt(commands)}; "
        f"COPY {fmt(copies)}; text COPY {fmt(text_copies)}"
    )
    print(f"second run, nothing changed       {noop_seconds:6.2f} s")
    print(f"{changed:,} records changed            {changed_seconds:6.2f} s")
    print(f"the command then says: {out.getvalue().strip()}")


def fmt(seconds) -> str:
    return ", ".join(f"{value:.2f}" for value in seconds)


def server_version() -> str:
    from django.db import connection

    major, rest = divmod(connection.pg_version, 10000)
    return f"{major}.{rest}"


if __name__ == "__main__":
    main()
