"""An extractive answer quotes its sources exactly (issue 25): each sentence it shows is
found word for word in the chunk it cites, and what a document says survives its markup:
identifiers keep their underscores, a <Type> placeholder stays, a URL stays whole, a
command stays a line, a table row keeps its cells.

Each kind of markup is ingested through POST /ingest/file and asked about through
POST /ask, as a client would.
"""

from __future__ import annotations

import pytest

from ingest.answers.extractive import Source, cited_sentences, quotes_exactly
from tests.support.client import ask, ingest, upload
from tests.support.documents import make_pdf
from tests.support.inspection import stored_chunks

pytestmark = pytest.mark.usefixtures("registry_mode")


def answered(api, question: str) -> tuple[str, list[str]]:
    """The answer's sentences (without their [n]), having checked that each is quoted
    exactly from the chunk it cites."""
    body = ask(api, question)
    sources = [
        Source(s["number"], s["fileId"], s["filename"], s["chunkId"], s["context"], 0, s["text"])
        for s in body["sources"]
    ]
    assert body["sources"], body
    assert quotes_exactly(body["answer"], sources), body
    return body["answer"], [sentence for sentence, _ in cited_sentences(body["answer"])]


def test_underscores_inside_identifiers_are_not_emphasis(api):
    ingest(
        api,
        "libtasn1.md",
        "# Decoding\n\nThe function `asn1_der_decoding_element` decodes one element of a DER "
        "encoding. Call asn1_der_decoding_startEnd first to find the element's bounds, "
        "and *then* decode it.\n",
    )
    answer, _ = answered(api, "Which function decodes one element of a DER encoding?")
    assert "The function asn1_der_decoding_element decodes one element" in answer
    answer, _ = answered(api, "What does asn1_der_decoding_startEnd find?")
    assert "Call asn1_der_decoding_startEnd first to find the element's bounds" in answer
    assert "*" not in answer and "`" not in answer


def test_a_type_placeholder_is_text_not_a_tag(api):
    ingest(
        api,
        "fs.html",
        "<html><body><h2>fs.watch(filename, listener)</h2><p>The listener receives the "
        "changed file name; it will be provided as a &lt;Buffer&gt; if fs.watch() is "
        "called with its encoding option set to 'buffer'.</p></body></html>",
    )
    ingest(
        api,
        "streams.md",
        "# Streams\n\nEach chunk read from the pipe arrives as a <Uint8Array> unless an "
        "encoding was <b>set</b> on the stream.\n",
    )
    answer, _ = answered(api, "How is the changed file name given to the fs.watch listener?")
    assert "it will be provided as a <Buffer> if fs.watch() is called" in answer
    answer, _ = answered(api, "How does each chunk read from the pipe arrive?")
    assert "arrives as a <Uint8Array> unless an encoding was set on the stream." in answer


def test_urls_stay_whole(api):
    ingest(
        api,
        "mirrors.md",
        "# Mirrors\n\nThe package index mirror lives at <https://mirror.example.org/simple_index/> "
        "and its status page at [the status page](https://status.example.org).\n",
    )
    ingest(
        api,
        "uploads.txt",
        "Upload the release notes to https://files.example.org/release_notes_v2/ before "
        "tagging the release.",
    )
    answer, _ = answered(api, "Where does the package index mirror live?")
    assert "mirror lives at https://mirror.example.org/simple_index/ and its status" in answer
    answer, _ = answered(api, "Where do the release notes get uploaded?")
    assert "https://files.example.org/release_notes_v2/" in answer


def test_each_command_of_a_code_block_stays_a_line(api):
    ingest(
        api,
        "keyring.md",
        "# Keyring support\n\nInstall keyring from PyPI, then check it:\n\n"
        "```console\n$ pip install keyring\n$ keyring --list-backends\n```\n",
    )
    _, sentences = answered(api, "pip install keyring")
    assert "$ pip install keyring" in sentences, sentences
    assert not any("install keyring $" in sentence for sentence in sentences), sentences


def test_a_table_row_keeps_its_cells_and_loses_its_pipes(api):
    ingest(
        api,
        "settings.md",
        "# Timeouts\n\n| Setting | Default | Effect |\n|---|---|---|\n"
        "| statement_timeout | 0 | Aborts any statement that takes longer than this |\n"
        "| lock_timeout | 0 | Aborts a statement waiting longer than this for a lock |\n",
    )
    answer, _ = answered(api, "Which setting aborts long statements?")
    assert "statement_timeout; 0; Aborts any statement that takes longer than this" in answer
    assert "|" not in answer


def test_plain_text_is_quoted_as_written(api):
    ingest(
        api,
        "tuning.txt",
        "Set log_min_duration_statement to 250 so that slow queries are logged. A value "
        "of -1 turns the *statement* log off; __init__ files are never read.",
    )
    answer, _ = answered(api, "How are slow queries logged?")
    assert "Set log_min_duration_statement to 250 so that slow queries are logged." in answer


def test_myst_roles_leave_their_text_only(api):
    ingest(
        api,
        "freeze.md",
        "# Freezing\n\nRun {ref}`pip freeze` to list what is installed; {pypi}`certifi` "
        "supplies the certificates.\n\n```{note}\n:class: tip\nFreezing records exact "
        "versions of every installed package.\n```\n",
    )
    answer, _ = answered(api, "What does pip freeze list?")
    assert "Run pip freeze to list what is installed; certifi supplies" in answer
    assert "{" not in answer
    answer, _ = answered(api, "What does freezing record?")
    assert "Freezing records exact versions of every installed package." in answer
    assert ":class:" not in answer


def test_an_answer_that_changes_a_character_is_caught():
    source = Source(1, "f", "f.md", 0, "", 0, "Call asn1_der_decoding_element\n  first.")
    assert quotes_exactly("Call asn1_der_decoding_element first. [1]", [source])
    assert not quotes_exactly("Call asn1derdecoding_element first. [1]", [source])
    assert not quotes_exactly("Call asn1_der_decoding_element first. [2]", [source])


def test_the_same_text_under_two_ids_is_cited_once(api):
    text = "# Tides\n\nSpring tides follow the new and the full moon.\n"
    first = ingest(api, "tides.md", text)
    copy = upload(api, "tides-copy.md", text, file_id="tides-copy")
    assert copy.status_code == 200 and copy.json()["copyOf"] == first["fileId"], copy.json()
    body = ask(api, "When do spring tides come?")
    cited = [source["text"] for source in body["sources"]]
    assert len(cited) == len(set(cited)) == 1, body["sources"]


HANDBOOK_PAGES = [
    "ACME Staff Handbook\nContents\n1 Introduction .......... 2\n2 Travel . . . . . . . 3\n"
    "3 Equipment .......... 4\nPage 1 of 4",
    "ACME Staff Handbook\n1 Introduction\nThis handbook describes what the company provides "
    "to its staff.\nRead it before your first day.\nPage 2 of 4",
    "ACME Staff Handbook\n2 Travel\nTravel expenses are reimbursed within thirty days of "
    "the trip.\nSubmit the expense form with your receipts.\nPage 3 of 4",
    "ACME Staff Handbook\n3 Equipment\nLaptops are replaced every four years by the IT "
    "desk.\nBroken screens are repaired within a week.\nPage 4 of 4",
]


def test_a_pdf_s_running_titles_page_numbers_and_contents_are_not_evidence(api, data_dir):
    handbook = ingest(api, "handbook.pdf", make_pdf(HANDBOOK_PAGES))
    texts = [c["text"] for c in stored_chunks(data_dir) if c["file_id"] == handbook["fileId"]]
    whole = "\n".join(texts)
    assert "ACME Staff Handbook" not in whole and "Page 3 of 4" not in whole, whole
    assert "...." not in whole and ". . ." not in whole, whole
    answer, _ = answered(api, "When are travel expenses reimbursed?")
    assert "Travel expenses are reimbursed within thirty days of the trip. [1]" in answer
    assert "Contents" not in answer and "Introduction" not in answer, answer


def test_a_web_page_s_navigation_and_contents_are_not_evidence(api, data_dir):
    page = ingest(
        api,
        "vacuum.html",
        "<html><head><title>Routine Vacuuming</title></head><body>"
        '<div role="navigation"><a href="/">Home</a> <a href="/backup">Backup and Restore</a>'
        '</div><h1>Routine Vacuuming</h1><div class="toc"><dl class="toc"><dt>25.1.1. '
        "Vacuuming Basics</dt><dt>25.1.2. Recovering Disk Space</dt><dt>25.1.5. Preventing "
        "Transaction ID Wraparound Failures</dt></dl></div><p>Autovacuum reclaims the space "
        "of dead rows and keeps table statistics up to date.</p></body></html>",
    )
    chapter = ingest(
        api,
        "chapter.html",
        "<html><body><h1>Chapter 25. Routine Maintenance</h1><div class='toc'><dl><dt>25.1. "
        "Routine Vacuuming</dt><dt>25.2. Routine Reindexing</dt></dl></div></body></html>",
    )  # all it has is its table of contents: read with it, not refused as empty
    chunks = {c["file_id"]: c["text"] for c in stored_chunks(data_dir)}
    assert "Wraparound" not in chunks[page["fileId"]] and "Home" not in chunks[page["fileId"]]
    assert "Routine Reindexing" in chunks[chapter["fileId"]]
    answer, _ = answered(api, "What does autovacuum reclaim?")
    assert answer == (
        "Autovacuum reclaims the space of dead rows and keeps table statistics up to date. [1]"
    )


def test_each_command_of_a_web_page_s_pre_block_stays_a_line(api):
    ingest(
        api,
        "keyring.html",
        "<html><body><h2>Keyring support</h2><p>Install keyring from PyPI:</p>"
        "<pre>$ pip install keyring\n$ keyring --list-backends</pre></body></html>",
    )
    _, sentences = answered(api, "pip install keyring")
    assert "$ pip install keyring" in sentences, sentences
    assert not any("keyring $" in sentence for sentence in sentences), sentences


def test_a_sentence_announcing_a_line_brings_the_line_along(api):
    ingest(
        api,
        "credentials.md",
        "# Credentials\n\nFor a user with password he//o, the index URL with credentials "
        "would look like:\n\n```\nhttps://user:he%2F%2Fo@pypi.company.com/simple\n```\n",
    )
    answer, sentences = answered(api, "What would the index URL with credentials look like?")
    assert sentences[-1] == "https://user:he%2F%2Fo@pypi.company.com/simple", answer
