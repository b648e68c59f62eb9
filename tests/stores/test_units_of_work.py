"""The vector store's units of work (ingest/stores/base.py), on the live store: the json
file, or the pgvector table in the pgvector pass. Each keeps a document's row and its
chunks in step, whichever way the row's write ends."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest
from django.db import connection

from ingest.search.embeddings import get_embedder
from ingest.stores import get_vector_store
from ingest.stores.base import StoredChunks
from registry.backends import get_backend
from tests.support.client import ingest
from tests.support.inspection import stored_chunks

pytestmark = pytest.mark.django_db(transaction=True)  # rows commit, as in production


def chunks_for(file_id: str, texts: list[str]) -> StoredChunks:
    return StoredChunks(
        file_id, "default", list(range(len(texts))), texts, get_embedder().embed(texts)
    )


def test_chunks_are_not_kept_when_another_upload_s_row_won(api, data_dir: Path):
    first = ingest(api, "tides.txt", "Spring tides follow the new and the full moon.")
    before = stored_chunks(data_dir)
    backend = get_backend()
    winner = backend.get(first["fileId"])
    # A second upload of the same bytes under a new id, arriving a moment too late.
    late = dataclasses.replace(winner, file_id="late-copy")
    stored, kept = get_vector_store().write_document(
        chunks_for("late-copy", ["Spring tides follow the new and the full moon."]),
        lambda: backend.create(late),
    )
    assert (stored.file_id, kept) == (first["fileId"], False)
    assert stored_chunks(data_dir) == before
    assert backend.get_many(["late-copy"]) == {}


def test_a_row_that_cannot_be_written_leaves_the_chunks_as_they_were(api, data_dir: Path):
    document = ingest(api, "tides.txt", "Spring tides follow the new and the full moon.")
    before = stored_chunks(data_dir)

    def refused() -> tuple:
        raise RuntimeError("the registry refused the row")

    with pytest.raises(RuntimeError, match="refused"):
        get_vector_store().write_document(
            chunks_for(document["fileId"], ["Neap tides fall between them."]), refused
        )
    assert stored_chunks(data_dir) == before


def test_removing_documents_takes_their_rows_and_chunks_and_skips_unknown_ids(api, data_dir: Path):
    kept = ingest(api, "harbours.txt", "A harbour shelters ships from the open sea.")
    gone = ingest(api, "tides.txt", "Spring tides follow the new and the full moon.")
    removed = get_vector_store().remove_documents(
        [gone["fileId"], "never-there"], get_backend().delete_many
    )
    assert [d.file_id for d in removed.documents] == [gone["fileId"]]
    assert removed.chunks == gone["chunks"]
    assert {chunk["file_id"] for chunk in stored_chunks(data_dir)} == {kept["fileId"]}
    assert set(get_backend().get_many([kept["fileId"], gone["fileId"]])) == {kept["fileId"]}


def test_a_refused_write_never_undoes_a_write_that_came_between(api, data_dir: Path):
    """Two writes of one document at once (a worker given up on, and the one that took
    its job back): the first's row is refused after the second has written; the second's
    chunks stay, with its row."""
    document = ingest(api, "tides.txt", "Spring tides follow the new and the full moon.")
    file_id = document["fileId"]
    backend = get_backend()
    second_done = threading.Event()
    first_writing = threading.Event()
    errors: list[BaseException] = []

    def refused_after_the_second() -> tuple:
        first_writing.set()
        second_done.wait(timeout=2)  # the second writes now, or waits its turn
        raise RuntimeError("this write was fenced off")

    def first() -> None:
        try:
            get_vector_store().write_document(
                chunks_for(file_id, ["Stale text of a worker given up on."]),
                refused_after_the_second,
            )
        except RuntimeError:
            pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    def second() -> None:
        first_writing.wait(timeout=10)
        try:
            record = dataclasses.replace(backend.get(file_id), num_chunks=2)
            get_vector_store().write_document(
                chunks_for(file_id, ["Neap tides fall between them.", "Tides turn."]),
                lambda: (backend.upsert(record), True),
            )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            second_done.set()
            connection.close()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    texts = [chunk["text"] for chunk in stored_chunks(data_dir) if chunk["file_id"] == file_id]
    assert texts == ["Neap tides fall between them.", "Tides turn."]
    assert backend.get(file_id).num_chunks == 2
