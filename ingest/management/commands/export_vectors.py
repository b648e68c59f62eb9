from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.text import plural
from ingest.exceptions import IngestError
from ingest.maintenance.moving import export_vectors


class Command(BaseCommand):
    help = (
        "Write every chunk of the PostgreSQL table chunks to a vector store file, "
        "atomically, ready for a rollback to VECTOR_STORE=json. The file then holds exactly "
        "the table's chunks."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", nargs="?", type=Path, help="The store file (default: VECTOR_JSON_PATH)"
        )

    def handle(self, *args: object, path: Path | None, **options: Any) -> None:
        path = path or settings.VECTOR_JSON_PATH
        try:
            moved = export_vectors(path)
        except IngestError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Exported the PostgreSQL table chunks to {path}: "
            f"{plural(moved.documents, 'document')} ({plural(moved.chunks, 'chunk')})."
        )
