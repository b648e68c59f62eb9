"""manage.py export_registry: the documents table as a legacy registry file, for rollback."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import orjson
import pytest
from django.core.management import CommandError, call_command

from registry.backends import get_backend
from registry.backends.database import DatabaseRegistry
from registry.backends.json_registry import JsonFileRegistry
from registry.models import Document
from registry.records import DocumentRecord
from tests.support.commands import run_import
from tests.support.inspection import table_rows
from tests.support.paths import MESSY, ROOT, SAMPLE
from tests.support.processes import child_env, run_manage

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def make(n: int, **fields: object) -> DocumentRecord:
    return DocumentRecord(
        file_id=f"file-{n:03d}",
        filename=f"doc-{n}.txt",
        size_bytes=10 * n,
        workspace="eng" if n % 2 else "default",
        num_chunks=n,
        indexed=True,
        created_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n, seconds=5),
        **fields,
    )


def export(*args: str) -> str:
    return call_command("export_registry", *args, stdout=StringIO())


@pytest.fixture
def umask_022():
    """The umask a service account usually has (tests may run under a stricter one)."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.django_db
class TestExportedFilesAreReadableByTheService:
    """Run as an operator, the export must leave a file the service user can read."""

    def test_a_new_file_follows_the_umask(self, tmp_path: Path, umask_022):
        DatabaseRegistry().upsert(make(1))
        path = tmp_path / "registry.json"
        export(str(path))
        assert stat.S_IMODE(path.stat().st_mode) == 0o644

    def test_a_replaced_file_keeps_its_mode(self, tmp_path: Path, umask_022):
        DatabaseRegistry().upsert(make(1))
        path = tmp_path / "registry.json"
        path.write_bytes(b"[]")
        path.chmod(0o640)
        export(str(path))
        assert stat.S_IMODE(path.stat().st_mode) == 0o640


@pytest.mark.django_db
class TestExportRegistry:
    def test_it_writes_every_document_in_the_legacy_format(self, tmp_path: Path):
        registry = DatabaseRegistry()
        registry.upsert(make(1))
        registry.upsert(make(2, source="url", url="https://x.org/2", sha256="c" * 64))
        path = tmp_path / "registry.json"

        message = export(str(path))

        assert message == f"Exported 2 documents from the database to {path}."
        assert orjson.loads(path.read_bytes()) == [
            {
                "fileId": "file-001",
                "filename": "doc-1.txt",
                "sizeBytes": 10,
                "workspace": "eng",
                "numChunks": 1,
                "indexed": True,
                "createdAt": int((T0 + timedelta(minutes=1)).timestamp()),
                "updatedAt": int((T0 + timedelta(minutes=1, seconds=5)).timestamp()),
            },
            {
                "fileId": "file-002",
                "filename": "doc-2.txt",
                "sizeBytes": 20,
                "workspace": "default",
                "numChunks": 2,
                "indexed": True,
                "createdAt": int((T0 + timedelta(minutes=2)).timestamp()),
                "updatedAt": int((T0 + timedelta(minutes=2, seconds=5)).timestamp()),
                "source": "url",
                "url": "https://x.org/2",
                "sha256": "c" * 64,
            },
        ]

    def test_it_orders_oldest_first_ties_broken_by_file_id(self, tmp_path: Path):
        registry = DatabaseRegistry()
        for record in [
            make(3),
            replace(make(1), file_id="b"),
            make(2),
            replace(make(1), file_id="a"),
        ]:
            registry.upsert(record)
        path = tmp_path / "registry.json"
        export(str(path))
        assert [item["fileId"] for item in orjson.loads(path.read_bytes())] == [
            "a",
            "b",
            "file-002",
            "file-003",
        ]

    def test_exporting_the_imported_sample_gives_back_the_legacy_records(self, tmp_path: Path):
        run_import(str(SAMPLE))
        path = tmp_path / "registry.json"
        export(str(path))
        assert orjson.loads(path.read_bytes()) == orjson.loads(SAMPLE.read_bytes())

    def test_import_export_import_round_trips_the_messy_file_without_loss(self, tmp_path: Path):
        run_import(str(MESSY))
        imported = table_rows()
        first = tmp_path / "first.json"
        export(str(first))

        Document.objects.all().delete()
        out, error = run_import(str(first))
        assert error is None
        assert "12 created, 0 updated, 0 unchanged, 0 rejected" in out
        assert table_rows() == imported  # fractional and ISO timestamps included

        out, error = run_import(str(first))
        assert "0 created, 0 updated, 12 unchanged, 0 rejected" in out
        second = tmp_path / "second.json"
        export(str(second))
        assert second.read_bytes() == first.read_bytes()

    def test_an_empty_database_exports_an_empty_registry(self, tmp_path: Path):
        path = tmp_path / "registry.json"
        assert export(str(path)) == f"Exported 0 documents from the database to {path}."
        assert path.read_bytes() == b"[]"

    def test_the_default_file_is_the_one_a_rollback_serves(self, settings, tmp_path: Path):
        registry = DatabaseRegistry()
        for n in range(1, 6):
            registry.upsert(make(n))
        settings.REGISTRY_JSON_PATH = tmp_path / "data" / "registry.json"

        export()
        settings.USE_JSON_REGISTRY = True

        rolled_back = get_backend()
        assert rolled_back.name == "json"
        assert rolled_back.list(limit=100) == registry.list(limit=100)

    def test_a_running_json_registry_sees_the_new_file_at_once(self, tmp_path: Path):
        path = tmp_path / "registry.json"
        running = JsonFileRegistry(path)
        running.upsert(make(9))
        assert running.count() == 1
        DatabaseRegistry().upsert(make(1))
        DatabaseRegistry().upsert(make(2))

        export(str(path))

        assert [r.file_id for r in running.list()] == ["file-002", "file-001"]
        assert list(tmp_path.glob(".registry.json.*.tmp")) == []

    def test_it_waits_for_a_writer_holding_the_registry_lock(self, tmp_path: Path):
        path = tmp_path / "registry.json"
        DatabaseRegistry().upsert(make(1))
        # A JSON-backed service in the middle of a write: it holds the lock, then writes.
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys, time\n"
                "from pathlib import Path\n"
                "from common.fileio import atomic_write_bytes, locked\n"
                "path = Path(sys.argv[1])\n"
                "with locked(path):\n"
                "    print('locked', flush=True)\n"
                "    time.sleep(1)\n"
                "    atomic_write_bytes(path, b'[]')\n",
                str(path),
            ],
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert holder.stdout.readline().strip() == "locked"
            export(str(path))
        finally:
            holder.communicate(timeout=30)
        # The export went after the writer, so its file is the one left.
        assert [item["fileId"] for item in orjson.loads(path.read_bytes())] == ["file-001"]

    def test_a_target_it_cannot_write_is_an_error(self, tmp_path: Path):
        with pytest.raises(CommandError) as excinfo:
            export(str(tmp_path))
        assert str(excinfo.value) == (
            f"cannot write {tmp_path}: Is a directory; the previous file is untouched"
        )


def test_before_migrate_it_says_to_run_migrate(tmp_path: Path):
    database = tmp_path / "never-migrated.sqlite3"
    env = child_env(DATABASE_URL=f"sqlite:///{database}", DATA_DIR=str(tmp_path))
    result = run_manage("export_registry", str(tmp_path / "registry.json"), env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"CommandError: the database {database} has no documents table: "
        "run `python manage.py migrate` first"
    )
    assert not (tmp_path / "registry.json").exists()
