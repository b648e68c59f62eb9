"""The store file's journal (ingest/stores/vector_file_format.py, `Change`): a write
appends what it changes beside the file instead of rewriting the whole store, every
reader sees the file and its journal as one store, and the journal is folded into the
file once it has grown to half the file's size."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from ingest.stores import get_vector_store
from ingest.stores.base import StoredChunks
from ingest.stores.vector_file import JsonFileStore
from tests.support.client import ask, ingest
from tests.support.inspection import file_chunks

pytestmark = [pytest.mark.json_store_only, pytest.mark.django_db(transaction=True)]

NOTES = {
    "tides.txt": "Spring tides follow the new and the full moon.",
    "harbour.txt": "The harbour master opens the lock gates at dawn.",
    "ferry.txt": "The ferry to the island leaves every hour in summer.",
}


def another_process(data_dir: Path) -> JsonFileStore:
    """The store as a process that has not read it yet finds it."""
    store = get_vector_store()
    return JsonFileStore(data_dir / "vectors.json", embedder=store.embedder, dim=store.dim)


def documents_of(store: JsonFileStore) -> dict[str, list[str]]:
    return {d.file_id: d.texts for d in store.documents()}


def journal_lines(data_dir: Path) -> list[dict]:
    return [
        orjson.loads(line) for line in (data_dir / "vectors.json.journal").read_bytes().splitlines()
    ]


def test_writes_after_the_first_are_appended_and_every_reader_sees_them(api, data_dir):
    ids = {name: ingest(api, name, text)["fileId"] for name, text in NOTES.items()}
    in_file = {
        c["file_id"] for c in orjson.loads((data_dir / "vectors.json").read_bytes())["chunks"]
    }
    assert in_file == {ids["tides.txt"]}  # the first write made the file; the others appended
    header, *changes = journal_lines(data_dir)
    assert (
        header["generation"] == orjson.loads((data_dir / "vectors.json").read_bytes())["generation"]
    )
    assert [change["removed"] for change in changes] == [[ids["harbour.txt"]], [ids["ferry.txt"]]]
    fresh = another_process(data_dir)
    assert documents_of(fresh) == documents_of(get_vector_store())
    assert set(documents_of(fresh)) == set(ids.values())
    sources = ask(api, "When does the ferry leave?")["sources"]
    assert sources[0]["filename"] == "ferry.txt"

    removed = api.delete(f"/documents/{ids['harbour.txt']}")
    assert removed.status_code == 200, removed.json()
    assert set(documents_of(another_process(data_dir))) == {ids["tides.txt"], ids["ferry.txt"]}
    assert journal_lines(data_dir)[-1]["removed"] == [ids["harbour.txt"]]


def test_the_journal_is_folded_into_the_file_once_it_is_half_the_file(data_dir):
    store = get_vector_store()
    rng = np.random.default_rng(7)

    def document(number: int, chunks: int) -> StoredChunks:
        texts = [f"Note {number}.{n}: the crate left dock {n % 13} on time." for n in range(chunks)]
        vectors = rng.standard_normal((chunks, store.dim)).astype(np.float32)
        return StoredChunks(f"doc-{number}", "default", list(range(chunks)), texts, vectors)

    written = {}
    for number in range(40):
        stored = document(number, 60)
        store.replace([stored])
        written[stored.file_id] = stored.texts
        file_size = (data_dir / "vectors.json").stat().st_size
        journal = data_dir / "vectors.json.journal"
        journal_size = journal.stat().st_size if journal.exists() else 0
        assert journal_size <= max(1 << 20, file_size // 2), (number, journal_size, file_size)
    assert documents_of(another_process(data_dir)) == written
    assert len(file_chunks(data_dir / "vectors.json")) == 40 * 60
    assert len(orjson.loads((data_dir / "vectors.json").read_bytes())["chunks"]) > 20 * 60


def test_a_line_cut_short_by_a_crash_is_not_read_and_the_next_write_cuts_it_off(api, data_dir):
    first = ingest(api, "tides.txt", NOTES["tides.txt"])["fileId"]
    second = ingest(api, "harbour.txt", NOTES["harbour.txt"])["fileId"]
    journal = data_dir / "vectors.json.journal"
    with journal.open("ab") as handle:
        handle.write(b'{"removed": ["' + first.encode() + b'"], "chunks": [')  # no newline
    assert set(documents_of(another_process(data_dir))) == {first, second}
    third = ingest(api, "ferry.txt", NOTES["ferry.txt"])["fileId"]
    assert set(documents_of(another_process(data_dir))) == {first, second, third}
    assert journal.read_bytes().endswith(b"\n")
    assert [line["removed"] for line in journal_lines(data_dir)[1:]] == [[second], [third]]


def test_a_journal_left_from_before_a_rewrite_is_never_replayed(api, data_dir):
    first = ingest(api, "tides.txt", NOTES["tides.txt"])["fileId"]
    second = ingest(api, "harbour.txt", NOTES["harbour.txt"])["fileId"]
    journal = data_dir / "vectors.json.journal"
    left_over = journal.read_bytes()
    store = get_vector_store()
    store.write_all([d for d in store.documents() if d.file_id == first])  # a rewrite
    assert not journal.exists()
    journal.write_bytes(left_over)  # as if its removal had not reached the disk
    assert set(documents_of(another_process(data_dir))) == {first}
    assert file_chunks(data_dir / "vectors.json")[0]["file_id"] == first
    third = ingest(api, "ferry.txt", NOTES["ferry.txt"])["fileId"]
    assert set(documents_of(another_process(data_dir))) == {first, third}
    assert second not in {c["file_id"] for c in file_chunks(data_dir / "vectors.json")}
