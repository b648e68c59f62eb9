"""Every registry operation, on the database and the JSON file, with identical results."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection

from registry.backends import get_backend
from registry.backends.base import RegistryBackend
from registry.backends.database import DatabaseRegistry
from registry.backends.json_registry import JsonFileRegistry
from registry.exceptions import DocumentNotFound, FileIdTaken, RegistryUnavailable
from registry.models import Document
from registry.records import DocumentRecord
from tests.support.paths import SAMPLE

T0 = datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def make(n: int, workspace: str = "default", **fields) -> DocumentRecord:
    return DocumentRecord(
        file_id=f"00000000-0000-0000-0000-{n:012d}",
        filename=f"doc-{n}.txt",
        size_bytes=1000 + n,
        workspace=workspace,
        num_chunks=n % 7,
        indexed=True,
        created_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n, seconds=30),
        **fields,
    )


class TestOperations:
    def test_upsert_creates_and_get_returns_every_field(self, backend: RegistryBackend):
        record = make(
            1, sha256="ab" * 32, content_type="text/plain", source="url", url="https://x.org/a"
        )
        assert backend.upsert(record) == record
        assert backend.get(record.file_id) == record

    def test_upsert_replaces_an_existing_document(self, backend: RegistryBackend):
        backend.upsert(make(1))
        changed = replace(
            make(1), filename="renamed.txt", num_chunks=42, updated_at=T0 + timedelta(days=1)
        )
        backend.upsert(changed)
        assert backend.get(changed.file_id) == changed
        assert backend.count() == 1

    def test_get_unknown_raises_not_found(self, backend: RegistryBackend):
        with pytest.raises(DocumentNotFound):
            backend.get("no-such-id")

    def test_list_is_newest_first_and_paginated(self, backend: RegistryBackend):
        for n in [3, 1, 5, 2, 4]:
            backend.upsert(make(n))
        ids = [r.file_id for r in backend.list(limit=10)]
        assert ids == [make(n).file_id for n in [5, 4, 3, 2, 1]]
        page = backend.list(limit=2, offset=2)
        assert [r.file_id for r in page] == [make(3).file_id, make(2).file_id]
        assert backend.list(limit=2, offset=10) == []

    def test_list_ties_on_created_at_break_by_file_id(self, backend: RegistryBackend):
        a = replace(make(1), file_id="a")
        b = replace(make(1), file_id="b")
        backend.upsert(a)
        backend.upsert(b)
        assert [r.file_id for r in backend.list()] == ["b", "a"]

    def test_list_and_count_filter_by_workspace(self, backend: RegistryBackend):
        backend.upsert(make(1, "eng"))
        backend.upsert(make(2, "legal"))
        backend.upsert(make(3, "eng"))
        assert [r.file_id for r in backend.list(workspace="eng")] == [
            make(3).file_id,
            make(1).file_id,
        ]
        assert backend.count(workspace="eng") == 2
        assert backend.count(workspace="nobody") == 0
        assert backend.count() == 3

    def test_get_many_reads_the_documents_that_exist(self, backend: RegistryBackend):
        for n in (1, 2, 3):
            backend.upsert(make(n))
        wanted = [make(3).file_id, "missing", make(1).file_id]
        assert backend.get_many(wanted) == {make(1).file_id: make(1), make(3).file_id: make(3)}
        assert backend.get_many([]) == {}

    def test_delete_many_removes_and_reports_after_it_is_durable(self, backend: RegistryBackend):
        for n in (1, 2, 3):
            backend.upsert(make(n))
        seen: list[list[DocumentRecord]] = []
        removed = backend.delete_many(
            [make(3).file_id, "missing", make(1).file_id], on_deleted=seen.append
        )
        assert removed == [make(1), make(3)]
        assert seen == [[make(1), make(3)]]
        assert [r.file_id for r in backend.list()] == [make(2).file_id]
        with pytest.raises(DocumentNotFound):
            backend.get(make(1).file_id)

    def test_delete_many_of_unknown_ids_removes_and_calls_nothing(self, backend: RegistryBackend):
        backend.upsert(make(1))
        seen: list[list[DocumentRecord]] = []
        assert backend.delete_many(["missing"], on_deleted=seen.append) == []
        assert seen == []
        assert backend.count() == 1

    def test_create_never_replaces_a_document_made_meanwhile_under_its_id(
        self, backend: RegistryBackend
    ):
        """An upload to a new client-chosen id is checked before it is indexed; a document
        made under that id meanwhile (another workspace's, say) is kept, not overwritten."""
        backend.upsert(make(1, "hr", sha256="a" * 64))
        newcomer = replace(make(1, "eng", sha256="b" * 64), filename="other.txt")
        with pytest.raises(FileIdTaken, match="cannot be used: choose another"):
            backend.create(newcomer)
        assert backend.get(make(1).file_id) == make(1, "hr", sha256="a" * 64)
        assert backend.count() == 1

    def test_find_by_sha256_is_scoped_to_the_workspace(self, backend: RegistryBackend):
        backend.upsert(make(1, "eng", sha256="f" * 64))
        assert backend.find_by_sha256(workspace="eng", sha256="f" * 64) == make(
            1, "eng", sha256="f" * 64
        )
        assert backend.find_by_sha256(workspace="legal", sha256="f" * 64) is None

    def test_async_twins_give_the_same_answers(self, backend: RegistryBackend):
        backend.upsert(make(1))
        backend.upsert(make(2, "eng"))

        async def scenario():
            try:
                return (
                    await backend.aget(make(1).file_id),
                    await backend.aget_many([make(2).file_id]),
                    [r.file_id for r in await backend.alist()],
                    await backend.acount(workspace="eng"),
                    await backend.adelete_many([make(2).file_id]),
                )
            finally:
                # As Django does at the end of a request: give the connection back.
                await sync_to_async(close_connection)()

        got, many, listed, eng, deleted = asyncio.run(scenario())
        assert got == make(1)
        assert many == {make(2).file_id: make(2, "eng")}
        assert listed == [make(2).file_id, make(1).file_id]
        assert (eng, deleted) == (1, [make(2, "eng")])


class TestCheck:
    def test_a_readable_json_registry_passes_and_a_damaged_one_fails(self, tmp_path: Path):
        path = tmp_path / "registry.json"
        registry = JsonFileRegistry(path)
        registry.check()  # no file yet: an empty registry
        registry.upsert(make(1))
        registry.check()
        path.write_bytes(b'[{"fileId": ')
        with pytest.raises(RegistryUnavailable, match="is not valid JSON"):
            registry.check()

    def test_a_json_registry_in_a_missing_directory_fails(self, tmp_path: Path):
        with pytest.raises(RegistryUnavailable, match="does not exist"):
            JsonFileRegistry(tmp_path / "gone" / "registry.json").check()

    @pytest.mark.django_db(transaction=True)
    def test_the_database_registry_fails_without_its_table(self):
        registry = DatabaseRegistry()
        registry.check()
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE documents RENAME TO documents_away")
        try:
            with pytest.raises(RegistryUnavailable, match="database unavailable"):
                registry.check()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE documents_away RENAME TO documents")


def close_connection() -> None:
    connection.close()


def transcript(backend: RegistryBackend) -> list[object]:
    out: list[object] = []
    for n in range(12):
        out.append(backend.upsert(make(n, ["default", "eng", "legal"][n % 3], sha256=f"{n:064x}")))
    out.append(backend.upsert(replace(make(4, "eng"), filename="v2.txt")))
    out.append(backend.list(limit=5))
    out.append(backend.list(workspace="eng", limit=3, offset=1))
    out.append(backend.count())
    out.append(backend.count(workspace="legal"))
    out.append(backend.delete_many([make(7).file_id]))
    out.append(backend.find_by_sha256(workspace="default", sha256=f"{9:064x}"))
    out.append(backend.list(limit=100))
    return out


@pytest.mark.django_db
def test_both_backends_give_identical_results(tmp_path: Path):
    assert transcript(DatabaseRegistry()) == transcript(JsonFileRegistry(tmp_path / "r.json"))


def test_the_switch_picks_the_json_file(json_registry_path: Path):
    backend = get_backend()
    assert backend.name == "json"
    backend.upsert(make(1))
    written = orjson.loads(json_registry_path.read_bytes())
    assert written == [
        {
            "fileId": make(1).file_id,
            "filename": "doc-1.txt",
            "sizeBytes": 1001,
            "workspace": "default",
            "numChunks": 1,
            "indexed": True,
            "createdAt": 1700000060,
            "updatedAt": 1700000090,
        }
    ]


@pytest.mark.django_db
def test_the_default_is_the_documents_table():
    assert settings.USE_JSON_REGISTRY is False
    backend = get_backend()
    assert backend.name == "database"
    backend.upsert(make(1))
    assert Document.objects.get(file_id=make(1).file_id).filename == "doc-1.txt"
    assert Document._meta.db_table == "documents"


def test_json_backend_reads_the_legacy_sample(tmp_path: Path):
    sample = SAMPLE  # ../shared/legacy's
    target = tmp_path / "registry.json"
    target.write_bytes(sample.read_bytes())
    backend = JsonFileRegistry(target)
    legacy = orjson.loads(sample.read_bytes())
    assert backend.count() == len(legacy)
    first = backend.get(legacy[0]["fileId"])
    assert first.filename == legacy[0]["filename"]
    assert first.created_at.timestamp() == legacy[0]["createdAt"]
    # A write keeps the other records exactly as the legacy service wrote them.
    backend.upsert(make(99))
    rewritten = orjson.loads(target.read_bytes())
    assert rewritten[: len(legacy)] == legacy
