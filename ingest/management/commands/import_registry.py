"""`manage.py import_registry [PATH] [--dry-run] [--strict] [--sync [--yes]]`: the legacy
registry file into the `documents` table (registry/importing.py). With --sync the table
is brought to exactly the file's state: documents the file no longer holds (deleted
during a rollback to the JSON registry) are deleted too, with their vectors and jobs.

It lives in `ingest` because --sync deletes through the service's own delete, which
removes a document's row and its chunks together.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, transaction

from common.progress import ProgressBar
from common.text import plural
from ingest.services import document_delete_many
from registry.audit import Actor
from registry.backends.database import DatabaseRegistry
from registry.exceptions import InvalidRegistryFile, MissingTable
from registry.importing import ImportReport, documents_not_in, import_registry
from registry.models import require_documents_table
from registry.records import DocumentRecord

# --sync deletes this many documents without asking; more need --yes (or a "yes" typed).
DELETES_UNASKED = 5
DELETE_BATCH = 1000  # ids per statement: SQLite takes a few tens of thousands at most


class Command(BaseCommand):
    help = (
        "Import a legacy registry file (a JSON array of camelCase records) into the "
        "documents table, upserting by fileId; with --sync, also delete the documents the "
        "file does not hold. Exits non-zero when records were rejected."
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
            "--sync",
            action="store_true",
            help="Also delete the documents (and their vectors) that the file does not hold: "
            "the return from a rollback to the JSON registry",
        )
        parser.add_argument(
            "--yes",
            action="store_true",
            help=f"With --sync, delete more than {DELETES_UNASKED} documents without asking",
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
        sync: bool,
        yes: bool,
        no_progress: bool,
        **options: Any,
    ) -> None:
        if yes and not sync:
            raise CommandError("--yes goes with --sync")
        path = path or settings.REGISTRY_JSON_PATH
        bar = ProgressBar.on_terminal(self.stderr, enabled=not no_progress)
        deleted: list[DocumentRecord] = []
        try:
            require_documents_table()
            gone = documents_not_in(path) if sync else []
            for record in gone:
                verb = "would delete" if dry_run else "delete"
                self.stdout.write(
                    f"{verb} document {record.file_id!r} ({record.filename}): not in {path}"
                )
            if gone and not dry_run:
                self._confirm(len(gone), path, yes=yes)
            with _no_garbage_collection(), transaction.atomic():
                report = import_registry(path=path, dry_run=dry_run, strict=strict, progress=bar)
                if gone and report.written:
                    database = DatabaseRegistry()  # whichever registry is live
                    actor = Actor.command("import_registry --sync")
                    ids = [record.file_id for record in gone]
                    for start in range(0, len(ids), DELETE_BATCH):
                        batch = ids[start : start + DELETE_BATCH]
                        removed = document_delete_many(
                            file_ids=batch, registry=database, actor=actor
                        )
                        deleted += removed.documents
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
        removals = (len(deleted) if report.written else len(gone)) if sync else None
        self.stdout.write(summary(report, dry_run=dry_run, deleted=removals))
        if report.rejected:
            count = len(report.rejected)
            records = "record was" if count == 1 else "records were"
            if report.written:
                raise CommandError(f"{count} {records} rejected (listed above); the rest imported")
            raise CommandError(f"{count} {records} rejected (listed above); nothing was written")

    def _confirm(self, count: int, path: Path, *, yes: bool) -> None:
        """More than a handful of deletions needs --yes, or a "yes" typed at a terminal."""
        if count <= DELETES_UNASKED or yes:
            return
        question = (
            f"--sync would delete {plural(count, 'document')} that {path} does not hold "
            "(listed above), with their vectors"
        )
        if not _at_a_terminal():
            raise CommandError(
                f"{question}: nothing done. Check the list (--dry-run shows it too), then "
                "rerun with --yes"
            )
        answer = input(f"{question}. Type 'yes' to go on: ")
        if answer.strip().lower() != "yes":
            raise CommandError("Nothing done.")


def _at_a_terminal() -> bool:
    try:
        return sys.stdin.isatty()
    except (AttributeError, OSError, ValueError):  # no stdin, or a test runner's
        return False


def summary(report: ImportReport, *, dry_run: bool, deleted: int | None = None) -> str:
    counts = (
        f"{report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged"
        + (f", {deleted} deleted" if deleted is not None else "")
        + f", {len(report.rejected)} rejected"
    )
    if report.duplicates:
        counts += f" ({len(report.duplicates)} duplicated fileId, older copies skipped)"
    if dry_run:
        return f"Dry run of {report.path}, nothing written; it would give: {counts}."
    if not report.written:
        return f"Nothing imported from {report.path} (--strict); it would give: {counts}."
    done = f"Imported {report.path}: {counts}."
    if report.created or report.updated or deleted:
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
