"""Staff browse, search and delete documents in the admin; vectors go with them."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ingest.stores import get_vector_store
from registry.models import Document
from tests.support.client import ingest
from tests.support.commands import run_command
from tests.support.http_server import CannedServer
from tests.support.inspection import vector_file_ids

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
        source=Document.SourceKind.URL, url="https://example.org/apples?x=1&y=<2>"
    )
    listing = staff.get("/admin/registry/document/").content.decode()
    assert "5.3\xa0KB" in listing  # the 5,400-byte cherries, not "5400"
    assert "text/plain" in listing
    assert 'href="https://example.org/apples?x=1&amp;y=&lt;2&gt;"' in listing  # escaped


def test_long_names_and_addresses_are_cut_in_the_list_and_whole_in_their_tooltips(staff, documents):
    name = "Quarterly report of the harbour authority on dredging, " * 4 + "final.pdf"
    url = "https://example.org/" + "reports/" * 20 + "dredging.pdf"
    Document.objects.filter(file_id=documents[0]["fileId"]).update(
        filename=name, source=Document.SourceKind.URL, url=url
    )
    listing = staff.get("/admin/registry/document/").content.decode()
    assert f'<span title="{name}">{name[:59]}…</span>' in listing
    assert f'<a href="{url}" title="{url}" rel="noopener noreferrer">{url[:49]}…</a>' in listing


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


def test_documents_cannot_be_edited_in_the_admin(staff, documents):
    document = Document.objects.first()
    response = staff.post(
        f"/admin/registry/document/{document.pk}/change/", {"filename": "hacked.txt"}
    )
    assert response.status_code == 403
    document.refresh_from_db()
    assert document.filename != "hacked.txt"


def test_while_the_json_registry_is_live_the_admin_does_not_delete(staff, documents, settings):
    settings.USE_JSON_REGISTRY = True
    document = Document.objects.first()
    response = staff.post(f"/admin/registry/document/{document.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403
    assert Document.objects.filter(pk=document.pk).exists()


def page_of(staff, document_id: str, **query: str) -> str:
    pk = Document.objects.get(file_id=document_id).pk
    response = staff.get(f"/admin/registry/document/{pk}/change/", query)
    assert response.status_code == 200
    return response.content.decode()


def long_text(words: int) -> str:
    return " ".join(f"word{n}" for n in range(words))


class TestDocumentPage:
    def test_every_field_is_read_only(self, staff, documents):
        page = page_of(staff, documents[0]["fileId"])
        assert documents[0]["fileId"] in page and "fruit-0.txt" in page
        assert 'name="filename"' not in page and 'name="workspace"' not in page
        assert "sha256" in page and documents[0]["sha256"] in page

    def test_fields_have_names_and_values_people_read(self, staff, documents):
        page = page_of(staff, documents[2]["fileId"])  # the 5,400-byte cherries
        for label in ("Name", "Document id", "Size", "Chunks", "SHA-256", "Created", "Updated"):
            assert f"<label>{label}:</label>" in page, label
        for raw in ("Size bytes", "Num chunks", "Sha256", "File id", "Created at"):
            assert raw not in page, raw
        assert "5.3\xa0KB (5,400 bytes)" in page

    def test_it_shows_the_chunks_a_page_at_a_time(self, api, staff):
        # 3,000 words in 120-word chunks overlapping by 20: 30 chunks, 20 to a page.
        document = ingest(api, "long.txt", long_text(3000))
        first = page_of(staff, document["fileId"])
        assert f"Chunks ({document['chunks']})" in first
        assert 'id="chunk-0"' in first and 'id="chunk-19"' in first
        assert 'id="chunk-20"' not in first
        assert "word0 word1 word2" in first and "120 characters" not in first
        assert "?chunks=2" in first
        second = page_of(staff, document["fileId"], chunks="2")
        assert 'id="chunk-20"' in second and 'id="chunk-0"' not in second
        assert "word2000" in second
        junk = page_of(staff, document["fileId"], chunks="junk")  # page 1
        assert 'id="chunk-0"' in junk and 'id="chunk-20"' not in junk
        holding = page_of(staff, document["fileId"], chunk="25")  # a source link's page
        assert 'id="chunk-25"' in holding and 'id="chunk-0"' not in holding
        for odd in ("99", "-1", "9" * 5000):  # not an index: page 1
            assert 'id="chunk-0"' in page_of(staff, document["fileId"], chunk=odd)

    def test_a_chunk_is_found_by_its_index_when_indexes_have_gaps(self, api, staff):
        document = ingest(api, "long.txt", long_text(3000))
        store = get_vector_store()
        [stored] = store.documents([document["fileId"]])
        gapped = dataclasses.replace(stored, indexes=[i * 10 for i in stored.indexes])
        store.replace([gapped])  # as an imported legacy document's may be numbered
        page = page_of(staff, document["fileId"], chunk="190")  # the 20th chunk: page 1
        assert 'id="chunk-190"' in page and 'id="chunk-0"' in page
        page = page_of(staff, document["fileId"], chunk="200")  # the 21st: page 2
        assert 'id="chunk-200"' in page and 'id="chunk-0"' not in page

    def test_the_chunk_pages_keep_the_list_s_filters(self, api, staff):
        document = ingest(api, "long.txt", long_text(3000))
        filters = "_changelist_filters=q%3Dlong"
        page = page_of(staff, document["fileId"], _changelist_filters="q=long")
        assert f'href="?{filters}&amp;chunks=2#chunks"' in page

    def test_it_says_whether_the_registry_and_the_vectors_agree(self, staff, documents):
        cherries = documents[2]
        page = page_of(staff, cherries["fileId"])
        assert 'class="agrees"' in page
        assert f"the database registry says {cherries['chunks']} chunk" in page
        _delete_vectors_only(cherries["fileId"])
        page = page_of(staff, cherries["fileId"])
        assert 'class="agrees"' not in page
        assert (
            f"document {cherries['fileId']!r} (fruit-2.txt) has no vectors".replace("'", "&#x27;")
            in page
        )
        assert "The vector store holds no chunks of this document." in page


def _delete_vectors_only(file_id: str) -> None:
    """What a lost vector file, or a failed import, leaves: the row without its chunks."""
    get_vector_store().remove_chunks([file_id])  # behind the services' back


ADD = "/admin/registry/document/add/"


def upload_form(name: str, data: bytes, **fields: str) -> dict:
    return {"file": SimpleUploadedFile(name, data), "url": "", "workspace": "default", **fields}


class TestAddDocument:
    def test_an_upload_is_indexed_and_leads_to_its_page(self, staff, data_dir: Path):
        response = staff.post(ADD, upload_form("notes.md", b"# Notes\n\nThe kiln fires at dawn."))
        document = Document.objects.get(filename="notes.md")
        assert response.status_code == 302
        assert response["Location"] == f"/admin/registry/document/{document.pk}/change/"
        assert document.num_chunks == 1 and document.content_type == "text/markdown"
        assert vector_file_ids(data_dir) == [document.file_id]
        page = staff.get(response["Location"]).content.decode()
        assert "Added notes.md: 1 chunk(s) indexed." in page
        assert "The kiln fires at dawn." in page

    def test_the_same_content_again_leads_to_the_document_already_present(
        self, staff, documents, data_dir: Path
    ):
        response = staff.post(ADD, upload_form("copy.txt", b"Bananas are yellow."), follow=True)
        existing = Document.objects.get(file_id=documents[1]["fileId"])
        assert response.redirect_chain == [(f"/admin/registry/document/{existing.pk}/change/", 302)]
        assert "Already present: fruit-1.txt holds the same content" in response.content.decode()
        assert Document.objects.count() == 3 and not Document.objects.filter(filename="copy.txt")

    def test_a_url_is_fetched_and_indexed(self, staff, settings, data_dir: Path):
        settings.INGEST_TRUSTED_NETWORKS = ["127.0.0.1/32"]
        with CannedServer("127.0.0.1") as site:
            site.routes["/guide"] = lambda h: h.respond(
                200,
                b"<html><head><title>Kiln guide</title></head><body><p>Fire slowly.</p></body>",
                [("Content-Type", "text/html; charset=utf-8")],
            )
            url = f"http://127.0.0.1:{site.port}/guide"
            response = staff.post(ADD, {"url": url, "workspace": "kilns"})
        document = Document.objects.get(url=url)
        assert response.status_code == 302
        assert (document.filename, document.workspace, document.source) == (
            "guide",  # the URL's last path segment, as POST /ingest/url names it
            "kilns",
            "url",
        )
        assert vector_file_ids(data_dir) == [document.file_id]

    @pytest.mark.parametrize(
        ("fields", "field", "message"),
        [
            ({"url": ""}, None, "Choose a file to upload, or give a URL to fetch."),
            (
                {"file": SimpleUploadedFile("a.txt", b"text"), "url": "https://example.org/"},
                None,
                "Upload a file or give a URL, not both.",
            ),
            (
                {"file": SimpleUploadedFile("photo.gif", b"GIF89a" + b"\0" * 64)},
                "file",
                "is not an accepted type",
            ),
            ({"file": SimpleUploadedFile("blank.txt", b"   \n")}, "file", "No text to index"),
            (
                {"file": SimpleUploadedFile("ok.txt", b"Fine text."), "workspace": "no spaces"},
                "workspace",
                "Invalid workspace",
            ),
            ({"url": "ftp://example.org/file.txt"}, "url", "use http or https"),
            ({"url": "http://127.0.0.1:9/secret"}, "url", "private"),
        ],
        ids=["nothing", "both", "unsupported", "empty", "workspace", "scheme", "private"],
    )
    def test_errors_are_shown_on_the_form_and_nothing_is_stored(
        self, staff, documents, data_dir: Path, fields, field, message
    ):
        before = sorted(vector_file_ids(data_dir))
        response = staff.post(ADD, {"url": "", "workspace": "default", **fields})
        assert response.status_code == 200
        form = response.context["form"]
        errors = form.errors.get(field or "__all__", [])
        assert any(message.lower() in error.lower() for error in errors), form.errors
        assert message.replace("'", "&#x27;") in response.content.decode()
        assert Document.objects.count() == 3
        assert sorted(vector_file_ids(data_dir)) == before

    def test_an_oversized_upload_is_a_form_error(self, staff, settings, data_dir: Path):
        settings.MAX_UPLOAD_MB = 1
        settings.MAX_UPLOAD_BYTES = 1024 * 1024
        response = staff.post(ADD, upload_form("big.txt", b"word " * 300_000))
        assert response.context["form"].errors["file"] == ["The file is over the 1 MB upload limit"]
        assert not Document.objects.exists()

    def test_a_form_asking_to_clear_the_file_is_a_form_error(self, staff, data_dir: Path):
        response = staff.post(ADD, {"file-clear": "on", "url": "", "workspace": "default"})
        assert response.status_code == 200
        assert response.context["form"].non_field_errors() == [
            "Choose a file to upload, or give a URL to fetch."
        ]

    def test_a_nul_in_the_url_is_one_form_error(self, staff, data_dir: Path):
        response = staff.post(ADD, {"url": "https://example.org/\x00", "workspace": "default"})
        assert response.context["form"].errors["url"] == ["Null characters are not allowed."]

    def test_staff_without_the_add_permission_cannot_add(self, client, data_dir: Path):
        clerk = User.objects.create_user("clerk", password="pw", is_staff=True)
        clerk.user_permissions.add(Permission.objects.get(codename="view_document"))
        client.force_login(clerk)
        assert client.get(ADD).status_code == 403
        assert client.post(ADD, upload_form("a.txt", b"Some text.")).status_code == 403
        assert not Document.objects.exists()


ASK = "/admin/registry/document/ask/"


def test_staff_without_the_view_permission_cannot_read_or_ask(client, documents):
    client.force_login(User.objects.create_user("intern", password="pw", is_staff=True))
    pk = Document.objects.first().pk
    assert client.get(f"/admin/registry/document/{pk}/change/").status_code == 403
    assert client.get(ASK).status_code == 403
    response = client.post(ASK, {"q": "What colour are bananas?", "workspace": "*", "k": 5})
    assert response.status_code == 403


class TestAskPage:
    def test_the_list_links_to_it(self, staff, documents):
        assert f'href="{ASK}"' in staff.get("/admin/registry/document/").content.decode()

    def test_it_answers_with_numbered_sources_linking_to_their_chunks(self, staff, documents):
        page = staff.get(ASK)
        assert page.status_code == 200
        assert '<option value="default" selected>default</option>' in page.content.decode()
        response = staff.post(ASK, {"q": "What colour are bananas?", "workspace": "*", "k": 5})
        html = response.content.decode()
        assert "Bananas are yellow." in html.split('id="sources"')[0]  # the answer
        bananas = Document.objects.get(file_id=documents[1]["fileId"])
        link = f"/admin/registry/document/{bananas.pk}/change/?chunk=0#chunk-0"
        assert f'<li value="1" class="source">\n      <a href="{link}">fruit-1.txt</a>' in html
        target = staff.get(link.split("#")[0]).content.decode()
        assert 'id="chunk-0"' in target and "Bananas are yellow." in target
        # What a source's place means, in words; not a fused rank score nobody can read.
        assert "best match first" in html and "score 0." not in html
        assert "quoted in the answer" in html.split('<li value="2"')[0]

    def test_an_empty_question_is_a_form_error(self, staff, documents):
        for question in ("", "   "):
            response = staff.post(ASK, {"q": question, "workspace": "*", "k": 5})
            assert response.context["form"].errors["q"] == ["This field is required."]
            assert 'id="answer"' not in response.content.decode()

    def test_with_nothing_relevant_it_says_there_is_no_answer(self, staff, documents):
        response = staff.post(
            ASK, {"q": "What is the migration route of arctic terns?", "workspace": "*", "k": 5}
        )
        html = response.content.decode()
        assert "No answer: nothing in the documents of this workspace matches" in html
        assert 'id="sources"' not in html

    def test_an_unknown_workspace_or_k_out_of_range_is_a_form_error(self, staff, documents):
        response = staff.post(ASK, {"q": "bananas", "workspace": "nowhere", "k": 500})
        errors = response.context["form"].errors
        assert "workspace" in errors and "k" in errors


@pytest.mark.json_store_only  # VECTOR_STORE=pgvector refuses to start with the JSON registry
class TestDuringRollback:
    """USE_JSON_REGISTRY=true: the table is not the live registry."""

    @pytest.fixture
    def rollback(self, staff, documents, settings, data_dir: Path):
        run_command("export_registry")  # what an operator does before rolling back
        settings.USE_JSON_REGISTRY = True
        return staff

    def test_every_document_page_says_so(self, rollback, documents):
        pk = Document.objects.first().pk
        pages = (
            "/admin/registry/document/",
            f"/admin/registry/document/{pk}/change/",
            f"/admin/registry/document/{pk}/history/",
            ASK,
        )
        for url in pages:
            page = rollback.get(url).content.decode()
            assert 'id="rollback-banner"' in page, url
            assert "This table is not" in page

    def test_adding_is_refused(self, rollback):
        assert rollback.get(ADD).status_code == 403
        assert rollback.post(ADD, upload_form("new.txt", b"New text.")).status_code == 403
        assert (
            'href="/admin/registry/document/add/"'
            not in rollback.get("/admin/registry/document/").content.decode()
        )

    def test_deleting_is_refused_one_at_a_time_and_in_bulk(self, rollback, data_dir: Path):
        pks = list(Document.objects.values_list("pk", flat=True))
        vectors = sorted(vector_file_ids(data_dir))
        one = rollback.post(f"/admin/registry/document/{pks[0]}/delete/", {"post": "yes"})
        assert one.status_code == 403
        bulk = rollback.post(
            "/admin/registry/document/",
            {"action": "delete_selected", "_selected_action": pks, "post": "yes"},
        )
        assert bulk.status_code == 200  # the action is not offered: nothing happens
        assert 'value="delete_selected"' not in bulk.content.decode()
        assert Document.objects.count() == 3 and sorted(vector_file_ids(data_dir)) == vectors

    def test_asking_reads_the_live_registry(self, rollback):
        response = rollback.post(ASK, {"q": "What colour are bananas?", "workspace": "*", "k": 5})
        assert "Bananas are yellow." in response.content.decode()

    def test_without_a_rollback_there_is_no_banner(self, staff, documents):
        assert 'id="rollback-banner"' not in staff.get("/admin/registry/document/").content.decode()


def test_a_large_table_is_not_counted_on_every_list_page(staff, data_dir: Path):
    """On PostgreSQL the unfiltered list shows the planner's estimate instead of running
    COUNT(*) over every row; a filtered list is still counted exactly."""
    now = timezone.now()
    Document.objects.bulk_create(
        Document(filename=f"doc-{n}.txt", created_at=now, updated_at=now) for n in range(25_000)
    )
    postgres = connection.vendor == "postgresql"
    if postgres:
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE documents")
    with CaptureQueriesContext(connection) as queries:
        listing = staff.get("/admin/registry/document/").content.decode()
    counted = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    shown = int(re.search(r"(\d+) documents", listing).group(1))
    if postgres:
        assert counted == []
        assert 24_000 <= shown <= 26_000
    else:  # SQLite: no estimate to read, so an exact count
        assert len(counted) == 1 and shown == 25_000
    with CaptureQueriesContext(connection) as queries:
        found = staff.get("/admin/registry/document/", {"q": "doc-24999.txt"}).content.decode()
    assert any("COUNT(" in q["sql"].upper() for q in queries.captured_queries)
    assert "1 document" in found and "doc-24999.txt" in found


def test_search_finds_a_whole_id_or_checksum_and_parts_of_names(staff, documents):
    def found(term: str) -> set[str]:
        page = staff.get("/admin/registry/document/", {"q": term}).content.decode()
        return {name for name in ("fruit-0.txt", "fruit-1.txt", "fruit-2.txt") if name in page}

    assert found(documents[1]["fileId"]) == {"fruit-1.txt"}
    assert found(documents[2]["sha256"].upper()) == {"fruit-2.txt"}
    assert found("fruit") == {"fruit-0.txt", "fruit-1.txt", "fruit-2.txt"}
    assert found('"fruit-0"') == {"fruit-0.txt"}
    assert found("fruit 2.txt") == {"fruit-2.txt"}  # every word must match


@pytest.mark.parametrize(
    "url",
    [
        "/admin/",
        "/admin/registry/",
        "/admin/registry/document/",
        "/admin/registry/document/{pk}/change/",
        "/admin/registry/document/{pk}/history/",
        "/admin/registry/document/{pk}/delete/",
        "/admin/registry/document/add/",
        "/admin/registry/document/ask/",
        "/admin/registry/apikey/",
        "/admin/registry/apikey/add/",
    ],
)
def test_every_admin_page_renders_for_staff_and_refuses_everyone_else(staff, documents, url):
    url = url.format(pk=Document.objects.first().pk)
    assert staff.get(url).status_code == 200
    stranger = Client()  # not signed in
    refused = stranger.get(url)
    assert refused.status_code == 302 and refused["Location"].startswith("/admin/login/")


class TestPagesAndOriginals:
    """Issue 33: a paged document's chunks say their pages and open the original there."""

    @pytest.fixture
    def guide(self, api, data_dir: Path) -> dict:
        from tests.support.documents import make_pdf

        pages = ["Opening hours. The museum opens at ten.", "Tickets. Children enter free."]
        return ingest(api, "guide.pdf", make_pdf(pages))

    def test_the_chunks_say_their_page_and_link_the_original_there(self, staff, guide):
        document = Document.objects.get(file_id=guide["fileId"])
        page = staff.get(f"/admin/registry/document/{document.pk}/change/").content.decode()
        original = f"/admin/registry/document/{document.pk}/original/"
        assert f'<a href="{original}">Open the original file</a>' in page
        assert f'<a href="{original}#page=2">p. 2</a>' in page
        served = staff.get(original)
        assert served.status_code == 200
        assert served["Content-Type"] == "application/pdf"
        assert served.content.startswith(b"%PDF-")

    def test_an_answer_s_source_links_its_page(self, staff, guide):
        response = staff.post(ASK, {"q": "Do children pay to enter?", "workspace": "*", "k": 5})
        document = Document.objects.get(file_id=guide["fileId"])
        original = f"/admin/registry/document/{document.pk}/original/"
        assert f'<a class="source-pages" href="{original}#page=2">p. 2</a>' in (
            response.content.decode()
        )

    def test_a_document_without_an_original_says_so(self, staff, documents, data_dir: Path):
        import shutil

        shutil.rmtree(data_dir / "originals")  # as after import_registry: none was kept
        document = Document.objects.get(file_id=documents[0]["fileId"])
        page = staff.get(f"/admin/registry/document/{document.pk}/change/").content.decode()
        assert "No original is kept of this document" in page
        assert staff.get(f"/admin/registry/document/{document.pk}/original/").status_code == 404

    def test_staff_without_the_view_permission_cannot_open_an_original(self, client, guide):
        client.force_login(User.objects.create_user("clerk", password="pw", is_staff=True))
        document = Document.objects.get(file_id=guide["fileId"])
        original = f"/admin/registry/document/{document.pk}/original/"
        assert client.get(original).status_code in (403, 404)
