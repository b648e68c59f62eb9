"""The vector store file's format (vector_file.py): what a parsed file holds in memory
(`Snapshot`), the bytes on disk, and the journal of changes written beside it since
(`Change`).

One JSON object: `{"format": "docservice-vectors/3", "embedder", "dim", "analyzer",
"vocabulary": [stem, …], "chunks": [{"chunk_id", "file_id", "workspace", "chunk_index",
"context", "text", "terms", "pages"?}], "vectors", "term_ids", "term_counts",
"databases", "titles"}`. The vectors and term arrays are base64 of little-endian arrays,
row-aligned with `chunks`: float32 vectors (chunks by dim), then each chunk's `terms`
distinct term ids (uint32, into `vocabulary`) and their counts (uint16). One block
decodes an order of magnitude faster than a string per chunk, and the BM25 index is
rebuilt from the counts, never from the text. A chunk of a paged document (PDF, slides,
scans) has `pages`, its first and last page. `databases` names, for each database, the
documents whose chunks a service on it wrote; `titles` each document's name, a field of
its chunks' term counts (ingest/search/lexical.py). Term counts of an earlier analyzer
are counted again when the file is read, and stored by the next write. Version 2 files
(no pages) and version 1 files (a base64 vector per chunk, no term counts) are read, and
written back as version 3.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import orjson

from ingest.search.lexical import BM25, Vocabulary, analyzer, field_counts
from ingest.stores.base import StoredChunks
from registry.records import WorkspaceFilter, workspace_names

FORMAT = "docservice-vectors/3"
FORMAT_V2 = "docservice-vectors/2"  # the same, without page spans: read as it is
FORMAT_V1 = "docservice-vectors/1"
_FLOAT = np.dtype("<f4")
_ID = np.dtype("<u4")
_COUNT = np.dtype("<u2")


@dataclass
class Snapshot:
    """The parsed file. Rows of `matrix` and of the term arrays follow `meta`."""

    embedder: str
    dim: int
    meta: list[dict[str, Any]]
    matrix: np.ndarray
    vocabulary: Vocabulary
    term_ids: np.ndarray
    term_counts: np.ndarray
    term_lengths: np.ndarray
    # file_id → the database whose service wrote the document's chunks (database_label());
    # documents written before the file recorded it have none.
    owners: dict[str, str] = field(default_factory=dict)
    # file_id → the document's name, counted as a field of its chunks' terms.
    titles: dict[str, str] = field(default_factory=dict)
    # Names this file among the ones written at this path: a journal of changes is
    # replayed over the file of its own generation only (see `Change`).
    generation: str = ""
    # Its term counts were made again on reading (the file's are another analyzer's):
    # the next write rewrites the file, rather than each reader counting them again.
    recounted: bool = False
    _masks: dict[frozenset[str], np.ndarray] = field(default_factory=dict)

    @classmethod
    def empty(cls, embedder: str, dim: int) -> Snapshot:
        return cls(
            embedder,
            dim,
            [],
            np.zeros((0, dim), dtype=np.float32),
            Vocabulary(),
            np.zeros(0, dtype=np.uint32),
            np.zeros(0, dtype=np.uint16),
            np.zeros(0, dtype=np.int64),
        )

    @cached_property
    def bm25(self) -> BM25:
        return BM25(self.term_ids, self.term_counts, self.term_lengths, len(self.vocabulary))

    def workspace_mask(self, workspace: WorkspaceFilter) -> np.ndarray | None:
        """The rows of the workspace or workspaces (None: every row, no mask)."""
        names = workspace_names(workspace)
        if names is None:
            return None
        mask = self._masks.get(names)
        if mask is None:
            mask = np.fromiter((m["workspace"] in names for m in self.meta), bool, len(self.meta))
            self._masks[names] = mask
        return mask

    def keeping(self, keep: np.ndarray) -> Snapshot:
        """The snapshot with only the rows where `keep` is true, and a vocabulary of only
        the terms those rows use (ids renumbered, the order kept)."""
        rows = np.repeat(keep, self.term_lengths)
        term_ids = self.term_ids[rows]
        vocabulary = self.vocabulary
        used = np.bincount(term_ids, minlength=len(vocabulary)) > 0
        if not used.all():
            renumber = np.cumsum(used, dtype=np.int64) - 1
            term_ids = renumber[term_ids].astype(np.uint32)
            vocabulary = Vocabulary([t for t, u in zip(vocabulary.terms, used, strict=True) if u])
        return Snapshot(
            self.embedder,
            self.dim,
            meta := [meta for meta, kept in zip(self.meta, keep, strict=True) if kept],
            self.matrix[keep],
            vocabulary,
            term_ids,
            self.term_counts[rows],
            self.term_lengths[keep],
            owners_of(self.owners, meta),
            owners_of(self.titles, meta),
            self.generation,
        )


def parse_snapshot(doc: Any) -> Snapshot:
    """The decoded JSON of a store file, parsed; ValueError, KeyError or TypeError when it
    is not one."""
    if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, FORMAT_V2, FORMAT_V1):
        raise ValueError(f"not a {FORMAT} file")
    if doc["format"] == FORMAT_V1:
        return _parse_v1(doc)
    embedder, dim, chunks = doc["embedder"], int(doc["dim"]), doc["chunks"]
    lengths = np.fromiter((c.pop("terms") for c in chunks), np.int64, len(chunks))
    matrix = _decode(doc["vectors"], _FLOAT).reshape(len(chunks), dim)
    term_ids = _decode(doc["term_ids"], _ID)
    term_counts = _decode(doc["term_counts"], _COUNT)
    if not len(term_ids) == len(term_counts) == int(lengths.sum()):
        raise ValueError("term counts do not add up")
    owners = {
        file_id: str(database)
        for database, file_ids in (doc.get("databases") or {}).items()
        for file_id in file_ids
    }
    titles = {str(file_id): str(name) for file_id, name in (doc.get("titles") or {}).items()}
    generation = str(doc.get("generation") or "")
    if doc.get("analyzer") != analyzer():
        again = counted_again(embedder, dim, chunks, matrix, owners, titles)
        again.generation, again.recounted = generation, True
        return again
    return Snapshot(
        embedder,
        dim,
        chunks,
        matrix,
        Vocabulary(doc["vocabulary"]),
        term_ids,
        term_counts,
        lengths,
        owners,
        titles,
        generation,
    )


def dump_snapshot(snapshot: Snapshot) -> bytes:
    """The file's bytes for a snapshot, in the current format, under its generation."""
    return orjson.dumps(
        {
            "format": FORMAT,
            "embedder": snapshot.embedder,
            "dim": snapshot.dim,
            "analyzer": analyzer(),
            "vocabulary": snapshot.vocabulary.terms,
            "chunks": [
                {**meta, "terms": int(length)}
                for meta, length in zip(snapshot.meta, snapshot.term_lengths, strict=True)
            ],
            "vectors": _encode(snapshot.matrix, _FLOAT),
            "term_ids": _encode(snapshot.term_ids, _ID),
            "term_counts": _encode(snapshot.term_counts, _COUNT),
            "databases": _by_owner(snapshot.owners),
            "titles": snapshot.titles,
            "generation": snapshot.generation,  # last: see dump_new_generation
        }
    )


def dump_new_generation(snapshot: Snapshot, *, after: str) -> bytes:
    """The file's bytes, its generation set to a digest of the rest and of `after` (what
    it replaces: the file's generation and its journal's length). A journal written over
    the file it replaces can then never be replayed over it, even when the content is
    the same; and a file written where none was is always the same generation for the
    same content (an export is repeatable to the bit)."""
    snapshot.generation = ""
    unnamed = dump_snapshot(snapshot)
    tail = b',"generation":""}'
    if not unnamed.endswith(tail):
        raise AssertionError("the generation is not the file's last field")
    digest = hashlib.blake2b(unnamed, digest_size=8)
    digest.update(after.encode())
    snapshot.generation = digest.hexdigest()
    return unnamed[: -len(tail)] + b',"generation":"' + snapshot.generation.encode() + b'"}'


@dataclass(frozen=True)
class Change:
    """One write to the store: the documents it removes, then the chunks it adds (a
    replaced document is in both), with their vectors, their term counts, their
    documents' names and the database whose service wrote them.

    Changes are appended to a journal beside the file (`<file>.journal`, JSON lines)
    instead of rewriting the whole file for each document, which made a write cost the
    size of the store: the file is rewritten, with every change in it, once the journal
    is half its size (vector_file.py). The journal's first line names the file's
    generation, and a journal of another generation (left over from before a rewrite)
    is ignored. A line is complete when it ends with a newline: one cut short by a
    crash is never read, and the next write cuts it off."""

    removed: list[str]
    meta: list[dict[str, Any]]
    matrix: np.ndarray
    counted: list[dict[str, int]]
    titles: dict[str, str]
    owner: str


JOURNAL = "docservice-vectors-journal/1"


def dump_journal_header(generation: str) -> bytes:
    line = {"format": JOURNAL, "generation": generation, "analyzer": analyzer()}
    return orjson.dumps(line) + b"\n"


def parse_journal_header(line: bytes) -> tuple[str, str]:
    """The generation a journal belongs to, and the analyzer its term counts are of."""
    header = orjson.loads(line)
    if not isinstance(header, dict) or header.get("format") != JOURNAL:
        raise ValueError(f"not a {JOURNAL} journal")
    return str(header["generation"]), str(header.get("analyzer"))


def dump_change(change: Change) -> bytes:
    entry = {
        "removed": change.removed,
        "chunks": change.meta,
        "vectors": _encode(change.matrix, _FLOAT),
        "terms": change.counted,
        "titles": change.titles,
        "owner": change.owner,
    }
    return orjson.dumps(entry) + b"\n"


def parse_change(line: bytes, dim: int, *, recount: bool) -> Change:
    """A journal line; with `recount`, the chunks' terms counted again (the journal was
    written by another analyzer)."""
    entry = orjson.loads(line)
    meta = entry["chunks"]
    titles = {str(file_id): str(name) for file_id, name in entry["titles"].items()}
    counted = (
        [field_counts(m["text"], m["context"], titles.get(m["file_id"], "")) for m in meta]
        if recount
        else entry["terms"]
    )
    if len(counted) != len(meta):
        raise ValueError("term counts do not add up")
    matrix = _decode(entry["vectors"], _FLOAT).reshape(len(meta), dim)
    return Change(
        [str(file_id) for file_id in entry["removed"]],
        meta,
        matrix,
        counted,
        titles,
        str(entry["owner"]),
    )


def apply_changes(base: Snapshot, changes: list[Change]) -> Snapshot:
    """The snapshot after these changes, in their order: the base's rows and each
    change's chunks that no later change removes, in one pass over the base."""
    removed: set[str] = set()
    kept: list[tuple[Change, list[bool]]] = []
    for change in reversed(changes):
        kept.append((change, [m["file_id"] not in removed for m in change.meta]))
        removed.update(change.removed)
    if removed:
        rows = np.fromiter((m["file_id"] not in removed for m in base.meta), bool, len(base.meta))
        if not rows.all():  # a new document removes nothing: no copy of the base
            base = base.keeping(rows)
    vocabulary = Vocabulary(base.vocabulary.terms)  # the base's stays as it was
    meta = list(base.meta)
    matrices, ids, counts = [base.matrix], [base.term_ids], [base.term_counts]
    lengths = [base.term_lengths]
    owners, titles = dict(base.owners), dict(base.titles)
    for change, keep in reversed(kept):
        for row, (entry, counted) in enumerate(zip(change.meta, change.counted, strict=True)):
            if not keep[row]:
                continue
            meta.append(entry)
            chunk_ids, chunk_counts = vocabulary.ids_and_counts(counted)
            ids.append(chunk_ids)
            counts.append(chunk_counts)
            lengths.append(np.array([len(chunk_ids)], dtype=np.int64))
            owners[entry["file_id"]] = change.owner
        matrices.append(change.matrix[np.array(keep, dtype=bool)])
        titles.update(change.titles)
    return Snapshot(
        base.embedder,
        base.dim,
        meta,
        np.vstack(matrices).astype(np.float32, copy=False),
        vocabulary,
        np.concatenate(ids).astype(np.uint32, copy=False),
        np.concatenate(counts).astype(np.uint16, copy=False),
        np.concatenate(lengths),
        owners_of(owners, meta),
        owners_of(titles, meta),
        base.generation,
    )


def _by_owner(owners: dict[str, str]) -> dict[str, list[str]]:
    """{database: [file_id, …]}: how the file records `owners`, each database once."""
    grouped: dict[str, list[str]] = {}
    for file_id, owner in sorted(owners.items()):
        grouped.setdefault(owner, []).append(file_id)
    return grouped


def owners_of(owners: dict[str, str], meta: list[dict[str, Any]]) -> dict[str, str]:
    """The owners of the documents that still have chunks in `meta`."""
    kept = {m["file_id"] for m in meta}
    return {file_id: owner for file_id, owner in owners.items() if file_id in kept}


def chunk_entries(document: StoredChunks) -> list[dict[str, Any]]:
    """The metadata the store keeps for each of a document's chunks, vector aside; a
    chunk of a paged document has its `pages`, [first, last]."""
    entries = []
    for position, (index, text) in enumerate(zip(document.indexes, document.texts, strict=True)):
        entry = {
            "chunk_id": f"{document.file_id}:{index}",
            "file_id": document.file_id,
            "workspace": document.workspace,
            "chunk_index": index,
            "context": document.context(position),
            "text": text,
        }
        if pages := document.page_span(position):
            entry["pages"] = list(pages)
        entries.append(entry)
    return entries


def _encode(array: np.ndarray, dtype: np.dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype=dtype).tobytes()).decode("ascii")


def _decode(encoded: str, dtype: np.dtype) -> np.ndarray:
    # Read-only views on the decoded bytes: the store never changes an array in place.
    return np.frombuffer(base64.b64decode(encoded, validate=True), dtype=dtype)


def _parse_v1(doc: dict[str, Any]) -> Snapshot:
    """A version 1 store: a base64 vector per chunk and no term counts, which are counted
    now (once: the next write stores them)."""
    embedder, dim, chunks = doc["embedder"], int(doc["dim"]), doc["chunks"]
    raw = b"".join(base64.b64decode(c.pop("vector"), validate=True) for c in chunks)
    if len(raw) != len(chunks) * dim * 4:
        raise ValueError(f"vectors do not all have {dim} dimensions")
    matrix = np.frombuffer(raw, dtype=_FLOAT).reshape(len(chunks), dim)
    for chunk in chunks:
        chunk.setdefault("context", "")
    return counted_again(embedder, dim, chunks, matrix, {}, {})


def counted_again(
    embedder: str,
    dim: int,
    chunks: list[dict[str, Any]],
    matrix: np.ndarray,
    owners: dict[str, str],
    titles: dict[str, str],
) -> Snapshot:
    """A snapshot whose term counts are counted now, by this analyzer, from each chunk's
    text, headings and document name."""
    vocabulary = Vocabulary()
    ids, counts, lengths = [], [], []
    for chunk in chunks:
        counted = field_counts(chunk["text"], chunk["context"], titles.get(chunk["file_id"], ""))
        chunk_ids, chunk_counts = vocabulary.ids_and_counts(counted)
        ids.append(chunk_ids)
        counts.append(chunk_counts)
        lengths.append(len(chunk_ids))
    return Snapshot(
        embedder,
        dim,
        chunks,
        matrix,
        vocabulary,
        np.concatenate(ids) if ids else np.zeros(0, dtype=np.uint32),
        np.concatenate(counts) if counts else np.zeros(0, dtype=np.uint16),
        np.array(lengths, dtype=np.int64),
        owners,
        titles,
    )
