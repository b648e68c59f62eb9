"""manage.py import_legacy_vectors: the old service's vec.json into this service's store."""

from __future__ import annotations

import shutil
from io import StringIO
from pathlib import Path

import orjson
import pytest
from django.core.management import call_command
from django.db import connection

from tests.support.client import ask, upload
from tests.support.commands import run_command, run_import
from tests.support.inspection import (
    on_pgvector,
    store_built_by,
    store_label,
    stored_chunks,
    vector_file_ids,
)
from tests.support.paths import DATA
from tests.support.processes import child_env, run_manage

LEGACY_VEC = DATA / "legacy_vec.json"
LEGACY_REGISTRY = DATA / "legacy_registry.json"
ZEN = "0a1b2c3d4e5f60718293a4b5c6d7e8f9"
HEAPQ = "5b8f1c0e2d7a4c6b9e3f1a2b3c4d5e6f"
STATISTICS = "legacy-42"


def store_version(data_dir: Path) -> object:
    """What changes when the store is written: the file's inode and modification time, or
    the chunks' row versions."""
    if on_pgvector():
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, xmin::text FROM chunks ORDER BY id")
            return cursor.fetchall()
    stat = (data_dir / "vectors.json").stat()
    return stat.st_ino, stat.st_mtime_ns


def import_vectors(*args: str) -> tuple[str, str | None]:
    return run_command("import_legacy_vectors", *args, "--no-progress")


@pytest.fixture
def old_files(data_dir: Path) -> Path:
    """The old service's vec.json where it kept it, data/vec.json."""
    path = data_dir / "vec.json"
    shutil.copyfile(LEGACY_VEC, path)
    return path


@pytest.fixture
def cut_over(api, old_files: Path) -> Path:
    """The registry imported as the runbook's step does."""
    _, error = run_import(str(LEGACY_REGISTRY))
    assert error is None
    return old_files


class TestImport:
    def test_the_old_documents_answer_and_everything_agrees(self, api, cut_over, data_dir):
        before = cut_over.read_bytes()
        out, error = import_vectors()
        assert error is None, out
        assert out.strip() == (
            f"Imported {cut_over} into {store_label(data_dir)}: 3 documents (15 chunks) "
            "cut again and embedded with hashing-v1, 0 unchanged, 0 documents not in the "
            "registry, "
            f"0 chunks rejected. {cut_over} is unchanged."
        )
        assert cut_over.read_bytes() == before
        summary = call_command("check_registry", stdout=StringIO())
        assert summary.startswith("Everything agrees: 3 documents in the database registry")

        body = ask(api, "Should errors pass silently?")
        assert "Errors should never pass silently." in body["answer"]
        assert body["sources"][0]["fileId"] == ZEN
        assert body["sources"][0]["filename"] == "zen-of-python.txt"
        heap = ask(api, "What is the smallest element of a heap?")
        assert heap["sources"][0]["fileId"] == HEAPQ
        statistics = ask(api, "How is the median of the data calculated?", workspace="science")
        assert {source["fileId"] for source in statistics["sources"]} == {STATISTICS}

    def test_each_document_is_cut_again_from_its_old_text_in_its_workspace(
        self, api, cut_over, data_dir
    ):
        import_vectors()
        old: dict[str, list[dict]] = {}
        for item in orjson.loads(LEGACY_VEC.read_bytes()):
            old.setdefault(item["fileId"], []).append(item)
        new: dict[str, list[dict]] = {}
        for chunk in stored_chunks(data_dir):
            new.setdefault(chunk["file_id"], []).append(chunk)
        assert new.keys() == old.keys()
        for file_id, chunks in new.items():
            assert sorted(c["chunk_index"] for c in chunks) == list(range(len(chunks)))
            assert {c["workspace"] for c in chunks} == {old[file_id][0]["workspace"]}
            words = " ".join(" ".join(item["text"] for item in old[file_id]).split())
            for chunk in chunks:  # every sentence of a new chunk is the old text's
                for line in chunk["text"].split("\n"):
                    assert " ".join(line.split()) in words, line
            response = api.get(f"/documents/{file_id}")
            assert response.json()["numChunks"] == len(chunks)

    def test_a_second_run_embeds_and_writes_nothing(self, api, cut_over, data_dir):
        import_vectors()
        written = store_version(data_dir)
        out, error = import_vectors()
        assert error is None
        assert "0 documents (0 chunks) cut again and embedded with hashing-v1, 3 unchanged" in out
        assert store_version(data_dir) == written

    def test_a_dry_run_writes_nothing(self, api, cut_over, data_dir):
        out, error = import_vectors("--dry-run")
        assert error is None
        assert out.strip().startswith(f"Dry run of {cut_over}, nothing written; it would give: 3")
        assert not (data_dir / "vectors.json").exists()

    def test_chunks_of_documents_the_registry_lacks_are_reported_not_imported(
        self, api, old_files, data_dir
    ):
        registry = orjson.loads(LEGACY_REGISTRY.read_bytes())
        only_zen = data_dir / "registry.json"
        only_zen.write_bytes(orjson.dumps([r for r in registry if r["fileId"] == ZEN]))
        run_import(str(only_zen))
        out, error = import_vectors()
        assert out.splitlines()[:2] == [
            f"not in the registry: document {HEAPQ!r} (heapq-about.txt), 10 chunks: not imported",
            f"not in the registry: document {STATISTICS!r} (statistics.txt), 7 chunks: not "
            "imported",
        ]
        assert "1 document (2 chunks) cut again and embedded" in out
        assert error == f"17 chunks of {old_files} were not imported (listed above)"
        assert set(vector_file_ids(data_dir)) == {ZEN}

    def test_malformed_chunks_are_rejected_with_their_position(self, api, cut_over, data_dir):
        items = orjson.loads(LEGACY_VEC.read_bytes())
        del items[3]["text"]
        items[5]["chunkId"] = -1
        items.append(
            {**items[0], "chunkId": 0, "text": 'A text that quotes "embedding": [1, 2] itself.'}
        )
        cut_over.write_bytes(orjson.dumps(items))
        out, error = import_vectors()
        assert [line for line in out.splitlines() if line.startswith("rejected")] == [
            f"rejected chunk 3 (fileId {HEAPQ!r}): text is missing",
            f"rejected chunk 5 (fileId {HEAPQ!r}): chunkId: Input should be greater than or "
            "equal to 0 (got -1)",
        ]
        assert "(1 repeated chunk: the later copy kept)" in out
        assert error == f"2 chunks of {cut_over} were not imported (listed above)"
        texts = {chunk["chunk_id"]: chunk["text"] for chunk in stored_chunks(data_dir)}
        assert texts[f"{HEAPQ}:0"].startswith('A text that quotes "embedding": [1, 2] itself.')

    @pytest.mark.parametrize(
        ("content", "message"),
        [
            (b"[{", "is not valid JSON"),
            (b'{"fileId": "x"}', "holds a JSON dict, expected the old service's array of chunks"),
            (
                b'{"format": "docservice-vectors/1", "chunks": []}',
                "is already in this service's format (docservice-vectors/1)",
            ),
        ],
    )
    def test_a_file_it_cannot_use_is_named_with_the_reason(self, api, old_files, content, message):
        old_files.write_bytes(content)
        _, error = import_vectors()
        assert error is not None and error.startswith(f"vector file {old_files} ")
        assert message in error

    def test_a_missing_file_is_named(self, api, data_dir):
        _, error = import_vectors(str(data_dir / "nope.json"))
        assert error == f"vector file {data_dir / 'nope.json'} does not exist"

    @pytest.mark.json_store_only
    def test_it_refuses_to_import_this_service_s_own_store(self, api, data_dir, settings):
        _, error = import_vectors(str(settings.VECTOR_JSON_PATH))
        assert error is not None
        assert "is this service's own store (VECTOR_JSON_PATH)" in error

    @pytest.mark.django_db(transaction=True)
    def test_from_the_shell_the_exit_status_says_whether_all_was_imported(
        self, child_database_url, old_files, data_dir
    ):
        env = child_env(DATABASE_URL=child_database_url, DATA_DIR=str(data_dir))
        assert run_manage("import_registry", str(LEGACY_REGISTRY), env=env).returncode == 0
        result = run_manage("import_legacy_vectors", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"Imported {old_files} into {store_label(data_dir)}")
        assert run_manage("check_registry", env=env).returncode == 0
        old_files.write_bytes(orjson.dumps([{"fileId": "ghost", "chunkId": 0, "text": "boo"}]))
        failed = run_manage("import_legacy_vectors", env=env)
        assert failed.returncode == 1
        assert failed.stderr.strip() == (
            f"CommandError: 1 chunk of {old_files} was not imported (listed above)"
        )


@pytest.mark.json_store_only
class TestTheOldFileIsNeverWritten:
    def test_a_store_path_holding_the_old_file_is_refused_for_reads_and_writes(
        self, api, old_files, settings
    ):
        settings.VECTOR_JSON_PATH = old_files
        before = old_files.read_bytes()
        for response in (
            upload(api, "new.txt", "A document ingested after the cutover."),
            api.post("/ask", {"q": "anything"}, content_type="application/json"),
        ):
            assert response.status_code == 503
            detail = response.json()["detail"]
            assert "is the old service's vector file" in detail
            assert f"import_legacy_vectors {old_files}" in detail
        assert old_files.read_bytes() == before
        assert api.get("/documents").json()["total"] == 0


class TestKeepVectors:
    """--keep-vectors: with EMBEDDER=gemini the old text-embedding-004 vectors are kept."""

    @pytest.fixture
    def gemini(self, settings, httpserver):
        settings.EMBEDDER = "gemini"
        settings.GOOGLE_API_KEY = "test-key"
        settings.GEMINI_BASE_URL = httpserver.url_for("/")
        settings.GENERATION_RETRIES = 0
        return httpserver

    def test_it_is_refused_unless_the_embedder_made_them(self, api, cut_over):
        _, error = import_vectors("--keep-vectors")
        assert error is not None
        assert "--keep-vectors" in error and "EMBEDDER=gemini" in error
        assert "'hashing-v1'" in error

    def test_the_old_vectors_are_stored_as_they_are_and_answer(
        self, api, cut_over, data_dir, gemini
    ):
        old = orjson.loads(cut_over.read_bytes())
        out, error = import_vectors("--keep-vectors")
        assert error is None, out
        assert gemini.log == []  # nothing was embedded again
        assert store_built_by(data_dir) == ("gemini-text-embedding-004", 768)

        # The question's embedding, as Gemini would return it: the zen chunk's own vector.
        zen = next(c for c in old if "silently" in c["text"])
        gemini.expect_request(
            "/v1beta/models/text-embedding-004:batchEmbedContents", method="POST"
        ).respond_with_json({"embeddings": [{"values": zen["embedding"]}]})
        body = ask(api, "Should errors pass silently?")
        assert body["sources"][0]["fileId"] == ZEN
        assert body["sources"][0]["chunkId"] == zen["chunkId"]
        assert "Errors should never pass silently." in body["answer"]
        ((request, _),) = gemini.log
        assert request.headers["x-goog-api-key"] == "test-key"
        sent = request.get_json()["requests"][0]
        assert sent["content"]["parts"][0]["text"] == "Should errors pass silently?"


# The old service's own cut (yashkadam007/rag-fastapi, app/lib/chunker.py): windows of
# 3,500 characters of the raw text, each starting 600 before the previous one ended.
def old_chunks(text: str, size: int = 3500, overlap: int = 600) -> list[str]:
    text, chunks, start = text.strip(), [], 0
    while start < len(text):
        end = min(start + size, len(text))
        chunks.append(text[start:end])
        if end >= len(text):
            break
        start = end - overlap
    return chunks


def hard_wrapped(paragraph: str, width: int = 72) -> str:
    lines, line = [], ""
    for word in paragraph.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return "\n".join([*lines, line])


AUTH_GUIDE = "\n\n".join(
    [
        "# Authentication",
        hard_wrapped(
            "pip supports basic HTTP-based authentication credentials. This is done by "
            "providing the username (and optionally password) in the URL: "
            "https://username:password@pypi.company.com/simple. For indexes that only "
            "require single-part authentication tokens, provide the token as the "
            "username and do not provide a password."
        ),
        "## Percent-encoding special characters",
        hard_wrapped(
            "Certain special characters are not valid in the credential part of a URL. "
            "If the user or password part of your login credentials contain any of these "
            "special characters, then they must be percent-encoded. For example, for a "
            "user with username **user** and password **he//o** accessing a repository "
            "at pypi.company.com/simple, the URL with credentials would look like: "
            "https://user:he%2F%2Fo@pypi.company.com/simple."
        ),
        "## netrc support",
        *[
            hard_wrapped(
                f"Paragraph {n} of the netrc section: pip supports loading credentials from "
                "a user's .netrc file, which stores a machine's login and password so that "
                "a repository asking for credentials gets them without a prompt; the file "
                "must be readable by its owner only, or pip ignores it with a warning."
            )
            for n in range(1, 25)
        ],
    ]
)
AUTH = "a11a0000000000000000000000000001"
AUTH_COPY = "a11a0000000000000000000000000002"


@pytest.fixture
def markdown_legacy(api, data_dir: Path) -> Path:
    """An old vec.json holding a hard-wrapped Markdown guide cut the old way, twice: under
    its id and under a second one, as the old data holds copies."""
    chunks = old_chunks(AUTH_GUIDE)
    assert len(chunks) >= 2 and len(chunks[0]) == 3500
    records, items = [], []
    for file_id in (AUTH, AUTH_COPY):
        records.append(
            {
                "fileId": file_id,
                "filename": "authentication.md",
                "sizeBytes": len(AUTH_GUIDE),
                "workspace": "default",
                "numChunks": len(chunks),
                "indexed": True,
                "createdAt": 1700000000,
                "updatedAt": 1700000000,
            }
        )
        items.extend(
            {"id": f"{file_id}:{n}", "fileId": file_id, "filename": "authentication.md",
             "chunkId": n, "workspace": "default", "text": text, "embedding": [0.0] * 768,
             "createdAt": 1700000000}
            for n, text in enumerate(chunks)
        )  # fmt: skip
    registry = data_dir / "old-registry.json"
    registry.write_bytes(orjson.dumps(records))
    _, error = run_import(str(registry))
    assert error is None
    path = data_dir / "vec.json"
    path.write_bytes(orjson.dumps(items))
    return path


def test_a_hard_wrapped_markdown_document_is_cut_again_into_sections(
    api, markdown_legacy: Path, data_dir: Path
):
    out, error = import_vectors()
    assert error is None, out
    assert (
        f"the same text under different fileIds (/ask cites it once; delete the copies you "
        f"do not want): {AUTH!r} (authentication.md), {AUTH_COPY!r} (authentication.md)"
    ) in out
    chunks = [c for c in stored_chunks(data_dir) if c["file_id"] == AUTH]
    assert {c["context"] for c in chunks} >= {
        "Authentication",
        "Authentication > Percent-encoding special characters",
        "Authentication > netrc support",
    }
    assert not any("#" in c["text"] or "**" in c["text"] for c in chunks)

    body = ask(api, "How are special characters in credentials encoded?")
    assert body["sources"][0]["context"] == "Authentication > Percent-encoding special characters"
    assert (
        "If the user or password part of your login credentials contain any of these special "
        "characters, then they must be percent-encoded. [1]"
    ) in body["answer"]
    assert len({source["text"] for source in body["sources"]}) == len(body["sources"])
    assert run_command("check_registry")[1] is None
