"""Moving vectors between the store file (VECTOR_JSON_PATH) and the pgvector table, for
the cutover to VECTOR_STORE=pgvector and the rollback from it.

`import_vectors` copies a store file into `chunks` with COPY, in one transaction: each
document it holds replaces that document's chunks, so a second run leaves the table as
it was. Chunks of documents the registry lacks are reported and left out (their rows
must exist: the foreign key). An import at least as large as what the table keeps
rebuilds the search indexes after the COPY instead of updating them row by row
(PgVectorStore.load).
`export_vectors` writes the table back to a store file, atomically. Ids, texts, headings
and vectors survive both ways to the bit: pgvector prints a float4 in the shortest form
that reads back as the same float.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.progress import Progress
from ingest.exceptions import VectorStoreError
from ingest.search.embeddings import get_embedder
from ingest.stores.pgvector import PgVectorStore
from ingest.stores.vector_file import JsonFileStore
from registry.backends import get_backend


@dataclass(frozen=True)
class Moved:
    documents: int
    chunks: int
    unknown: list[str]  # documents of the file the registry does not hold, left out


def _stores(path: Path) -> tuple[JsonFileStore, PgVectorStore]:
    """The store file at `path` and the table, both for the configured embedder."""
    embedder = get_embedder()
    return (
        JsonFileStore(path, embedder=embedder.name, dim=embedder.dim),
        PgVectorStore(embedder=embedder.name, dim=embedder.dim),
    )


def import_vectors(path: Path, *, progress: Progress | None = None) -> Moved:
    """Load the store file at `path` into the table, each of its documents replacing
    that document's chunks; documents the registry lacks are left out."""
    source, table = _stores(path)
    if not path.exists():
        raise VectorStoreError(f"vector store {path} does not exist")
    source.require_compatible()
    documents = source.documents()
    known = get_backend().get_many([d.file_id for d in documents])
    wanted = [d for d in documents if d.file_id in known]
    unknown = sorted(d.file_id for d in documents if d.file_id not in known)
    loaded = table.load(wanted, progress=progress)
    return Moved(len(wanted), loaded, unknown)


def export_vectors(path: Path) -> Moved:
    """Write every chunk of the table to the store file at `path`, replacing it."""
    target, table = _stores(path)
    documents = table.documents()
    written = target.write_all(documents)
    return Moved(len(documents), written, [])
