from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ingest.exceptions import VectorStoreError
from ingest.vector_store import get_vector_store
from registry.backends import get_backend
from registry.backends.base import RegistryBackend
from registry.backends.db import DatabaseRegistry
from registry.backends.json_file import JsonFileRegistry
from registry.exceptions import RegistryError
from registry.records import DocumentRecord

PAGE = 10_000
# Findings of each kind listed unless -v 2: a registry never ingested would list them all.
LISTED = 20


class Command(BaseCommand):
    help = (
        "Compare the live registry (or, with --both, the database and the JSON registry) "
        "with the vector store: documents without vectors, vectors without a document, "
        "chunk counts that disagree. Exits 0 only when everything agrees."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--both",
            action="store_true",
            help="Check the database and the JSON registry, and that they hold the same "
            "documents (before a cutover or a rollback)",
        )
        parser.add_argument(
            "--fix",
            action="store_true",
            help="Remove the vectors of documents that no checked registry holds",
        )

    def handle(self, *args: object, both: bool, fix: bool, **options: Any) -> str:
        if both:
            registries: dict[str, RegistryBackend] = {
                "database": DatabaseRegistry(),
                "json": JsonFileRegistry(settings.REGISTRY_JSON_PATH),
            }
        else:
            live = get_backend()
            registries = {live.name: live}
        vectors = settings.VECTOR_JSON_PATH
        try:
            documents = {name: every_record(backend) for name, backend in registries.items()}
            store = get_vector_store()
            report = compare(documents, store.chunk_counts())
            limit = None if options["verbosity"] >= 2 else LISTED
            for line in report.lines(vectors=vectors.name, limit=limit):
                self.stdout.write(line)
            if fix and report.orphans:
                removed = store.remove_many(report.orphans)
                self.stdout.write(
                    f"fixed: removed {plural(removed, 'chunk')} of "
                    f"{plural(len(report.orphans), 'document')} that no registry holds"
                )
                report = compare(documents, store.chunk_counts())
        except (RegistryError, VectorStoreError) as exc:
            raise CommandError(str(exc)) from None

        if report.problems():
            subject = "The registries" if both else "The registry"
            raise CommandError(f"{subject} and {vectors} disagree: {report.summary()}")
        held = ", ".join(
            f"{plural(len(records), 'document')} in the {name} registry"
            for name, records in documents.items()
        )
        return f"Everything agrees: {held}, {plural(report.chunks, 'chunk')} in {vectors}."


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def every_record(backend: RegistryBackend) -> dict[str, DocumentRecord]:
    records: dict[str, DocumentRecord] = {}
    offset = 0
    while page := backend.list(limit=PAGE, offset=offset):
        records.update((record.file_id, record) for record in page)
        offset += PAGE
    return records


@dataclass
class Comparison:
    # (registry, record) pairs; file_id → chunks for orphans; file_ids for the rest.
    without_vectors: list[tuple[str, DocumentRecord]] = field(default_factory=list)
    miscounted: list[tuple[str, DocumentRecord, int]] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)
    only_in: list[tuple[str, str]] = field(default_factory=list)
    differing: list[tuple[str, list[str]]] = field(default_factory=list)
    chunks: int = 0

    def problems(self) -> int:
        return sum(
            map(
                len,
                (self.without_vectors, self.miscounted, self.orphans, self.only_in, self.differing),
            )
        )

    def lines(self, *, vectors: str, limit: int | None) -> list[str]:
        """One line per finding; at most `limit` of each kind, then how many more."""
        kinds = [
            [
                f"{name}: document {record.file_id!r} ({record.filename}) has no vectors; the "
                f"registry says {plural(record.num_chunks, 'chunk')}: re-ingest it"
                for name, record in self.without_vectors
            ],
            [
                f"{name}: document {record.file_id!r} ({record.filename}) has "
                f"{plural(stored, 'chunk')} in {vectors}; the registry says {record.num_chunks}"
                for name, record, stored in self.miscounted
            ],
            [
                f"{vectors}: {plural(chunks, 'chunk')} of unknown document {file_id!r}; "
                "--fix removes them"
                for file_id, chunks in sorted(self.orphans.items())
            ],
            [f"{name} only: document {file_id!r}" for name, file_id in self.only_in],
            [
                f"differs between the registries: document {file_id!r} ({', '.join(names)})"
                for file_id, names in self.differing
            ],
        ]
        out = []
        for lines in kinds:
            if limit is not None and len(lines) > limit:
                hidden = len(lines) - limit
                lines = [*lines[:limit], f"… and {hidden} more like these (-v 2 lists all)"]
            out += lines
        return out

    def summary(self) -> str:
        parts = []
        if self.without_vectors:
            parts.append(f"{plural(len(self.without_vectors), 'document')} without vectors")
        if self.miscounted:
            parts.append(f"{plural(len(self.miscounted), 'document')} with another chunk count")
        if self.orphans:
            parts.append(
                f"vectors of {plural(len(self.orphans), 'unknown document')} "
                f"({plural(sum(self.orphans.values()), 'chunk')})"
            )
        if self.only_in:
            parts.append(f"{plural(len(self.only_in), 'document')} in one registry only")
        if self.differing:
            parts.append(f"{plural(len(self.differing), 'document')} differing between them")
        return ", ".join(parts)


def compare(documents: dict[str, dict[str, DocumentRecord]], counts: dict[str, int]) -> Comparison:
    """What disagrees between each registry and the chunk counts, and between registries."""
    result = Comparison(chunks=sum(counts.values()))
    for name, records in documents.items():
        for record in sorted(records.values(), key=lambda r: r.file_id):
            stored = counts.get(record.file_id, 0)
            if stored == 0 and record.num_chunks > 0:
                result.without_vectors.append((name, record))
            elif stored != record.num_chunks:
                result.miscounted.append((name, record, stored))
    known = set().union(*documents.values())
    result.orphans = {file_id: n for file_id, n in counts.items() if file_id not in known}
    if len(documents) == 2:
        (first, left), (second, right) = documents.items()
        result.only_in = [(first, i) for i in sorted(left.keys() - right.keys())]
        result.only_in += [(second, i) for i in sorted(right.keys() - left.keys())]
        for file_id in sorted(left.keys() & right.keys()):
            a, b = left[file_id], right[file_id]
            if a != b:
                fields = [
                    f.name
                    for f in dataclasses.fields(a)
                    if getattr(a, f.name) != getattr(b, f.name)
                ]
                result.differing.append((file_id, fields))
    return result
