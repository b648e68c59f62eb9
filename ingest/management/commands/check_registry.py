from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.text import plural
from ingest.exceptions import VectorStoreError
from ingest.maintenance.consistency import (
    OriginalsCheck,
    TitlesCheck,
    check_consistency,
    check_originals,
    check_titles,
)
from ingest.stores import get_vector_store
from registry.backends import get_backend
from registry.exceptions import RegistryError

# Findings of each kind listed unless -v 2: a registry never ingested would list them all.
LISTED = 20


class Command(BaseCommand):
    help = (
        "Compare the live registry (or, with --both, the database and the JSON registry) "
        "with the vector store: documents without vectors, vectors without a document, "
        "chunk counts that disagree. Exits 0 only when everything agrees. Also lists the "
        "documents without an original kept, and originals no document names (--fix "
        "removes those)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--both",
            action="store_true",
            help="Check the database and the JSON registry, and that they hold the same "
            "documents (before a cutover or a rollback)",
        )
        parser.add_argument(
            "--registry",
            type=Path,
            metavar="PATH",
            help="The JSON registry to check (default: REGISTRY_JSON_PATH, "
            "data/registry.json); with --both it must exist",
        )
        parser.add_argument(
            "--fix",
            action="store_true",
            help="Remove the vectors of documents that no checked registry holds (not "
            "those a service on another database wrote into a shared vector file), the "
            "originals no document names, and count the names of documents stored before "
            "names were counted in lexical ranking",
        )
        parser.add_argument(
            "--other-databases",
            action="store_true",
            help="With --fix, also remove the vectors that a service on another database "
            "wrote into this vector file (a development checkout sharing it, say)",
        )

    def handle(
        self,
        *args: object,
        both: bool,
        fix: bool,
        other_databases: bool,
        registry: Path | None,
        **options: Any,
    ) -> str:
        if other_databases and not fix:
            raise CommandError("--other-databases goes with --fix")
        try:
            store = get_vector_store()
            result = check_consistency(
                both=both, fix=fix, other_databases=other_databases, json_path=registry
            )
        except (RegistryError, VectorStoreError) as exc:
            raise CommandError(str(exc)) from None
        limit = None if options["verbosity"] >= 2 else LISTED
        for line in result.found.lines(vectors=store.short_label, limit=limit):
            self.stdout.write(line)
        if result.fixed is not None:
            chunks, documents = result.fixed
            self.stdout.write(
                f"fixed: removed {plural(chunks, 'chunk')} of "
                f"{plural(documents, 'document')} that no registry holds"
                + (" (other databases' included)" if other_databases else "")
            )
        live = result.documents.get(get_backend().name)
        if live is not None:
            self._originals(check_originals(live, fix=fix), limit=limit)
            self._titles(check_titles(live, fix=fix), limit=limit)
        comparison = result.remaining
        if comparison.problems():
            subject = "The registries" if both else "The registry"
            raise CommandError(f"{subject} and {store.label} disagree: {comparison.summary()}")
        held = ", ".join(
            f"{plural(len(records), 'document')} in the {name} registry"
            for name, records in result.documents.items()
        )
        return f"Everything agrees: {held}, {plural(comparison.chunks, 'chunk')} in {store.label}."

    def _titles(self, found: TitlesCheck, *, limit: int | None) -> None:
        """Informational: answers still come; the name only weighs in lexical ranking."""
        if found.fixed:
            self.stdout.write(
                f"fixed: counted the names of {plural(found.fixed, 'document')} in lexical ranking"
            )
        elif found.unnamed:
            self.stdout.write(
                f"{plural(len(found.unnamed), 'document')} whose name lexical ranking does "
                "not count yet (chunks stored before names were counted; --fix counts "
                "them, a re-ingest does too): " + _listed(found.unnamed, limit)
            )

    def _originals(self, found: OriginalsCheck, *, limit: int | None) -> None:
        """Informational: neither is a disagreement of the registry and the vectors."""
        if found.without:
            self.stdout.write(
                f"{plural(len(found.without), 'document')} without an original kept "
                "(imported from the old registry, which kept none; `reindex --reextract` "
                f"cannot read them again, GET /documents/{{fileId}}/file answers 404): "
                + _listed(found.without, limit)
            )
        if found.removed:
            self.stdout.write(f"fixed: removed {plural(found.removed, 'original')} left over")
        elif found.leftover:
            self.stdout.write(
                f"{plural(len(found.leftover), 'original')} left over that no document "
                "names (a removal that failed; --fix removes them): "
                + ", ".join(found.leftover[:limit] if limit else found.leftover)
            )


def _listed(file_ids: list[str], limit: int | None) -> str:
    """The ids, at most `limit` of them (None: all), saying how many more there are."""
    shown = file_ids[:limit] if limit else file_ids
    more = len(file_ids) - len(shown)
    return ", ".join(shown) + (f" and {more} more (-v 2 lists all)" if more else "")
