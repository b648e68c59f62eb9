"""The audit trail (issue 26): every ingest, re-ingest and delete records who (an API
key's name, a staff user, anonymous), what (fileId, filename, workspace), when and from
where, through the API (synchronous and in the background) and through the admin; staff
read it in the admin, read-only; key secrets never reach it."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile

from registry.models import AuditEvent, Document
from tests.support.client import upload
from tests.support.inspection import service_rows
from tests.support.live import LiveService, multipart
from tests.support.processes import running_worker

pytestmark = pytest.mark.django_db(transaction=True)  # the live service's rows, on PostgreSQL


def events() -> list[tuple]:
    return list(
        AuditEvent.objects.order_by("id").values_list(
            "action", "actor", "via", "address", "file_id", "filename", "workspace"
        )
    )


def test_the_api_s_ingest_re_ingest_and_deletes_name_the_key_and_its_address(
    api, api_key, registry_mode
):
    first = upload(api, "tides.md", "# Tides\n\nSpring tides follow the moon.", workspace="sea")
    assert first.status_code == 200
    file_id = first.json()["fileId"]
    again = upload(api, "tides.md", "# Tides\n\nSpring tides follow the moon.", workspace="sea")
    assert again.json()["created"] is False  # the same bytes: nothing stored, nothing said
    newer = upload(api, "tides.md", "# Tides\n\nNeap tides follow the quarter moons.",
                   workspace="sea", file_id=file_id)  # fmt: skip
    assert newer.status_code == 200
    gone = api.post("/delete", {"fileId": file_id}, content_type="application/json")
    assert gone.json()["deleted"] is True
    unknown = api.post("/delete", {"fileId": "never-was"}, content_type="application/json")
    assert unknown.json()["deleted"] is False  # nothing deleted, nothing said
    other = upload(api, "harbours.txt", "Harbours shelter boats.")
    assert api.delete(f"/documents/{other.json()['fileId']}").status_code == 200

    who = f"key tests ({api_key[:12]}…)"
    assert events() == [
        ("ingest", who, "api", "127.0.0.1", file_id, "tides.md", "sea"),
        ("re-ingest", who, "api", "127.0.0.1", file_id, "tides.md", "sea"),
        ("delete", who, "api", "127.0.0.1", file_id, "tides.md", "sea"),
        ("ingest", who, "api", "127.0.0.1", other.json()["fileId"], "harbours.txt", "default"),
        ("delete", who, "api", "127.0.0.1", other.json()["fileId"], "harbours.txt", "default"),
    ]
    stored = " ".join(str(value) for row in events() for value in row)
    assert api_key not in stored and api_key[12:] not in stored  # never the secret


def test_without_keys_the_actor_is_anonymous(client, settings, data_dir):
    settings.API_KEYS_REQUIRED = False
    response = upload(client, "note.txt", "A note without a key.")
    assert response.status_code == 200
    assert [row[:3] for row in events()] == [("ingest", "anonymous", "api")]


def test_the_admin_s_add_and_deletes_name_the_staff_user(client, data_dir):
    client.force_login(User.objects.create_superuser("ines", "ines@example.com", "pw"))
    for name in ("a.txt", "b.txt", "c.txt"):
        note = SimpleUploadedFile(name, f"The note {name} on tides.".encode())
        form = {"file": note, "url": "", "workspace": "default"}
        added = client.post("/admin/registry/document/add/", form)
        assert added.status_code == 302, added.content.decode()[:500]
    a, b, c = (Document.objects.get(filename=n) for n in ("a.txt", "b.txt", "c.txt"))
    deleted = client.post(f"/admin/registry/document/{a.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    bulk = client.post(
        "/admin/registry/document/",
        {"action": "delete_selected", "_selected_action": [b.pk, c.pk], "post": "yes"},
    )
    assert bulk.status_code == 302
    rows = [(action, actor, via, name) for action, actor, via, _, _, name, _ in events()]
    assert rows[:3] == [("ingest", "staff ines", "admin", n) for n in ("a.txt", "b.txt", "c.txt")]
    assert rows[3] == ("delete", "staff ines", "admin", "a.txt")
    assert sorted(rows[4:]) == [("delete", "staff ines", "admin", n) for n in ("b.txt", "c.txt")]


def test_staff_read_the_trail_and_a_document_s_events_but_change_nothing(api, client):
    file_id = upload(api, "tides.md", "# Tides\n\nSpring tides.").json()["fileId"]
    upload(api, "harbours.txt", "Harbours shelter boats.")
    client.force_login(User.objects.create_superuser("ines", "ines@example.com", "pw"))
    document = Document.objects.get(file_id=file_id)
    page = client.get(f"/admin/registry/document/{document.pk}/change/")
    link = f"/admin/registry/auditevent/?file_id={file_id}"
    assert f'href="{link}"' in page.content.decode()
    history = client.get(link).content.decode()
    assert "tides.md" in history and "harbours.txt" not in history
    event = AuditEvent.objects.get(file_id=file_id)
    assert client.get("/admin/registry/auditevent/add/").status_code == 403
    assert (
        client.post(
            f"/admin/registry/auditevent/{event.pk}/change/", {"actor": "someone else"}
        ).status_code
        == 403
    )
    assert (
        client.post(f"/admin/registry/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.get(pk=event.pk).actor.startswith("key tests")


def test_a_background_ingest_is_recorded_when_its_job_stores_the_document(
    start_live_service: Callable[..., LiveService],
):
    service = start_live_service()
    body, headers = multipart("tides.md", b"# Tides\n\nSpring tides.", {"async": "true"})
    status, _, job = service.request("POST", "/ingest/file", body, headers)
    assert status == 202, job
    query = "SELECT action, actor, via, file_id FROM audit_events"
    assert service_rows(service.env, query, []) == []  # queued: nothing stored yet
    with running_worker(service.env):
        deadline = time.monotonic() + 90
        while service.call("GET", f"/jobs/{job['jobId']}")[1]["status"] != "succeeded":
            assert time.monotonic() < deadline, "the job did not succeed"
            time.sleep(0.2)
    ((action, actor, via, file_id),) = service_rows(service.env, query, [])
    assert (action, via, file_id) == ("ingest", "api (background)", job["fileId"])
    assert actor.startswith("key ") and service.api_key not in actor
