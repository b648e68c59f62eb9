"""The live vector store, chosen in one place by VECTOR_STORE.

Nothing outside this package reads that setting: callers ask `get_vector_store()` for
the store of the configured embedder, or `build_vector_store()` for one of another
embedder (a reindex builds the store it moves to). The pgvector store is imported when
first built, so the json store works without psycopg's pgvector types.
"""

from __future__ import annotations

from django.conf import settings

from common.singletons import Singleton
from ingest.search.embeddings import EMBEDDER_SETTINGS, get_embedder
from ingest.stores.base import VectorStore


def build_vector_store(embedder: str, dim: int) -> VectorStore:
    """The store VECTOR_STORE names, for vectors of this embedder."""
    if settings.VECTOR_STORE == "pgvector":
        from ingest.stores.pgvector import PgVectorStore

        return PgVectorStore(embedder=embedder, dim=dim)
    from ingest.stores.vector_file import JsonFileStore

    return JsonFileStore(settings.VECTOR_JSON_PATH, embedder=embedder, dim=dim)


def _build() -> VectorStore:
    embedder = get_embedder()
    return build_vector_store(embedder.name, embedder.dim)


# The process-wide store for the configured embedder.
_store = Singleton(_build, settings={"VECTOR_STORE", "VECTOR_JSON_PATH", *EMBEDDER_SETTINGS})
get_vector_store = _store.get
reset_vector_store = _store.reset
