"""Lexical ranking by fields: a chunk's headings and its document's name weigh more than
its text, in the store file's BM25 and in PostgreSQL's full-text ranking alike, so the
section about a word comes before a passing mention of it (issue 34)."""

from __future__ import annotations

import dataclasses
import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from ingest.search.embeddings import get_embedder
from ingest.search.lexical import analyzer, terms
from ingest.stores import get_vector_store
from tests.support.client import ask, ingest
from tests.support.inspection import on_pgvector

# Maintenance notes: a section headed "Vacuum", whose text never says the word again.
SECTION = """# Maintenance

## Vacuum

Dead row versions left behind by updates and deletes are reclaimed for reuse by a
periodic sweep of each table. Run it nightly on busy tables, and after bulk loads.

## Backups

Take a base backup weekly and keep the write-ahead log in between.
"""
# A note that mentions the word in passing, twice, about something else.
MENTION = """# Office moves

The cleaners bring a vacuum on Fridays, so leave the floor clear. The old vacuum
cleaner in the store room is broken; do not use it. Desks move on Monday morning.
"""


def lexical_ranking(query: str, names: dict[str, str]) -> list[str]:
    """The documents of the store's lexical ranking for `query`, best first (the fused
    ranking also weighs similarity, which the suite's hashing embedder gives the text)."""
    found = get_vector_store().search(
        get_embedder().embed([query])[0],
        terms(query),
        workspace="default",
        top_k=10,
        method="lexical",
    )
    return [names[hit.file_id] for hit in found.hits]


@pytest.fixture
def mention(api, registry_mode) -> dict[str, str]:
    return {ingest(api, "office.md", MENTION)["fileId"]: "office.md"}


class TestFields:
    def test_the_section_about_a_word_outranks_a_passing_mention(self, api, mention):
        names = {**mention, ingest(api, "maintenance.md", SECTION)["fileId"]: "maintenance.md"}
        assert lexical_ranking("vacuum", names) == ["maintenance.md", "office.md"]

    def test_a_document_named_for_a_word_outranks_a_passing_mention(self, api, mention):
        schedule = ingest(
            api,
            "vacuum-schedule.txt",
            "Tables are swept for dead rows every night at two, busy ones hourly.",
        )
        names = {**mention, schedule["fileId"]: "vacuum-schedule.txt"}
        assert lexical_ranking("vacuum", names) == ["vacuum-schedule.txt", "office.md"]

    def test_the_text_still_ranks_where_no_heading_or_name_matches(self, api, mention):
        names = {**mention, ingest(api, "maintenance.md", SECTION)["fileId"]: "maintenance.md"}
        assert lexical_ranking("cleaners Fridays", names) == ["office.md"]
        body = ask(api, "Which days do the cleaners come?")
        assert body["sources"][0]["filename"] == "office.md"
        assert "Fridays" in body["answer"]


@pytest.mark.json_store_only
def test_a_store_file_counted_by_the_previous_analyzer_is_counted_again(api, data_dir):
    """A store file of the analyzer before fields is read, its terms counted again with
    the headings' weight, and written back in the current analyzer by the next write."""
    names = {
        ingest(api, "office.md", MENTION)["fileId"]: "office.md",
        ingest(api, "maintenance.md", SECTION)["fileId"]: "maintenance.md",
    }
    store = get_vector_store()
    store.write_all(store.documents())  # one file, no journal, as that version wrote it
    path = data_dir / "vectors.json"
    stored = json.loads(path.read_bytes())
    # As the previous analyzer left it: its name, no document names, counts of one field.
    stored["analyzer"] = "snowball-english-v1"
    del stored["titles"]
    path.write_text(json.dumps(stored))
    assert lexical_ranking("vacuum", names) == ["maintenance.md", "office.md"]
    ingest(api, "backups.txt", "Base backups are taken weekly.")
    rewritten = json.loads(path.read_bytes())
    assert rewritten["analyzer"] == analyzer()
    assert sorted(rewritten["titles"].values()) == ["backups.txt"]


def _forget_names() -> None:
    """As a store written before names were counted: its chunks carry no document name."""
    store = get_vector_store()
    if on_pgvector():
        with connection.cursor() as cursor:
            cursor.execute("UPDATE chunks SET title = ''")
    else:
        store.write_all([dataclasses.replace(d, title="") for d in store.documents()])


@pytest.mark.django_db(transaction=True)
def test_check_registry_counts_the_names_a_store_lacks(api, data_dir):
    names = {
        ingest(api, "office.md", MENTION)["fileId"]: "office.md",
        ingest(api, "vacuum-schedule.txt", "Tables are swept for dead rows nightly.")[
            "fileId"
        ]: "vacuum-schedule.txt",
    }
    _forget_names()
    assert lexical_ranking("vacuum", names) == ["office.md"]
    out = StringIO()
    call_command("check_registry", stdout=out)
    assert "2 documents whose name lexical ranking does not count yet" in out.getvalue()
    out = StringIO()
    call_command("check_registry", "--fix", stdout=out)
    assert "fixed: counted the names of 2 documents in lexical ranking" in out.getvalue()
    assert lexical_ranking("vacuum", names) == ["vacuum-schedule.txt", "office.md"]
    out = StringIO()
    call_command("check_registry", stdout=out)
    assert "whose name" not in out.getvalue()
