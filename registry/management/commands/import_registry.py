from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from common.progress import ProgressBar
from registry.exceptions import InvalidRegistryFile, MissingTable
from registry.importing import ImportReport, import_registry
from registry.models import require_documents_table


class Command(BaseCommand):
    help = (
        "Import a legacy registry file (a JSON array of camelCase records) into the "
        "documents table, upserting by fileId. Exits non-zero when records were rejected."
    )
    # The checks about the data it writes. The others (URLs, admin, templates) are about
    # serving; loading the URLs imports the whole API and its ingestion stack, most of
    # a second of the command's start.
    requires_system_checks = [Tags.models, Tags.database]

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path",
            nargs="?",
            type=Path,
            help="The legacy registry file (default: REGISTRY_JSON_PATH, data/registry.json)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Validate and report what would change; write nothing",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Import nothing if any record is invalid",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar, even on a terminal"
        )

    def handle(
        self,
        *args: object,
        path: Path | None,
        dry_run: bool,
        strict: bool,
        no_progress: bool,
        **options: Any,
    ) -> None:
        path = path or settings.REGISTRY_JSON_PATH
        bar = ProgressBar.on_terminal(self.stderr, enabled=not no_progress)
        try:
            require_documents_table()
            with _no_garbage_collection():
                report = import_registry(path=path, dry_run=dry_run, strict=strict, progress=bar)
        except (InvalidRegistryFile, MissingTable) as exc:
            raise CommandError(str(exc)) from None
        except DatabaseError as exc:
            raise CommandError(
                f"import of {path} failed, nothing was written: {exc}".strip()
            ) from None
        finally:
            if bar is not None:
                bar.clear()

        for rejection in report.rejected:
            self.stdout.write(f"rejected {rejection}")
        for duplicate in report.duplicates:
            self.stdout.write(f"duplicate {duplicate}")
        self.stdout.write(summary(report, dry_run=dry_run))
        if report.rejected:
            count = len(report.rejected)
            records = "record was" if count == 1 else "records were"
            if report.written:
                raise CommandError(f"{count} {records} rejected (listed above); the rest imported")
            raise CommandError(f"{count} {records} rejected (listed above); nothing was written")


def summary(report: ImportReport, *, dry_run: bool) -> str:
    counts = (
        f"{report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged, {len(report.rejected)} rejected"
    )
    if report.duplicates:
        counts += f" ({len(report.duplicates)} duplicated fileId, older copies skipped)"
    if dry_run:
        return f"Dry run of {report.path}, nothing written; it would give: {counts}."
    if not report.written:
        return f"Nothing imported from {report.path} (--strict); it would give: {counts}."
    done = f"Imported {report.path}: {counts}."
    if report.created or report.updated:
        return done
    if report.rejected:
        return f"{done} Nothing changed."
    return f"{done} Nothing changed: the database matches the file."


@contextlib.contextmanager
def _no_garbage_collection() -> Iterator[None]:
    """Python's cycle collector off while the file is read and normalised: it kept
    scanning the hundreds of thousands of objects an import builds, none of them in a
    cycle, and took a fifth of the time (bench/bench_import.py)."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
