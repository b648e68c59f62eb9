"""What an operator inspecting the service's data sees: the vector store's chunks, a child
service's rows."""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import orjson


def on_pgvector() -> bool:
    from django.conf import settings

    return settings.VECTOR_STORE == "pgvector"


def stored_chunks(data_dir: Path) -> list[dict[str, Any]]:
    """Every chunk the vector store holds, in the order stored, as an operator inspecting
    it sees it: the file data/vectors.json, or the table chunks (VECTOR_STORE=pgvector).
    Each has chunk_id, file_id, workspace, chunk_index, context, text and pages ([first,
    last], or None for a format without pages)."""
    if on_pgvector():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT file_id || ':' || chunk_index AS chunk_id, file_id, workspace, "
                "chunk_index, context, text, CASE WHEN first_page IS NULL THEN NULL "
                "ELSE ARRAY[first_page, last_page] END AS pages FROM chunks ORDER BY id"
            )
            names = [column.name for column in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    fields = ("chunk_id", "file_id", "workspace", "chunk_index", "context", "text")
    return [
        {**{key: chunk[key] for key in fields}, "pages": chunk.get("pages")}
        for chunk in file_chunks(data_dir / "vectors.json")
    ]


def file_chunks(path: Path) -> list[dict[str, Any]]:
    """The chunks of a store file as its format says to read it: the file's, then the
    changes its journal (`<file>.journal`, JSON lines) appended since, when the journal's
    header names the file's generation: each line removes the documents it lists, then
    adds its chunks. A last line without its newline is not part of it."""
    if not path.exists():
        return []
    store = orjson.loads(path.read_bytes())
    chunks = list(store["chunks"])
    journal = path.with_name(path.name + ".journal")
    if not journal.exists():
        return chunks
    lines = journal.read_bytes().split(b"\n")[:-1]  # complete lines only
    if not lines or orjson.loads(lines[0])["generation"] != store.get("generation"):
        return chunks
    for line in lines[1:]:
        change = orjson.loads(line)
        removed = set(change["removed"])
        chunks = [chunk for chunk in chunks if chunk["file_id"] not in removed]
        chunks.extend(change["chunks"])
    return chunks


def service_rows(env: dict[str, str], query: str, params: list[Any]) -> list[tuple]:
    """The rows `query` (placeholders `%s`) finds in a child service's database, as an
    operator querying it sees them: its SQLite file, or the test run's PostgreSQL."""
    url = env["DATABASE_URL"]
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            return db.execute(query.replace("%s", "?"), params).fetchall()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def kept_upload(env: dict[str, str], job_id: str) -> int:
    """How many bytes of a background job's upload its service's database still keeps."""
    key = uuid.UUID(job_id)
    param = key.hex if env["DATABASE_URL"].startswith("sqlite") else key
    rows = service_rows(env, "SELECT length(data) FROM ingest_jobs WHERE id = %s", [param])
    assert rows, f"no job {job_id}"
    return int(rows[0][0])


def store_built_by(data_dir: Path) -> tuple[str, int] | None:
    """The embedder and dimension the vector store records, None when it has none."""
    if on_pgvector():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("SELECT embedder, dim FROM chunk_store")
            row = cursor.fetchone()
            return (row[0], row[1]) if row else None
    path = data_dir / "vectors.json"
    if not path.exists():
        return None
    store = orjson.loads(path.read_bytes())
    return store["embedder"], store["dim"]


def store_label(data_dir: Path) -> str:
    """How messages name the vector store: its file, or the pgvector table."""
    return "the PostgreSQL table chunks" if on_pgvector() else str(data_dir / "vectors.json")


def store_name(data_dir: Path) -> str:
    """The short name messages give the store: the file's name, or the table."""
    return "the PostgreSQL table chunks" if on_pgvector() else "vectors.json"


def vector_file_ids(data_dir: Path) -> list[str]:
    """The document id of every chunk in the store (see stored_chunks)."""
    return [chunk["file_id"] for chunk in stored_chunks(data_dir)]


def stored_text(data_dir: Path) -> str:
    """The text of every chunk in the store, headings included, one after the other."""
    return "\n".join(f"{chunk['context']}\n{chunk['text']}" for chunk in stored_chunks(data_dir))


def table_rows() -> dict[str, tuple]:
    """Every row of the documents table, by file_id, as the database holds it."""
    from registry.models import Document
    from registry.records import RECORD_FIELDS

    return {row[0]: row for row in Document.objects.values_list(*RECORD_FIELDS)}


def kept_originals(data_dir: Path) -> list[str]:
    """The originals kept in the test's storage (data_dir/originals), as fileId/sha256."""
    folder = data_dir / "originals"
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
