from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.exceptions import IngestError
from ingest.maintenance.reindexing import reindex
from ingest.search.embeddings import EMBEDDER_KINDS, build_embedder
from ingest.stores import build_vector_store

# Progress lines at most this often (seconds), and at the end.
REPORT_EVERY = 5.0


class Command(BaseCommand):
    help = (
        "Embed every chunk in the vector store again, from the text it already holds (the "
        "original files are not needed), and swap the new vectors in atomically. The "
        "service keeps answering from the old vectors until then. Use it after changing "
        "EMBEDDER, or with --embedder to build the store for another embedder before "
        "switching EMBEDDER to it."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--embedder",
            choices=sorted(EMBEDDER_KINDS),
            help="The embedder to build the store for (default: EMBEDDER)",
        )
        parser.add_argument(
            "--model",
            default="",
            help="With --embedder sentence-transformers: the model directory or cached name",
        )

    def handle(self, *args: object, embedder: str | None, model: str, **options: Any) -> None:
        kind = embedder or settings.EMBEDDER
        model = model or (settings.EMBEDDING_MODEL if kind == settings.EMBEDDER else "")
        if kind == "sentence-transformers" and not model:
            raise CommandError("--embedder sentence-transformers needs --model")
        started = time.monotonic()
        last = 0.0

        def progress(phase: str, done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done < total and now - last < REPORT_EVERY:
                return
            last = now
            rate = done / max(now - started, 1e-9)
            self.stdout.write(f"embedded {done:,}/{total:,} chunks ({rate:,.0f} chunks/s)")

        try:
            target = build_embedder(kind, model=model, dim=settings.EMBEDDING_DIM)
            where = build_vector_store(target.name, target.dim).label
            self.stdout.write(f"reindexing {where} with {target.name} …")
            result = reindex(target, progress=progress)
        except IngestError as exc:
            raise CommandError(str(exc)) from None
        if result.chunks == 0:
            self.stdout.write("The vector store holds no chunks: nothing to reindex.")
            return
        before = (
            f"{result.previous[0]} ({result.previous[1]} dimensions)"
            if result.previous
            else "empty"
        )
        self.stdout.write(
            self.style.SUCCESS(
                f"Reindexed {result.chunks:,} chunks with {result.embedder} "
                f"({result.dim} dimensions; was {before}) in {result.seconds:.1f} s"
                + (f"; {result.late} added or changed meanwhile" if result.late else "")
                + "."
            )
        )
        if result.embedder != target.name or kind != settings.EMBEDDER:
            self.stdout.write(
                f"Set EMBEDDER={kind} (and restart the service): until then it refuses "
                "the store, which another embedder built."
            )
