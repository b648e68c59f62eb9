from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.progress import ProgressBar
from common.text import plural
from ingest.exceptions import IngestError
from ingest.maintenance.moving import import_vectors
from registry.exceptions import RegistryError


class Command(BaseCommand):
    help = (
        "Copy this service's vector store file into the PostgreSQL table chunks "
        "(VECTOR_STORE=pgvector), with COPY, in one transaction. Each document of the file "
        "replaces that document's chunks, so a second run changes nothing. Chunks of "
        "documents the registry does not hold are listed and left out (exit status 1)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", nargs="?", type=Path, help="The store file (default: VECTOR_JSON_PATH)"
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar, even on a terminal"
        )

    def handle(self, *args: object, path: Path | None, no_progress: bool, **options: Any) -> None:
        path = path or settings.VECTOR_JSON_PATH
        bar = ProgressBar.on_terminal(self.stderr, enabled=not no_progress)
        try:
            moved = import_vectors(path, progress=bar)
        except (IngestError, RegistryError) as exc:
            raise CommandError(str(exc)) from None
        finally:
            if bar is not None:
                bar.clear()
        for file_id in moved.unknown:
            self.stdout.write(f"not in the registry: document {file_id!r}: not imported")
        self.stdout.write(
            f"Imported {path} into the PostgreSQL table chunks: "
            f"{plural(moved.documents, 'document')} ({plural(moved.chunks, 'chunk')})."
        )
        if moved.unknown:
            raise CommandError(
                f"{plural(len(moved.unknown), 'document')} of {path} not in the registry "
                "were left out (listed above)"
            )
