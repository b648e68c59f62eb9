from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.progress import ProgressBar
from common.text import plural
from ingest.exceptions import IngestError
from ingest.maintenance.legacy_vectors import LegacyVectorsReport, import_legacy_vectors
from registry.exceptions import RegistryError

# Documents of each kind listed unless -v 2.
LISTED = 20


class Command(BaseCommand):
    help = (
        "Read the old service's vec.json (a JSON array of chunks) into this service's "
        "vector store: every chunk's text is embedded again with the configured embedder; "
        "its document, chunkId and workspace are kept. The old file is never written. "
        "Chunks of documents the registry does not hold are reported, not imported. Exits "
        "non-zero when any chunk was left out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            type=Path,
            help="The old vec.json (default: LEGACY_VECTOR_JSON_PATH, data/vec.json)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would change; write nothing"
        )
        parser.add_argument(
            "--keep-vectors",
            action="store_true",
            help="Store the old text-embedding-004 vectors as they are instead of embedding "
            "the texts again (needs EMBEDDER=gemini)",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar, even on a terminal"
        )

    def handle(
        self,
        *args: object,
        path: Path | None,
        dry_run: bool,
        keep_vectors: bool,
        no_progress: bool,
        **options: Any,
    ) -> None:
        path = path or settings.LEGACY_VECTOR_JSON_PATH
        bar = ProgressBar.on_terminal(self.stderr, enabled=not no_progress)
        try:
            result = import_legacy_vectors(
                path=path, dry_run=dry_run, keep_vectors=keep_vectors, progress=bar
            )
        except (IngestError, RegistryError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.clear()
        limit = None if options["verbosity"] >= 2 else LISTED
        for line in _findings(result, limit=limit):
            self.stdout.write(line)
        self.stdout.write(summary(result, dry_run=dry_run))
        if result.left_out:
            were = "was" if result.left_out == 1 else "were"
            raise CommandError(
                f"{plural(result.left_out, 'chunk')} of {path} {were} not imported (listed above)"
            )


def _findings(result: LegacyVectorsReport, *, limit: int | None) -> list[str]:
    lines = [f"rejected {rejection}" for rejection in result.rejected]
    unknown = [
        f"not in the registry: document {document.file_id!r} ({document.filename or 'no name'}), "
        f"{plural(len(document.texts), 'chunk')}: not imported"
        for document in result.unknown
    ]
    if limit is not None and len(unknown) > limit:
        unknown = [*unknown[:limit], f"… and {len(unknown) - limit} more (-v 2 lists all)"]
    identical = [
        "the same text under different fileIds (/ask cites it once; delete the copies you do "
        "not want): " + ", ".join(f"{d.file_id!r} ({d.filename or 'no name'})" for d in group)
        for group in result.identical
    ]
    return lines + unknown + identical


def summary(result: LegacyVectorsReport, *, dry_run: bool) -> str:
    how = "cut again and embedded" if result.rechunked else "kept as they were, stored"
    counts = (
        f"{plural(len(result.imported), 'document')} ({plural(result.chunks, 'chunk')}) {how} with "
        f"{result.embedder}, {len(result.unchanged)} unchanged, "
        f"{plural(len(result.unknown), 'document')} not in the registry, "
        f"{plural(len(result.rejected), 'chunk')} rejected"
    )
    if result.repeated:
        counts += f" ({plural(result.repeated, 'repeated chunk')}: the later copy kept)"
    if dry_run:
        return f"Dry run of {result.path}, nothing written; it would give: {counts}."
    return f"Imported {result.path} into {result.store}: {counts}. {result.path} is unchanged."
