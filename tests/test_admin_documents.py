"""Staff browse, search and delete documents in the admin; vectors go with them."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth.models import User

from registry.models import Document
from tests.helpers import ingest, vector_file_ids

pytestmark = pytest.mark.django_db(transaction=True)  # vectors go after the commit


@pytest.fixture
def staff(client):
    client.force_login(User.objects.create_superuser("staff", "staff@example.com", "pw"))
    return client


@pytest.fixture
def documents(api, data_dir: Path) -> list[dict]:
    texts = ["Apples grow on trees.", "Bananas are yellow.", "Cherries are red. " * 300]
    return [ingest(api, f"fruit-{n}.txt", text) for n, text in enumerate(texts)]


def test_staff_can_browse_and_search(staff, documents):
    listing = staff.get("/admin/registry/document/")
    assert listing.status_code == 200
    for document in documents:
        assert document["filename"] in listing.content.decode()
    found = staff.get("/admin/registry/document/", {"q": "fruit-1"}).content.decode()
    assert "fruit-1.txt" in found and "fruit-0.txt" not in found


def test_the_list_shows_sizes_for_people_types_and_source_links(staff, documents):
    Document.objects.filter(file_id=documents[0]["fileId"]).update(
        source=Document.Source.URL, url="https://example.org/apples?x=1&y=<2>"
    )
    listing = staff.get("/admin/registry/document/").content.decode()
    assert "5.3\xa0KB" in listing  # the 5,400-byte cherries, not "5400"
    assert "text/plain" in listing
    assert 'href="https://example.org/apples?x=1&amp;y=&lt;2&gt;"' in listing  # escaped


def test_delete_removes_vectors_even_for_bulk_admin_delete(staff, documents, data_dir: Path):
    doomed = [d for d in documents if d["filename"] != "fruit-0.txt"]
    pks = Document.objects.filter(file_id__in=[d["fileId"] for d in doomed]).values_list(
        "pk", flat=True
    )
    response = staff.post(
        "/admin/registry/document/",
        {"action": "delete_selected", "_selected_action": list(pks), "post": "yes"},
    )
    assert response.status_code == 302
    assert list(Document.objects.values_list("filename", flat=True)) == ["fruit-0.txt"]
    assert set(vector_file_ids(data_dir)) == {documents[0]["fileId"]}


def test_delete_of_one_document_in_the_admin_removes_its_vectors(staff, documents, data_dir):
    document = Document.objects.get(file_id=documents[0]["fileId"])
    response = staff.post(f"/admin/registry/document/{document.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert documents[0]["fileId"] not in vector_file_ids(data_dir)
    assert Document.objects.count() == 2


def test_documents_cannot_be_added_or_edited_in_the_admin(staff, documents):
    document = Document.objects.first()
    assert staff.get("/admin/registry/document/add/").status_code == 403
    staff.post(f"/admin/registry/document/{document.pk}/change/", {"filename": "hacked.txt"})
    document.refresh_from_db()
    assert document.filename != "hacked.txt"


def test_while_the_json_registry_is_live_the_admin_does_not_delete(staff, documents, settings):
    settings.USE_JSON_REGISTRY = True
    document = Document.objects.first()
    response = staff.post(f"/admin/registry/document/{document.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()
