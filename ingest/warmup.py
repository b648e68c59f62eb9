"""A process getting ready before it takes work: its embedder loaded and run on full
batches, and (a web server) its vector store read, as the first question reads it.
Without it, the first ingest of each web worker waited 13-15 s for the model and the
first question after a start 17 s; a worker's first job ran at 34 chunks/s against 40.

Web processes warm up on a thread of their own when the ASGI application is imported
(WARM_UP), and /health answers 503 "starting" until they are done, so that a load
balancer sends them nothing before. `db_worker` warms up before it takes a job.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from django.db import DatabaseError, connection

from ingest.exceptions import IngestError
from ingest.search.embeddings import get_embedder
from ingest.stores import get_vector_store
from registry.exceptions import RegistryError

logger = logging.getLogger(__name__)

_started = False
_done = threading.Event()


def warm_up(*, store: bool) -> None:
    """Load and run the embedder, and with `store` search the vector store once. What
    fails here (a model that cannot be loaded, a store of another embedder, the database
    away) is logged and left to the requests and jobs, which report it."""
    started = time.monotonic()
    try:
        embedder = get_embedder()
        embedder.warm_up()
        if store:
            query = embedder.embed(["ready"])[0]
            get_vector_store().search(query, ["ready"], workspace=None, top_k=1)
    except (IngestError, RegistryError, DatabaseError) as exc:
        logger.warning("warm-up: %s; the first request will try again", exc)
        return
    finally:
        if store:
            connection.close()  # this thread's, if the store used one
    settle_heap()
    logger.info("ready in %.1f s (embedder %s)", time.monotonic() - started, embedder.name)


def settle_heap() -> None:
    """Collect once, then leave everything alive now (the model, the store, Django) out
    of later collections (`gc.freeze`): they live as long as the process. Otherwise
    each full collection walks the model's millions of objects while requests wait: the
    p99 of a one-row read was 385 ms against the bare framework's 87 (bench/bench_http.py,
    2026-12-07)."""
    gc.collect()
    gc.freeze()


def start() -> None:
    """Warm this process up on a thread of its own; ready() says when it is done."""
    global _started
    if _started:
        return
    _started = True

    def run() -> None:
        try:
            warm_up(store=True)
        finally:
            _done.set()

    threading.Thread(target=run, name="warm-up", daemon=True).start()


def ready() -> bool:
    """False while a warm-up started in this process is still under way."""
    return not _started or _done.is_set()
