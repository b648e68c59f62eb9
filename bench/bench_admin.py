"""How long the admin's document pages take to render at 100,000 documents.

    .venv/bin/python bench/bench_admin.py [--records 100000] [--repeat 15]

Creates a scratch database `bench_admin` on DATABASE_URL's server (default the local
PostgreSQL), migrates it, COPYs --records legacy-shaped rows into `documents`, ANALYZEs
it, ingests one real document of 240 chunks through the service (vectors in a temporary
data/, embedded with hashing-v1: the page reads chunks, it embeds nothing), and renders
each page with Django's test client as a logged-in superuser (the whole admin view:
queries, vector store, template, middleware; no network). Prints, per page, the median and
worst time over --repeat renders, the number of queries and the slowest one.

The floor beside each page: the same page's queries run alone on one connection (what
no Python could beat), and a plain `SELECT count(*) FROM documents`, which the list
pages no longer run. The database is dropped after.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_import import legacy_records, scratch_database, setup_django  # noqa: E402
from psycopg import sql  # noqa: E402

SCRATCH_DB = "bench_admin"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    options = parser.parse_args()
    with scratch_database(SCRATCH_DB) as scratch_url:
        run(scratch_url, options.records, options.repeat)


def run(database_url: str, count: int, repeat: int) -> None:
    setup_django(
        database_url,
        ALLOWED_HOSTS="localhost",
        DATA_DIR=tempfile.mkdtemp(prefix="bench-admin-"),
        EMBEDDER="hashing-v1",
    )
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    from registry.legacy import record_from_legacy
    from registry.models import Document
    from registry.pg_copy import copy_rows

    call_command("migrate", verbosity=0)
    rows = [record.row() for record in map(record_from_legacy, legacy_records(count))]
    with connection.cursor() as cursor:
        with copy_rows(cursor, sql.Identifier("documents")) as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute("ANALYZE documents")
    print(f"{Document.objects.count():,} documents in the table")

    logging.disable(logging.INFO)  # no request log line per render
    warnings.simplefilter("ignore")  # no collected static files: not what is measured
    client = Client(HTTP_HOST="localhost")
    client.force_login(User.objects.create_superuser("bench", "bench@example.com", "pw"))
    some = Document.objects.order_by("pk")[count // 2]
    from asgiref.sync import async_to_sync

    from ingest.preparing import Upload
    from ingest.services import document_ingest
    from registry.audit import Actor

    words = " ".join(f"word{n % 5000}" for n in range(24_000))
    upload = Upload(words.encode(), "long.txt", workspace="eng", content_type="text/plain")
    ingested = async_to_sync(document_ingest)(upload, actor=Actor.command("bench_admin"))
    long = Document.objects.get(file_id=ingested.document.file_id)
    print(f"and one ingested document of {long.num_chunks} chunks")
    pages = {
        "list, page 1": "/admin/registry/document/",
        "list, page 1000": "/admin/registry/document/?p=1000",
        "list, workspace filter": "/admin/registry/document/?workspace__exact=eng",
        "list, search by name": f"/admin/registry/document/?q={some.filename}",
        "list, search by id": f"/admin/registry/document/?q={some.file_id}",
        "list, one year": "/admin/registry/document/?created_at__year=2020",
        "document page, no chunks": f"/admin/registry/document/{some.pk}/change/",
        "document, chunks 1-20": f"/admin/registry/document/{long.pk}/change/",
        "document, chunks 221-240": f"/admin/registry/document/{long.pk}/change/?chunks=12",
        "ask page (form)": "/admin/registry/document/ask/",
    }
    print(f"{'page':<26}{'median ms':>10}{'worst ms':>10}{'queries':>9}{'SQL alone ms':>14}")
    for name, url in pages.items():
        client.get(url, secure=True)  # warm: templates compiled, caches filled
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url, secure=True)  # DEBUG=false redirects http
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (url, response.status_code)
        alone = _queries_alone(connection, queries.captured_queries, repeat)
        print(
            f"{name:<26}{statistics.median(times):>10.1f}{max(times):>10.1f}"
            f"{len(queries.captured_queries):>9}{alone:>14.1f}"
        )
        slowest = max(queries.captured_queries, key=lambda q: float(q["time"]))
        print(f"    slowest query {float(slowest['time']) * 1000:.1f} ms: {slowest['sql'][:110]}")
    with connection.cursor() as cursor:
        counts = []
        for _ in range(repeat):
            started = time.perf_counter()
            cursor.execute("SELECT count(*) FROM documents")
            cursor.fetchone()
            counts.append((time.perf_counter() - started) * 1000)
    floor = statistics.median(counts)
    print(f"floor beside: a plain count of the documents table, median {floor:.1f} ms")


def _queries_alone(connection: object, captured: list[dict], repeat: int) -> float:
    """The median time of running the page's queries again, alone, back to back."""
    from django.db import connection as db

    times = []
    with db.cursor() as cursor:
        for _ in range(repeat):
            started = time.perf_counter()
            for query in captured:
                if query["sql"].lstrip().upper().startswith(("SELECT", "WITH")):
                    cursor.execute(query["sql"])
                    cursor.fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    main()
