"""Each document's original is kept (issue 33): served as it was uploaded, scoped like
the document (tests/api/test_key_scopes.py), replaced with its re-ingest, deleted with
it, and never left behind by a write that failed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.support.client import ingest, upload
from tests.support.documents import make_pdf
from tests.support.faults import refusing
from tests.support.inspection import kept_originals

pytestmark = pytest.mark.django_db

POLICY = b"Passwords must be rotated every ninety days."


def test_the_original_is_served_as_it_was_uploaded(api, registry_mode, data_dir: Path):
    document = ingest(api, "policy.txt", POLICY)
    response = api.get(f"/documents/{document['fileId']}/file")
    assert response.status_code == 200
    assert response.content == POLICY
    assert response["Content-Type"] == "text/plain"
    assert response["Content-Disposition"] == 'attachment; filename="policy.txt"'
    assert response["Content-Security-Policy"] == "sandbox"
    assert kept_originals(data_dir) == [
        f"{document['fileId']}/{hashlib.sha256(POLICY).hexdigest()}"
    ]


def test_a_pdf_opens_in_the_browser_where_a_page_can_be_cited(api, data_dir: Path):
    data = make_pdf(["Page one.", "Page two."])
    document = ingest(api, "guide.pdf", data)
    response = api.get(f"/documents/{document['fileId']}/file")
    assert response.content == data
    assert response["Content-Disposition"] == 'inline; filename="guide.pdf"'


def test_a_re_ingest_replaces_the_original_and_a_delete_removes_it(api, data_dir: Path):
    ingest_first = upload(api, "policy.txt", POLICY, file_id="policy")
    assert ingest_first.status_code == 200
    newer = b"Passwords must be rotated every thirty days."
    assert upload(api, "policy.txt", newer, file_id="policy").status_code == 200
    assert api.get("/documents/policy/file").content == newer
    assert kept_originals(data_dir) == [f"policy/{hashlib.sha256(newer).hexdigest()}"]
    assert api.delete("/documents/policy").status_code == 200
    assert api.get("/documents/policy/file").status_code == 404
    assert kept_originals(data_dir) == []


def test_a_write_that_fails_keeps_no_original(api, registry_mode, data_dir: Path):
    with refusing("INSERT", "audit_events"):
        assert upload(api, "policy.txt", POLICY).status_code == 503
    assert kept_originals(data_dir) == []
    # A re-ingest that fails leaves the document's original as it was.
    assert upload(api, "policy.txt", POLICY, file_id="policy").status_code == 200
    with refusing("INSERT", "audit_events"):
        assert upload(api, "other.txt", b"Other words.", file_id="policy").status_code == 503
    assert api.get("/documents/policy/file").content == POLICY
    assert kept_originals(data_dir) == [f"policy/{hashlib.sha256(POLICY).hexdigest()}"]


def test_a_delete_that_fails_keeps_the_original(api, data_dir: Path):
    document = ingest(api, "policy.txt", POLICY)
    with refusing("INSERT", "audit_events"):
        assert api.delete(f"/documents/{document['fileId']}").status_code == 503
    assert api.get(f"/documents/{document['fileId']}/file").content == POLICY
