"""GET /documents, GET and DELETE /documents/{file_id}, POST /delete."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import vector_file_ids

pytestmark = pytest.mark.django_db(transaction=True)  # deletes act once they commit


def ingest(api, text: str, workspace: str = "default") -> dict:
    upload = SimpleUploadedFile(
        f"{hashlib.sha256(text.encode()).hexdigest()[:8]}.txt", text.encode()
    )
    response = api.post("/ingest/file", {"file": upload, "workspace": workspace})
    assert response.status_code == 201, response.json()
    return response.json()


class TestListing:
    def test_it_pages_newest_first_with_the_total(self, api, registry_mode):
        ids = [
            ingest(api, f"Document number {n} talks about topic {n}.")["file_id"] for n in range(5)
        ]
        page = api.get("/documents", {"limit": 2, "offset": 1}).json()
        assert page["total"] == 5
        assert (page["limit"], page["offset"]) == (2, 1)
        assert len(page["items"]) == 2
        everything = api.get("/documents", {"limit": 500}).json()["items"]
        assert sorted(item["file_id"] for item in everything) == sorted(ids)
        stamps = [(item["created_at"], item["file_id"]) for item in everything]
        assert stamps == sorted(stamps, reverse=True)
        assert page["items"] == everything[1:3]

    def test_it_filters_by_workspace(self, api, registry_mode):
        ingest(api, "Alpha text about apples.", "fruit")
        ingest(api, "Beta text about brakes.", "cars")
        page = api.get("/documents", {"workspace": "cars"}).json()
        assert page["total"] == 1
        assert page["items"][0]["workspace"] == "cars"

    @pytest.mark.parametrize(
        "query", [{"limit": 0}, {"limit": 501}, {"offset": -1}, {"limit": "ten"}]
    )
    def test_bad_pagination_gets_422(self, api, query):
        response = api.get("/documents", query)
        assert response.status_code == 422
        assert response.json()["detail"].startswith("Invalid request:")

    def test_a_malformed_workspace_filter_gets_400(self, api):
        assert api.get("/documents", {"workspace": "../x"}).status_code == 400


class TestOneDocument:
    def test_get_returns_it_and_404_for_unknown(self, api, registry_mode):
        document = ingest(api, "Some text about gardening tools.")
        assert api.get(f"/documents/{document['file_id']}").json() == document
        missing = api.get("/documents/does-not-exist")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Document 'does-not-exist' not found"}


class TestDelete:
    def test_post_delete_removes_the_row_and_every_vector(self, api, registry_mode, data_dir: Path):
        keep = ingest(api, "Keep this document about rivers and lakes.")
        gone = ingest(api, "Remove this document about mountains. " * 200)
        assert gone["num_chunks"] > 1
        response = api.post(
            "/delete", {"file_id": gone["file_id"]}, content_type="application/json"
        )
        assert response.status_code == 200
        assert response.json() == {
            "deleted": True,
            "file_id": gone["file_id"],
            "filename": gone["filename"],
        }
        assert api.get(f"/documents/{gone['file_id']}").status_code == 404
        assert set(vector_file_ids(data_dir)) == {keep["file_id"]}
        answer = api.post("/ask", {"question": "mountains"}, content_type="application/json").json()
        assert gone["file_id"] not in {source["file_id"] for source in answer["sources"]}

    def test_http_delete_does_the_same(self, api, registry_mode, data_dir: Path):
        document = ingest(api, "A document about ships and harbours.")
        assert api.delete(f"/documents/{document['file_id']}").status_code == 200
        assert api.get("/documents").json()["total"] == 0
        assert vector_file_ids(data_dir) == []

    def test_deleting_an_unknown_id_is_404_and_changes_nothing(
        self, api, registry_mode, data_dir: Path
    ):
        document = ingest(api, "A document about bridges.")
        for response in (
            api.post("/delete", {"file_id": "nope"}, content_type="application/json"),
            api.delete("/documents/nope"),
        ):
            assert response.status_code == 404
            assert response.json()["detail"] == "Document 'nope' not found"
        assert vector_file_ids(data_dir) == [document["file_id"]] * document["num_chunks"]

    @pytest.mark.parametrize("body", [{}, {"file_id": ""}, {"file_id": "x" * 65}, {"file_id": 5}])
    def test_a_malformed_delete_gets_422(self, api, body):
        response = api.post("/delete", body, content_type="application/json")
        assert response.status_code == 422

    def test_the_same_content_can_be_ingested_again_after_delete(self, api, data_dir: Path):
        first = ingest(api, "Recycled text about compost.")
        api.delete(f"/documents/{first['file_id']}")
        second = ingest(api, "Recycled text about compost.")
        assert second["file_id"] != first["file_id"]
