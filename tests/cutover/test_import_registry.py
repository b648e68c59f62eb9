"""manage.py import_registry: a legacy registry file into the documents table."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from django.db import connection

from registry.backends.database import DatabaseRegistry
from registry.models import Document
from registry.records import DocumentRecord
from tests.support.commands import run_import, run_on_a_terminal
from tests.support.inspection import table_rows
from tests.support.paths import MESSY, SAMPLE
from tests.support.processes import child_env, run_manage

DUPLICATED = "dddddddd-0000-4000-8000-00000000000d"


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def legacy(n: int, **fields: object) -> dict[str, object]:
    record: dict[str, object] = {
        "fileId": f"doc-{n:05d}",
        "filename": f"doc-{n}.pdf",
        "sizeBytes": 1000 + n,
        "workspace": "default",
        "numChunks": n % 9,
        "indexed": True,
        "createdAt": 1_700_000_000 + n,
        "updatedAt": 1_700_000_000 + n,
    }
    record.update(fields)
    return record


def write_registry(path: Path, items: list[object]) -> Path:
    path.write_bytes(orjson.dumps(items))
    return path


class WriteLog:
    """Rows the database inserted or updated, as its own triggers saw them."""

    def __init__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE test_writes (file_id varchar(64), op varchar(6))")
            if connection.vendor == "postgresql":
                cursor.execute(
                    "CREATE FUNCTION test_log_write() RETURNS trigger LANGUAGE plpgsql AS $$ "
                    "BEGIN INSERT INTO test_writes VALUES (NEW.file_id, lower(TG_OP)); "
                    "RETURN NEW; END $$"
                )
                cursor.execute(
                    "CREATE TRIGGER test_log_write AFTER INSERT OR UPDATE ON documents "
                    "FOR EACH ROW EXECUTE FUNCTION test_log_write()"
                )
            else:
                cursor.execute(
                    "CREATE TRIGGER test_log_insert AFTER INSERT ON documents "
                    "BEGIN INSERT INTO test_writes VALUES (NEW.file_id, 'insert'); END"
                )
                cursor.execute(
                    "CREATE TRIGGER test_log_update AFTER UPDATE ON documents "
                    "BEGIN INSERT INTO test_writes VALUES (NEW.file_id, 'update'); END"
                )

    def entries(self) -> list[tuple[str, str]]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT file_id, op FROM test_writes ORDER BY file_id")
            return [tuple(row) for row in cursor.fetchall()]


def refuse_inserting(file_id: str) -> None:
    """The database refuses to insert this document (a trigger), with its own error."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN IF NEW.file_id = '{file_id}' THEN "
                "RAISE EXCEPTION 'refused by the test'; END IF; RETURN NEW; END $$"
            )
            cursor.execute(
                "CREATE TRIGGER test_refuse BEFORE INSERT ON documents "
                "FOR EACH ROW EXECUTE FUNCTION test_refuse()"
            )
        else:
            cursor.execute(
                f"CREATE TRIGGER test_refuse BEFORE INSERT ON documents WHEN NEW.file_id = "
                f"'{file_id}' BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )


@pytest.mark.django_db
class TestImportRegistry:
    def test_it_imports_the_legacy_sample_keeping_ids_and_timestamps_exactly(self):
        out, error = run_import(str(SAMPLE))
        assert error is None
        legacy_records = orjson.loads(SAMPLE.read_bytes())
        rows = table_rows()
        assert len(rows) == len(legacy_records) == 25
        for item in legacy_records:
            row = rows[item["fileId"]]
            assert row[1:6] == (
                item["filename"],
                item["sizeBytes"],
                item["workspace"],
                item["numChunks"],
                item["indexed"],
            )
            assert row[6] == at(item["createdAt"])
            assert row[7] == at(item["updatedAt"])
        assert out.strip().endswith("25 created, 0 updated, 0 unchanged, 0 rejected.")

    def test_numbers_stored_as_strings_become_numbers(self):
        run_import(str(MESSY))
        document = Document.objects.get(file_id="11111111-0000-4000-8000-000000000001")
        assert (document.size_bytes, document.num_chunks, document.indexed) == (2048, 7, True)
        assert document.created_at == at(1_700_000_100)
        assert document.updated_at == at(1_700_000_160)

    def test_float_iso_and_millisecond_timestamps_are_kept_to_the_microsecond(self):
        run_import(str(MESSY))
        floats = Document.objects.get(file_id="22222222-0000-4000-8000-000000000002")
        assert floats.created_at == datetime(2023, 11, 14, 22, 16, 40, 500000, tzinfo=UTC)
        assert floats.updated_at == datetime(2023, 11, 14, 22, 17, 40, 250000, tzinfo=UTC)
        iso = Document.objects.get(file_id="33333333-0000-4000-8000-000000000003")
        assert iso.created_at == datetime(2023, 11, 14, 22, 20, tzinfo=UTC)
        assert iso.updated_at == datetime(2023, 11, 14, 22, 21, tzinfo=UTC)  # +01:00 in the file
        millis = Document.objects.get(file_id="44444444-0000-4000-8000-000000000004")
        assert millis.created_at == at(1_700_000_400)
        assert millis.updated_at == datetime(2023, 11, 14, 22, 21, 0, 123000, tzinfo=UTC)

    def test_missing_optional_fields_take_the_legacy_defaults(self):
        run_import(str(MESSY))
        document = Document.objects.get(file_id="55555555-0000-4000-8000-000000000005")
        assert document.workspace == "default"
        assert (document.size_bytes, document.num_chunks, document.indexed) == (0, 0, False)
        assert document.updated_at == document.created_at == at(1_700_000_500)

    def test_whitespace_around_text_is_trimmed(self):
        run_import(str(MESSY))
        document = Document.objects.get(file_id="66666666-0000-4000-8000-000000000006")
        assert (document.filename, document.workspace) == ("spaced name.md", "legal")

    def test_unknown_extra_fields_are_ignored_and_known_extras_kept(self):
        run_import(str(MESSY))
        extra = Document.objects.get(file_id="77777777-0000-4000-8000-000000000007")
        assert (extra.filename, extra.num_chunks) == ("extra-fields.pdf", 7)
        url = Document.objects.get(file_id="88888888-0000-4000-8000-000000000008")
        assert (url.source, url.url, url.content_type) == (
            "url",
            "https://example.org/page",
            "text/html",
        )
        assert url.sha256 == "ab" * 32
        assert Document.objects.get(file_id="legacy-42").filename == "データ-résumé.pdf"

    def test_duplicate_ids_keep_the_most_recently_updated_and_the_report_says_so(self):
        out, _ = run_import(str(MESSY))
        document = Document.objects.get(file_id=DUPLICATED)
        assert document.filename == "dup-newest.pdf"
        assert document.updated_at == at(1_700_000_900)
        assert (
            f"duplicate fileId '{DUPLICATED}' appears 3 times (records 8, 10, 14): "
            "kept record 10, the most recently updated"
        ) in out

    def test_of_duplicates_updated_at_the_same_time_the_later_one_wins(self, tmp_path: Path):
        path = write_registry(
            tmp_path / "registry.json",
            [legacy(1, filename="first.pdf"), legacy(1, filename="second.pdf")],
        )
        run_import(str(path))
        assert Document.objects.get(file_id="doc-00001").filename == "second.pdf"

    def test_invalid_records_are_reported_with_position_id_and_reason(self):
        out, error = run_import(str(MESSY))
        rejected = [line for line in out.splitlines() if line.startswith("rejected ")]
        assert rejected == [
            "rejected record 9: fileId is missing",
            "rejected record 11 (fileId 'bad-size'): sizeBytes must be a whole number >= 0, "
            "got '-5'",
            "rejected record 12 (fileId 'bad-date'): createdAt is not a timestamp: 'yesterday'",
            "rejected record 13: expected an object, got str",
            "rejected record 15 (fileId 'bad-workspace'): workspace 'no spaces allowed' is not "
            "a valid name (letters, digits, '_', '.', '-')",
            "rejected record 16 (fileId 'too-big'): sizeBytes 100000000000000000000 is larger "
            "than the database holds (9223372036854775807)",
            "rejected record 18 (fileId 'no-created'): createdAt is missing",
            "rejected record 19 (fileId 'half-chunk'): numChunks must be a whole number >= 0, "
            "got 1.5",
            "rejected record 20: expected an object, got NoneType",
        ]
        assert out.splitlines()[-1] == (
            f"Imported {MESSY}: 12 created, 0 updated, 0 unchanged, 9 rejected "
            "(1 duplicated fileId, older copies skipped)."
        )
        assert error == "9 records were rejected (listed above); the rest imported"
        assert Document.objects.count() == 12
        assert not Document.objects.filter(file_id__in=["bad-size", "too-big"]).exists()
        # A copy of another record's content (a fileId a client chose for it) is kept.
        assert Document.objects.filter(filename="page-copy.html").exists()

    def test_second_run_changes_nothing_and_says_so(self):
        run_import(str(MESSY))
        before = table_rows()
        writes = WriteLog()
        out, _ = run_import(str(MESSY))
        assert out.splitlines()[-1] == (
            f"Imported {MESSY}: 0 created, 0 updated, 12 unchanged, 9 rejected "
            "(1 duplicated fileId, older copies skipped). Nothing changed."
        )
        assert writes.entries() == []
        assert table_rows() == before

    def test_a_clean_second_run_says_the_database_matches_the_file(self):
        run_import(str(SAMPLE))
        out, error = run_import(str(SAMPLE))
        assert error is None
        assert out.strip() == (
            f"Imported {SAMPLE}: 0 created, 0 updated, 25 unchanged, 0 rejected. "
            "Nothing changed: the database matches the file."
        )

    def test_a_changed_file_updates_only_the_rows_that_changed(self, tmp_path: Path):
        path = tmp_path / "registry.json"
        write_registry(path, [legacy(n) for n in range(300)])
        run_import(str(path))
        before = table_rows()
        items = [legacy(n) for n in range(300)]
        items[7]["numChunks"] = 99
        items[150]["updatedAt"] = 1_800_000_000
        items[299]["filename"] = "renamed.pdf"
        items.append(legacy(300))
        write_registry(path, items)
        writes = WriteLog()

        out, error = run_import(str(path))

        assert error is None
        assert out.strip() == f"Imported {path}: 1 created, 3 updated, 297 unchanged, 0 rejected."
        assert writes.entries() == [
            ("doc-00007", "update"),
            ("doc-00150", "update"),
            ("doc-00299", "update"),
            ("doc-00300", "insert"),
        ]
        after = table_rows()
        assert after["doc-00007"][4] == 99
        assert after["doc-00150"][7] == at(1_800_000_000)
        assert after["doc-00299"][1] == "renamed.pdf"
        unchanged = set(before) - {"doc-00007", "doc-00150", "doc-00299"}
        assert all(after[file_id] == before[file_id] for file_id in unchanged)

    def test_dry_run_reports_the_same_counts_and_writes_nothing(self, tmp_path: Path):
        path = write_registry(tmp_path / "registry.json", [legacy(n) for n in range(10)])
        run_import(str(path))
        write_registry(path, [legacy(n, numChunks=50) for n in range(5)] + [legacy(10)])
        before = table_rows()

        out, error = run_import(str(path), "--dry-run")

        assert error is None
        assert out.strip() == (
            f"Dry run of {path}, nothing written; it would give: "
            "1 created, 5 updated, 0 unchanged, 0 rejected."
        )
        assert table_rows() == before

    def test_dry_run_still_reports_rejections_and_fails(self):
        out, error = run_import(str(MESSY), "--dry-run")
        assert "rejected record 9: fileId is missing" in out
        assert error == "9 records were rejected (listed above); nothing was written"
        assert Document.objects.count() == 0

    def test_strict_imports_nothing_when_any_record_is_invalid(self):
        out, error = run_import(str(MESSY), "--strict")
        assert out.splitlines()[-1] == (
            f"Nothing imported from {MESSY} (--strict); it would give: 12 created, 0 updated, "
            "0 unchanged, 9 rejected (1 duplicated fileId, older copies skipped)."
        )
        assert error == "9 records were rejected (listed above); nothing was written"
        assert Document.objects.count() == 0

    def test_strict_imports_a_file_without_invalid_records(self):
        _, error = run_import(str(SAMPLE), "--strict")
        assert error is None
        assert Document.objects.count() == 25

    def test_a_failure_part_way_leaves_the_database_as_it_was(self, tmp_path: Path):
        path = write_registry(tmp_path / "registry.json", [legacy(n) for n in range(200)])
        run_import(str(path))
        # A document ingested after the cutover, which the file knows nothing of.
        DatabaseRegistry().upsert(
            DocumentRecord(
                file_id="ingested-later",
                filename="later.pdf",
                workspace="eng",
                sha256="f" * 64,
                created_at=at(1_800_000_000),
                updated_at=at(1_800_000_000),
            )
        )
        before = table_rows()
        # 200 changed rows, then 200 new ones, the last of which the database refuses
        # (a trigger of the test's, as a full disk or a lost connection would), after the
        # updates and (on SQLite) the earlier insert batches have run.
        refuse_inserting("doc-00399")
        items = [legacy(n, numChunks=77) for n in range(200)]
        items += [legacy(n) for n in range(200, 400)]
        write_registry(path, items)

        out, error = run_import(str(path))

        assert error is not None
        assert error.startswith(f"import of {path} failed, nothing was written: ")
        assert "refused by the test" in error
        assert table_rows() == before
        assert out == ""

    def test_the_default_file_is_the_registry_json_path_setting(self, settings, tmp_path: Path):
        settings.REGISTRY_JSON_PATH = write_registry(tmp_path / "legacy.json", [legacy(1)])
        out, error = run_import()
        assert error is None
        assert out.startswith(f"Imported {tmp_path / 'legacy.json'}: 1 created")

    def test_it_imports_into_the_database_even_while_the_json_registry_is_live(
        self, json_registry_path: Path
    ):
        write_registry(json_registry_path, [legacy(1), legacy(2)])
        run_import(str(json_registry_path))
        assert sorted(Document.objects.values_list("file_id", flat=True)) == [
            "doc-00001",
            "doc-00002",
        ]

    def test_ids_equal_only_once_normalised_are_still_duplicates(self, tmp_path: Path):
        # On PostgreSQL a record is copied as soon as it is read if no earlier one has
        # its id: the first one here, given back when the second turns out to share it.
        items = [
            legacy(1, fileId="12.5", filename="string.pdf", updatedAt=1_700_000_500),
            legacy(2),
            legacy(3, fileId=12.5, filename="number.pdf", updatedAt=1_700_000_900),
        ]
        out, error = run_import(str(write_registry(tmp_path / "registry.json", items)))
        assert error is None
        assert Document.objects.get(file_id="12.5").filename == "number.pdf"
        assert Document.objects.count() == 2
        assert "fileId '12.5' appears 2 times (records 0, 2): kept record 2" in out
        assert "2 created, 0 updated, 0 unchanged, 0 rejected" in out

    def test_records_sharing_their_content_are_each_imported(self, tmp_path: Path):
        items = [
            legacy(1, sha256="c" * 64, createdAt=1_700_000_500),
            legacy(2),
            legacy(3, sha256="C" * 64, createdAt=1_600_000_000),  # the same content: a copy
        ]
        out, error = run_import(str(write_registry(tmp_path / "registry.json", items)))
        assert error is None
        assert sorted(Document.objects.values_list("file_id", flat=True)) == [
            "doc-00001",
            "doc-00002",
            "doc-00003",
        ]
        assert "3 created, 0 updated, 0 unchanged, 0 rejected" in out

    def test_records_new_and_existing_in_one_file_are_counted_apart(self, tmp_path: Path):
        path = tmp_path / "registry.json"
        run_import(str(write_registry(path, [legacy(n) for n in range(5)])))
        changed = [legacy(n, numChunks=50) if n == 2 else legacy(n) for n in range(8)]
        out, error = run_import(str(write_registry(path, changed)))
        assert error is None
        assert "3 created, 1 updated, 4 unchanged, 0 rejected" in out
        assert Document.objects.get(file_id="doc-00002").num_chunks == 50

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's indexes")
    def test_an_import_into_an_empty_table_leaves_every_index_as_it_was(self, tmp_path: Path):
        def indexes() -> list[tuple[str, str]]:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'documents' "
                    "ORDER BY indexname"
                )
                return cursor.fetchall()

        before = indexes()
        assert len(before) >= 8  # the primary key, file_id unique, workspace, 3 of ours, …
        items = [legacy(n, sha256=f"{n:064x}") for n in range(30)]
        out, error = run_import(str(write_registry(tmp_path / "registry.json", items)))
        assert error is None and "30 created" in out
        assert indexes() == before
        with connection.cursor() as cursor:  # and they hold the rows: the planner uses them
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("SELECT count(*) FROM documents WHERE workspace = 'default'")
            assert cursor.fetchone()[0] == 30
            cursor.execute(
                "SELECT file_id FROM documents WHERE workspace = 'default' AND sha256 = %s",
                [f"{3:064x}"],
            )
            assert cursor.fetchall() == [("doc-00003",)]

    @pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's statistics")
    def test_the_planner_knows_the_size_of_a_table_an_import_filled(self, tmp_path: Path):
        # Building the indexes again after the COPY counts the rows for the planner;
        # autovacuum's ANALYZE follows within a minute.
        def estimated_rows() -> float:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples FROM pg_class WHERE relname = 'documents'")
                return cursor.fetchone()[0]

        # ANALYZE's figures outlive a rolled-back test: a count no other test imports.
        assert estimated_rows() != 37
        run_import(str(write_registry(tmp_path / "r.json", [legacy(n) for n in range(37)])))
        assert estimated_rows() == 37

    def test_an_empty_registry_imports_nothing_and_succeeds(self, tmp_path: Path):
        out, error = run_import(str(write_registry(tmp_path / "registry.json", [])))
        assert error is None
        assert "0 created, 0 updated, 0 unchanged, 0 rejected" in out

    def test_null_and_empty_values_mean_not_set(self, tmp_path: Path):
        path = write_registry(
            tmp_path / "registry.json",
            [legacy(1, sizeBytes=None, numChunks="", workspace=None, updatedAt="", url=None)],
        )
        _, error = run_import(str(path))
        assert error is None
        document = Document.objects.get(file_id="doc-00001")
        assert (document.size_bytes, document.num_chunks, document.workspace) == (0, 0, "default")
        assert document.updated_at == document.created_at == at(1_700_000_001)

    def test_a_boolean_is_not_a_number(self, tmp_path: Path):
        path = write_registry(
            tmp_path / "registry.json", [legacy(1, sizeBytes=True), legacy(2, numChunks=False)]
        )
        out, _ = run_import(str(path))
        assert [line for line in out.splitlines() if line.startswith("rejected ")] == [
            "rejected record 0 (fileId 'doc-00001'): sizeBytes must be a whole number >= 0, "
            "got True",
            "rejected record 1 (fileId 'doc-00002'): numChunks must be a whole number >= 0, "
            "got False",
        ]
        assert Document.objects.count() == 0

    @pytest.mark.parametrize(
        ("fields", "reason"),
        [
            ({"filename": "  "}, "filename is empty"),
            ({"filename": "a\x00b.pdf"}, "filename contains a NUL character"),
            ({"workspace": "x" * 65}, "workspace is longer than 64 characters"),
            ({"indexed": "perhaps"}, "indexed must be true or false, got 'perhaps'"),
            ({"source": "ftp"}, "source 'ftp' is not 'file' or 'url'"),
            ({"filename": ["a", "b"]}, "filename must be a string, got list"),
            ({"createdAt": "0001-01-01T00:00:00+01:00"}, "createdAt is not a timestamp"),
        ],
    )
    def test_each_invalid_field_is_named_with_its_reason(self, tmp_path: Path, fields, reason):
        out, error = run_import(str(write_registry(tmp_path / "r.json", [legacy(1, **fields)])))
        assert f"rejected record 0 (fileId 'doc-00001'): {reason}" in out
        assert error is not None and error.startswith("1 record was rejected")
        assert Document.objects.count() == 0


def latin1_registry() -> bytes:
    return '[{"fileId": "a", "filename": "Résumé.pdf", "createdAt": 1}]'.encode("latin-1")


@pytest.mark.django_db
class TestImportRegistryRefusesFilesItCannotRead:
    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (
                b"\xef\xbb\xbf" + SAMPLE.read_bytes(),
                "starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM",
            ),
            (SAMPLE.read_text("utf-8").encode("utf-16"), "is UTF-16 encoded; expected UTF-8"),
            (
                latin1_registry(),
                "is not UTF-8: byte 0xe9 at offset 31; expected a UTF-8 JSON file",
            ),
            (SAMPLE.read_bytes()[:5000], "is not valid JSON ("),
            (SAMPLE.read_bytes()[:5000], "; is it truncated?"),
            (
                b'{"documents": []}',
                "holds a JSON dict, expected an array of document objects",
            ),
            (
                b"[1, 2, 3]",
                "holds a JSON array of int values, expected an array of document objects",
            ),
            (b"", "is empty; expected a JSON array (an empty registry is [])"),
        ],
        ids=["bom", "utf-16", "latin-1", "truncated", "truncated-hint", "object", "ints", "empty"],
    )
    def test_it_names_the_file_and_what_is_wrong(self, tmp_path: Path, content, message):
        path = tmp_path / "registry.json"
        path.write_bytes(content)
        out, error = run_import(str(path))
        assert error is not None
        assert error.startswith(f"registry file {path} ")
        assert message in error
        assert out == ""
        assert Document.objects.count() == 0

    def test_a_missing_file_is_named(self, tmp_path: Path):
        _, error = run_import(str(tmp_path / "nope.json"))
        assert error == f"registry file {tmp_path / 'nope.json'} does not exist"

    def test_a_directory_is_named(self, tmp_path: Path):
        _, error = run_import(str(tmp_path))
        assert error == f"registry file {tmp_path} is a directory"


# -- as an operator runs it: a separate process, its exit status and its terminal ------------
@pytest.mark.django_db(transaction=True)
class TestImportRegistryFromTheShell:
    def test_rejected_records_give_a_non_zero_exit_status(self, child_database_url, tmp_path):
        env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path))
        result = run_manage("import_registry", str(MESSY), env=env)
        assert result.returncode == 1
        assert result.stdout.splitlines()[-1].startswith(f"Imported {MESSY}: 12 created")
        assert result.stderr.strip() == (
            "CommandError: 9 records were rejected (listed above); the rest imported"
        )
        assert "\r" not in result.stdout + result.stderr  # no terminal, no progress bar

    def test_a_clean_file_exits_zero(self, child_database_url, tmp_path):
        env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path))
        result = run_manage("import_registry", str(SAMPLE), env=env)
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""

    def test_a_bad_file_exits_non_zero_with_the_reason(self, child_database_url, tmp_path):
        path = tmp_path / "registry.json"
        path.write_bytes(b'{"fileId": "x"}')
        env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path))
        result = run_manage("import_registry", str(path), env=env)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"CommandError: registry file {path} holds a JSON dict, "
            "expected an array of document objects"
        )

    def test_on_a_terminal_it_draws_a_progress_bar_on_stderr(self, child_database_url, tmp_path):
        env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path))
        stdout, terminal = run_on_a_terminal(["import_registry", str(SAMPLE)], env)
        assert "\r" in terminal
        assert "checking" in terminal
        assert "25/25 100%" in terminal
        assert (
            stdout.strip() == f"Imported {SAMPLE}: 25 created, 0 updated, 0 unchanged, 0 rejected."
        )

    def test_before_migrate_it_says_to_run_migrate(self, tmp_path):
        database = tmp_path / "never-migrated.sqlite3"
        env = child_env(DATABASE_URL=f"sqlite:///{database}", DATA_DIR=str(tmp_path))
        result = run_manage("import_registry", str(SAMPLE), env=env)
        assert result.returncode == 1
        assert result.stderr.strip() == (
            f"CommandError: the database {database} has no documents table: "
            "run `python manage.py migrate` first"
        )

    def test_no_progress_keeps_a_terminal_quiet(self, child_database_url, tmp_path):
        env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(tmp_path))
        _, terminal = run_on_a_terminal(["import_registry", str(SAMPLE), "--no-progress"], env)
        assert terminal == ""
