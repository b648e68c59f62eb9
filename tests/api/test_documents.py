"""GET /documents, GET and DELETE /documents/{file_id}, POST /delete."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.client import ask, ingest
from tests.support.inspection import vector_file_ids

pytestmark = pytest.mark.django_db(transaction=True)  # deletes act once they commit


class TestListing:
    def test_it_pages_newest_first_with_the_total(self, api, registry_mode):
        ids = [
            ingest(api, "notes.txt", f"Document number {n} talks about topic {n}.")["fileId"]
            for n in range(5)
        ]
        page = api.get("/documents", {"limit": 2, "offset": 1}).json()
        assert page["total"] == 5
        assert (page["limit"], page["offset"]) == (2, 1)
        assert len(page["items"]) == 2
        everything = api.get("/documents", {"limit": 500}).json()["items"]
        assert sorted(item["fileId"] for item in everything) == sorted(ids)
        stamps = [(item["createdAt"], item["fileId"]) for item in everything]
        assert stamps == sorted(stamps, reverse=True)
        assert page["items"] == everything[1:3]

    def test_it_filters_by_workspace(self, api, registry_mode):
        ingest(api, "notes.txt", "Alpha text about apples.", "fruit")
        ingest(api, "notes.txt", "Beta text about brakes.", "cars")
        page = api.get("/documents", {"workspace": "cars"}).json()
        assert page["total"] == 1
        assert page["items"][0]["workspace"] == "cars"
        assert api.get("/documents").json()["total"] == 0  # the default workspace
        everywhere = api.get("/documents", {"workspace": "*"}).json()
        assert sorted(item["workspace"] for item in everywhere["items"]) == ["cars", "fruit"]

    @pytest.mark.parametrize(
        "query",
        [
            {"limit": 0},
            {"limit": 501},
            {"offset": -1},
            {"limit": "ten"},
            {"offset": "107805642203481571328"},  # beyond what the database counts to
        ],
    )
    def test_bad_pagination_gets_422(self, api, query):
        response = api.get("/documents", query)
        assert response.status_code == 422
        assert response.json()["detail"].startswith("Invalid request:")

    def test_a_malformed_workspace_filter_gets_400(self, api):
        assert api.get("/documents", {"workspace": "../x"}).status_code == 400


class TestOneDocument:
    @pytest.mark.parametrize("method", ["get", "delete"])
    def test_an_id_no_document_can_have_gets_422(self, api, method):
        response = getattr(api, method)("/documents/a%00b")
        assert response.status_code == 422
        assert "fileId" in response.json()["detail"]

    def test_get_returns_it_and_404_for_unknown(self, api, registry_mode):
        document = ingest(api, "notes.txt", "Some text about gardening tools.")
        answer_only = ("ok", "chunks", "created", "copyOf")  # the ingest's own fields
        stored = {key: document[key] for key in document if key not in answer_only}
        assert api.get(f"/documents/{document['fileId']}").json() == stored
        missing = api.get("/documents/does-not-exist")
        assert missing.status_code == 404
        assert missing.json() == {"detail": "Document 'does-not-exist' not found"}


class TestDelete:
    def test_post_delete_removes_the_row_and_every_vector(self, api, registry_mode, data_dir: Path):
        keep = ingest(api, "notes.txt", "Keep this document about rivers and lakes.")
        gone = ingest(api, "notes.txt", "Remove this document about mountains. " * 200)
        assert gone["numChunks"] > 1
        response = api.post("/delete", {"fileId": gone["fileId"]}, content_type="application/json")
        assert response.status_code == 200
        assert response.json() == {
            "ok": True,
            "removed": gone["numChunks"],
            "deleted": True,
            "fileId": gone["fileId"],
            "filename": gone["filename"],
        }
        assert api.get(f"/documents/{gone['fileId']}").status_code == 404
        assert set(vector_file_ids(data_dir)) == {keep["fileId"]}
        answer = ask(api, "mountains")
        assert gone["fileId"] not in {source["fileId"] for source in answer["sources"]}

    def test_http_delete_does_the_same(self, api, registry_mode, data_dir: Path):
        document = ingest(api, "notes.txt", "A document about ships and harbours.")
        response = api.delete(f"/documents/{document['fileId']}")
        assert response.status_code == 200
        assert (response.json()["removed"], response.json()["deleted"]) == (1, True)
        assert api.get("/documents").json()["total"] == 0
        assert vector_file_ids(data_dir) == []

    def test_post_delete_of_an_unknown_id_removes_nothing_as_the_old_service_did(
        self, api, registry_mode, data_dir: Path
    ):
        document = ingest(api, "notes.txt", "A document about bridges.")
        response = api.post("/delete", {"fileId": "nope"}, content_type="application/json")
        assert response.status_code == 200
        assert response.json() == {
            "ok": True,
            "removed": 0,
            "deleted": False,
            "fileId": "nope",
            "filename": None,
        }
        assert vector_file_ids(data_dir) == [document["fileId"]] * document["numChunks"]

    def test_http_delete_of_an_unknown_id_is_404_and_changes_nothing(
        self, api, registry_mode, data_dir: Path
    ):
        document = ingest(api, "notes.txt", "A document about bridges.")
        response = api.delete("/documents/nope")
        assert response.status_code == 404
        assert response.json() == {"detail": "Document 'nope' not found"}
        assert vector_file_ids(data_dir) == [document["fileId"]] * document["numChunks"]

    def test_this_service_s_own_file_id_key_is_accepted_too(self, api, data_dir: Path):
        document = ingest(api, "notes.txt", "A document about tunnels.")
        response = api.post(
            "/delete", {"file_id": document["fileId"]}, content_type="application/json"
        )
        assert response.json()["deleted"] is True

    @pytest.mark.parametrize(
        # (a number is its decimal string, as the old service read it)
        "body",
        [{}, {"fileId": ""}, {"fileId": "x" * 65}, {"fileId": [5]}, {"fileId": "a\x00b"}],
    )
    def test_a_malformed_delete_gets_422(self, api, body):
        response = api.post("/delete", body, content_type="application/json")
        assert response.status_code == 422

    def test_the_same_content_can_be_ingested_again_after_delete(self, api, data_dir: Path):
        first = ingest(api, "notes.txt", "Recycled text about compost.")
        api.delete(f"/documents/{first['fileId']}")
        second = ingest(api, "notes.txt", "Recycled text about compost.")
        assert second["fileId"] != first["fileId"]
