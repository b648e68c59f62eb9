"""Do the registries and the vector store agree? What `check_registry` reports and fixes.

Findings of three kinds between a registry and the vectors (documents without vectors,
vectors of unknown documents, chunk counts that differ) and two between the registries
(a document in one only, a document whose fields differ).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.text import plural
from ingest.stores import get_vector_store
from ingest.stores.originals import discard, kept_names, original_name
from registry.backends import get_backend, registry_backends
from registry.backends.base import RegistryBackend
from registry.exceptions import RegistryError
from registry.records import DocumentRecord

PAGE = 10_000


@dataclass
class Comparison:
    # (registry, record) pairs; file_id → chunks for orphans; file_ids for the rest.
    without_vectors: list[tuple[str, DocumentRecord]] = field(default_factory=list)
    miscounted: list[tuple[str, DocumentRecord, int]] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)
    # Vectors of unknown documents that a service on another database wrote into the
    # same store file: file_id → (that database, chunks). --fix leaves them.
    elsewhere: dict[str, tuple[str, int]] = field(default_factory=dict)
    only_in: list[tuple[str, str]] = field(default_factory=list)
    differing: list[tuple[str, list[str]]] = field(default_factory=list)
    chunks: int = 0

    def problems(self) -> int:
        kinds = (
            self.without_vectors,
            self.miscounted,
            self.orphans,
            self.elsewhere,
            self.only_in,
            self.differing,
        )
        return sum(len(findings) for findings in kinds)

    def lines(self, *, vectors: str, limit: int | None) -> list[str]:
        """One line per finding; at most `limit` of each kind, then how many more."""
        kinds = [
            [
                f"{name}: document {record.file_id!r} ({record.filename}) has no vectors; the "
                f"registry says {plural(record.num_chunks, 'chunk')}: /ask cannot find it "
                "until its file is ingested again with this fileId, or it is deleted"
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
            [
                f"{vectors}: {plural(chunks, 'chunk')} of document {file_id!r}, written by "
                f"the service on another database ({database}); --fix leaves them"
                for file_id, (database, chunks) in sorted(self.elsewhere.items())
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
        if self.elsewhere:
            databases = ", ".join(sorted({database for database, _ in self.elsewhere.values()}))
            parts.append(
                f"vectors of {plural(len(self.elsewhere), 'document')} of another database "
                f"({databases}): settings on two databases share this vector file; give each "
                "its own VECTOR_JSON_PATH, or remove them with --fix --other-databases"
            )
        if self.only_in:
            parts.append(f"{plural(len(self.only_in), 'document')} in one registry only")
        if self.differing:
            parts.append(f"{plural(len(self.differing), 'document')} differing between them")
        return ", ".join(parts)


def sorted_by_id(findings: dict[tuple[str, int], Any]) -> list[Any]:
    return [findings[key] for key in sorted(findings)]


def compare(
    documents: dict[str, dict[str, DocumentRecord]],
    counts: dict[str, int],
    elsewhere: dict[str, str] | None = None,
) -> Comparison:
    """What disagrees between each registry and the chunk counts, and between registries.
    `elsewhere` (file_id → database) names documents a service on another database wrote
    into the store: unknown here, they are that database's rather than orphans."""
    result = Comparison(chunks=sum(counts.values()))
    # A document both registries hold, with the same finding in each, is one finding
    # (named by both): the vectors are one store's.
    missing: dict[tuple[str, int], tuple[list[str], DocumentRecord]] = {}
    wrong: dict[tuple[str, int], tuple[list[str], DocumentRecord, int]] = {}
    for name, records in documents.items():
        for record in records.values():
            stored = counts.get(record.file_id, 0)
            key = (record.file_id, record.num_chunks)
            if stored == 0 and record.num_chunks > 0:
                missing.setdefault(key, ([], record))[0].append(name)
            elif stored != record.num_chunks:
                wrong.setdefault(key, ([], record, stored))[0].append(name)
    result.without_vectors = [
        (" and ".join(names), record) for names, record in sorted_by_id(missing)
    ]
    result.miscounted = [
        (" and ".join(names), record, stored) for names, record, stored in sorted_by_id(wrong)
    ]
    known: set[str] = set().union(*documents.values())
    elsewhere = elsewhere or {}
    for file_id, n in counts.items():
        if file_id in known:
            continue
        if file_id in elsewhere:
            result.elsewhere[file_id] = (elsewhere[file_id], n)
        else:
            result.orphans[file_id] = n
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


@dataclass(frozen=True)
class Consistency:
    """The outcome of one check: what each registry holds, what disagrees, what --fix did."""

    documents: dict[str, dict[str, DocumentRecord]]
    found: Comparison
    # What still disagrees: after --fix, `found` less the orphans it removed.
    remaining: Comparison
    # (chunks, documents) whose vectors --fix removed (with other_databases, those of
    # other databases' documents too).
    fixed: tuple[int, int] | None = None


def every_record(backend: RegistryBackend) -> dict[str, DocumentRecord]:
    records: dict[str, DocumentRecord] = {}
    offset = 0
    while page := backend.list(limit=PAGE, offset=offset):
        records.update((record.file_id, record) for record in page)
        offset += PAGE
    return records


def check_consistency(
    *,
    both: bool = False,
    fix: bool = False,
    other_databases: bool = False,
    json_path: Path | None = None,
) -> Consistency:
    """Compare the live registry (with `both`, each registry) with the vector store; with
    `fix`, remove the vectors of documents that no checked registry holds, except those a
    service on another database wrote into a shared store file unless `other_databases`,
    then compare again. The JSON registry is the file at `json_path` (default REGISTRY_JSON_PATH);
    compared with the database (`both`) or named, it must exist. Raises RegistryError or
    VectorStoreError when a store cannot be read."""
    backends = registry_backends(json_path)
    live = get_backend().name
    registries = backends if both else {live: backends[live]}
    for registry in registries.values():
        if (both or json_path) and not registry.exists():
            raise RegistryError(
                f"{registry.label} does not exist: write it with `manage.py "
                "export_registry`, or name another with --registry"
            )
    documents = {name: every_record(backend) for name, backend in registries.items()}
    store = get_vector_store()
    elsewhere = store.written_elsewhere()
    found = compare(documents, store.chunk_counts(), elsewhere)
    doomed = [*found.orphans, *(found.elsewhere if other_databases else ())]
    if not (fix and doomed):
        return Consistency(documents, found, found)
    removed = store.remove_chunks(doomed)
    remaining = compare(documents, store.chunk_counts(), elsewhere)
    return Consistency(documents, found, remaining, fixed=(removed, len(doomed)))


@dataclass(frozen=True)
class DocumentCheck:
    """`check_registry` for one document: what its registries and the store say."""

    chunks: int  # the store's chunks of the document
    registries: dict[str, DocumentRecord | None]  # name → that registry's record
    problems: list[str]  # check_registry's lines for this document; empty when it agrees


def check_document(file_id: str) -> DocumentCheck:
    """Compare one document's row in the live registry (during a rollback, in both
    registries) with its chunks in the vector store, as `check_registry` does for all.
    Raises RegistryError or VectorStoreError when a store cannot be read."""
    live = get_backend()
    replaced = live.stands_in_for()
    registries = {b.name: b for b in (replaced, live) if b is not None}
    documents = {name: backend.get_many([file_id]) for name, backend in registries.items()}
    store = get_vector_store()
    elsewhere = {k: v for k, v in store.written_elsewhere().items() if k == file_id}
    found = compare(documents, store.chunk_counts([file_id]), elsewhere)
    return DocumentCheck(
        chunks=found.chunks,
        registries={name: records.get(file_id) for name, records in documents.items()},
        problems=found.lines(vectors=store.short_label, limit=None),
    )


@dataclass(frozen=True)
class OriginalsCheck:
    """Which documents have no original kept, and which kept originals no document names
    (a removal that failed after its row's change; --fix removes them)."""

    without: list[str]  # file ids: imported from the old registry, which kept none
    leftover: list[str]  # storage names, fileId/sha256
    removed: int = 0


def check_originals(records: dict[str, DocumentRecord], *, fix: bool = False) -> OriginalsCheck:
    """The originals against the registry's `records` (file_id → record); with `fix`,
    remove the leftovers."""
    kept = kept_names()
    named = {original_name(record) for record in records.values() if record.sha256}
    without = sorted(
        file_id
        for file_id, record in records.items()
        if record.sha256 not in kept.get(file_id, ()) and not record.awaiting_chunks
    )
    leftover = sorted(
        f"{file_id}/{sha256}"
        for file_id, hashes in kept.items()
        for sha256 in hashes
        if f"{file_id}/{sha256}" not in named
    )
    if fix and leftover:
        discard(leftover)
        return OriginalsCheck(without, leftover, removed=len(leftover))
    return OriginalsCheck(without, leftover)


@dataclass(frozen=True)
class TitlesCheck:
    """The documents whose chunks the lexical ranking does not know by the registry's name
    (stored before names were counted, issue 34); --fix stores their names."""

    unnamed: list[str]  # file ids
    fixed: int = 0


def check_titles(records: dict[str, DocumentRecord], *, fix: bool = False) -> TitlesCheck:
    """The store's document names against the registry's `records`; with `fix`, write
    each such document's chunks again with its name (their vectors as they are)."""
    store = get_vector_store()
    unnamed = sorted(
        file_id
        for file_id, title in store.titles().items()
        if file_id in records and title != records[file_id].filename
    )
    if not (fix and unnamed):
        return TitlesCheck(unnamed)
    named = [
        dataclasses.replace(document, title=records[document.file_id].filename)
        for document in store.documents(unnamed)
    ]
    store.replace(named)
    return TitlesCheck(unnamed, fixed=len(named))
