"""`reindex --reextract` (issue 33): each kept original read again with today's readers,
so that a PDF indexed before pages were cited gains its pages; a document without an
original (imported from the old registry) is named, and nothing else changes."""

from __future__ import annotations

import dataclasses
import shutil
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from ingest.stores import get_vector_store
from registry.models import AuditEvent
from tests.support.client import ask, ingest
from tests.support.commands import run_command
from tests.support.documents import make_pdf
from tests.support.inspection import stored_chunks

pytestmark = pytest.mark.django_db(transaction=True)

PAGES = ["Opening hours. The museum opens at ten.", "Tickets. Children enter free."]


def forget_pages(file_id: str) -> None:
    """The document's chunks as an ingest before page citations stored them: no pages."""
    store = get_vector_store()
    (document,) = store.documents([file_id])
    store.replace([dataclasses.replace(document, pages=None)])


def test_a_pdf_indexed_without_pages_gains_them(api, data_dir: Path):
    guide = ingest(api, "guide.pdf", make_pdf(PAGES))
    notes = ingest(api, "notes.txt", "Children under five need no ticket.")
    forget_pages(guide["fileId"])
    assert ask(api, "Do children pay to enter?")["sources"][0]["pageSpan"] is None

    out, error = run_command("reindex", "--reextract")
    assert error is None, error
    assert "Read 2 document(s) again from their originals." in out
    source = ask(api, "Do children pay to enter?")["sources"][0]
    assert (source["fileId"], source["pageSpan"]) == (
        guide["fileId"],
        {"firstPage": 2, "lastPage": 2},
    )
    again = api.get(f"/documents/{guide['fileId']}").json()
    assert (again["filename"], again["createdAt"]) == ("guide.pdf", guide["createdAt"])
    assert api.get(f"/documents/{notes['fileId']}").json()["numChunks"] == 1
    assert AuditEvent.objects.filter(actor="command reindex --reextract").count() == 2


def test_documents_without_an_original_are_named_and_left_alone(api, data_dir: Path):
    guide = ingest(api, "guide.pdf", make_pdf(PAGES))
    before = stored_chunks(data_dir)
    shutil.rmtree(data_dir / "originals")  # as for a document import_registry brought in
    out, error = run_command("reindex", "--reextract", guide["fileId"])
    assert error is None, error
    assert f"1 have no original kept (imported from the old registry): {guide['fileId']}" in out
    assert stored_chunks(data_dir) == before


def test_an_unknown_id_is_refused(db, data_dir: Path):
    _, error = run_command("reindex", "--reextract", "no-such-id")
    assert error == "No such document: no-such-id"


def test_check_registry_names_documents_without_an_original_and_removes_leftovers(
    api, data_dir: Path
):
    guide = ingest(api, "guide.pdf", make_pdf(PAGES))
    notes = ingest(api, "notes.txt", "Children under five need no ticket.")
    shutil.rmtree(data_dir / "originals" / guide["fileId"])  # as if imported
    leftover = data_dir / "originals" / "gone" / ("0" * 64)  # a removal that failed
    leftover.parent.mkdir()
    leftover.write_bytes(b"old bytes")
    out = StringIO()
    call_command("check_registry", stdout=out)
    report = out.getvalue()
    assert "1 document without an original kept (imported from the old registry" in report
    assert guide["fileId"] in report and notes["fileId"] not in report
    assert "1 original left over that no document names" in report
    assert "Everything agrees" in report
    call_command("check_registry", "--fix", stdout=StringIO())
    assert not leftover.exists()
    assert (data_dir / "originals" / notes["fileId"]).exists()
