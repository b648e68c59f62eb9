"""Where a passage is (issue 33): a source of a paged document names its pages, 1-based
as a PDF viewer counts them, in /ask's answers (plain and streamed) and in the store;
a format without pages says null."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.client import ask, ingest
from tests.support.documents import make_pdf
from tests.support.inspection import stored_chunks

pytestmark = pytest.mark.django_db

PAGES = [
    "Library handbook\nThe reading room opens at nine in the morning.",
    "Loans\nBooks may be borrowed for three weeks at a time.\nA loan is renewed twice at most.",
    "Fines\nA late book costs ten cents a day.",
]


def test_a_pdf_source_cites_the_page_its_quote_is_on(api, data_dir: Path):
    document = ingest(api, "library.pdf", make_pdf(PAGES))
    answer = ask(api, "How long may books be borrowed?")
    assert "borrowed for three weeks" in answer["answer"]
    cited = answer["sources"][0]
    assert cited["fileId"] == document["fileId"]
    assert "three weeks" in cited["text"]
    assert cited["pageSpan"] == {"firstPage": 2, "lastPage": 2}
    # The store keeps each chunk's page: none crosses a page break.
    pages = {chunk["text"].split()[0]: chunk["pages"] for chunk in stored_chunks(data_dir)}
    assert pages == {"Library": [1, 1], "Loans": [2, 2], "Fines": [3, 3]}


def test_a_streamed_answer_cites_pages_too(api, data_dir: Path):
    ingest(api, "library.pdf", make_pdf(PAGES))
    response = api.post(
        "/ask",
        {"q": "What does a late book cost?", "stream": True},
        content_type="application/json",
    )
    events = b"".join(response).decode()
    sources = next(
        json.loads(line.removeprefix("data: "))["sources"]
        for line in events.split("\n")
        if line.startswith("data: ") and '"sources"' in line
    )
    assert sources[0]["pageSpan"] == {"firstPage": 3, "lastPage": 3}


def test_a_format_without_pages_says_null(api, data_dir: Path):
    ingest(api, "notes.md", "# Loans\n\nBooks may be borrowed for three weeks at a time.")
    source = ask(api, "How long may books be borrowed?")["sources"][0]
    assert source["pageSpan"] is None
    assert source["context"] == "Loans"
    assert [chunk["pages"] for chunk in stored_chunks(data_dir)] == [None]
