from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import DatabaseError

from registry.exceptions import InvalidRegistryFile
from registry.importing import (
    ImportReport,
    MissingTable,
    import_registry,
    require_documents_table,
)


class Command(BaseCommand):
    help = (
        "Import a legacy registry file (a JSON array of camelCase records) into the "
        "documents table, upserting by fileId. Exits non-zero when records were rejected."
    )

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
        # Drawn on stderr, so it is stderr that must be a terminal.
        bar = None if no_progress or not self.stderr.isatty() else ProgressBar(self.stderr)
        try:
            require_documents_table()
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


class ProgressBar:
    """One line redrawn in place with carriage returns, at most ten times a second."""

    width = 30

    def __init__(self, stream: OutputWrapper) -> None:
        self.stream = stream
        self.phase = ""
        self.last_draw = 0.0
        self.drawn = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        now = time.monotonic()
        if phase == self.phase and done < total and now - self.last_draw < 0.1:
            return
        self.phase, self.last_draw = phase, now
        fraction = done / total if total else 1.0
        filled = round(self.width * fraction)
        line = (
            f"{phase:<10} [{'#' * filled}{'.' * (self.width - filled)}] "
            f"{done:>9,}/{total:,} {fraction:4.0%}"
        )
        self._write("\r" + line.ljust(self.drawn))
        self.drawn = len(line)

    def clear(self) -> None:
        if self.drawn:
            self._write("\r" + " " * self.drawn + "\r")
            self.drawn = 0

    def _write(self, text: str) -> None:
        self.stream.write(text, style_func=lambda text: text, ending="")
        self.stream.flush()
