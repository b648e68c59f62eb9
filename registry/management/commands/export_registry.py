from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from registry.exceptions import MissingTable
from registry.exporting import export_registry
from registry.models import require_documents_table


class Command(BaseCommand):
    help = (
        "Write the documents table as a legacy registry file (atomically, under the JSON "
        "registry's lock), ready for a rollback to USE_JSON_REGISTRY=true."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            type=Path,
            help="Where to write (default: REGISTRY_JSON_PATH, data/registry.json)",
        )

    def handle(self, *args: object, path: Path | None, **options: Any) -> str:
        path = path or settings.REGISTRY_JSON_PATH
        try:
            require_documents_table()
            count = export_registry(path=path)
        except MissingTable as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(f"cannot read the documents table: {exc}".strip()) from None
        except OSError as exc:
            raise CommandError(
                f"cannot write {path}: {exc.strerror or exc}; the previous file is untouched"
            ) from None
        return f"Exported {count} documents from the database to {path}."
