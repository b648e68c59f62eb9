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
        "switching EMBEDDER to it. With --reextract, read each document's kept original "
        "again with today's readers instead (PDFs ingested before page citations gain "
        "their pages), one document at a time, each replaced as a re-ingest would."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--embedder",
            choices=sorted(EMBEDDER_KINDS),
            help="The embedder to build the store for (default: EMBEDDER)",
        )
        parser.add_argument(
            "--reextract",
            action="store_true",
            help="Read the kept originals again with today's readers and index them anew "
            "(documents imported from the old registry have none and are listed)",
        )
        parser.add_argument(
            "file_ids",
            nargs="*",
            metavar="FILE_ID",
            help="With --reextract: only these documents (default: every one)",
        )
        parser.add_argument(
            "--model",
            default="",
            help="With --embedder sentence-transformers: the model directory or cached name",
        )

    def handle(
        self,
        *args: object,
        embedder: str | None,
        model: str,
        reextract: bool,
        file_ids: list[str],
        **options: Any,
    ) -> None:
        if reextract:
            if embedder or model:
                raise CommandError("--reextract embeds with EMBEDDER: it takes no --embedder")
            self._reextract(file_ids)
            return
        if file_ids:
            raise CommandError("Document ids are taken with --reextract only")
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

    def _reextract(self, file_ids: list[str]) -> None:
        """Each document (or each of `file_ids`) read again from its original."""
        from ingest.services import document_reextract
        from registry.audit import Actor
        from registry.backends import get_backend

        backend = get_backend()
        if file_ids:
            found = backend.get_many(file_ids)
            unknown = [file_id for file_id in file_ids if file_id not in found]
            if unknown:
                raise CommandError(f"No such document: {', '.join(unknown)}")
            records = list(found.values())
        else:
            records = backend.list(limit=max(backend.count(), 1))
        actor = Actor.command("reindex --reextract")
        done, without, failed = 0, [], []
        for record in records:
            if record.awaiting_chunks:
                continue  # its background job reads it with today's readers anyway
            try:
                stored = document_reextract(record, actor=actor)
            except IngestError as exc:
                failed.append(record.file_id)
                self.stderr.write(f"{record.file_id} ({record.filename}): {exc}")
                continue
            if stored is None:
                without.append(record.file_id)
                continue
            done += 1
            self.stdout.write(
                f"{record.file_id} ({record.filename}): {stored.document.num_chunks} chunks"
            )
        summary = f"Read {done} document(s) again from their originals."
        if without:
            summary += (
                f" {len(without)} have no original kept (imported from the old registry): "
                + ", ".join(without[:20])
                + (" …" if len(without) > 20 else "")
            )
        self.stdout.write(self.style.SUCCESS(summary))
        if failed:
            raise CommandError(
                f"{len(failed)} document(s) could not be read again and were left as they "
                f"were: {', '.join(failed[:20])}"
            )
