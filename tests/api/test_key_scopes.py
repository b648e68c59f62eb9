"""Who may see what (issue 26): every endpoint against six callers, over HTTP, with each
registry live (and, as the suite runs, on SQLite and on PostgreSQL).

The callers, each asking about the workspace `eng`:

- unscoped: a key of every workspace that may write (every key made before scopes);
- inside: a key of `eng` and `docs` that may write;
- outside: a key of `hr` only that may write;
- read-only: a key of `eng` that may only read;
- revoked: an unscoped key, revoked;
- anonymous: no key, with API_KEYS_REQUIRED=false.

Each row of MATRIX is one request, and says what each caller gets: the status, and what
the body holds (the names a list shows, the detail of an error, the sources of an
answer …). The rows run in order in a fresh registry per caller; the last one reads
what is left, so a refused write is seen to have changed nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from registry.backends import get_backend
from registry.models import ApiKey, AuditEvent
from tests.support.http_server import CannedServer
from tests.support.live import multipart
from tests.support.processes import run_manage

pytestmark = pytest.mark.django_db(transaction=True)

CALLERS = ("unscoped", "inside", "outside", "read-only", "revoked", "anonymous")
SCOPES = {  # caller: (workspaces, None for every one; access)
    "unscoped": (None, "write"),
    "inside": (["eng", "docs"], "write"),
    "outside": (["hr"], "write"),
    "read-only": (["eng"], "read"),
    "revoked": (None, "write"),
}
QUESTION = "When do the holidays start?"
DOCUMENTS = {  # name: workspace; each says when its team's holidays start
    "default.txt": "default",
    "eng.txt": "eng",
    "eng-old.txt": "eng",
    "hr.txt": "hr",
}
LATER = {"eng-later.txt": "eng", "hr-later.txt": "hr"}  # queued, never run: jobs to read

REVOKED = (403, "This API key has been revoked")
NO_ENG = (403, "This API key has no access to workspace 'eng'")
NO_HR = (403, "This API key has no access to workspace 'hr'")
READ_ONLY_INGEST = (403, "This API key is read-only: ingesting needs the write permission")
READ_ONLY_DELETE = (403, "This API key is read-only: deleting needs the write permission")
ENG_ALL = ["eng-later.txt", "eng-old.txt", "eng.txt"]
HR_ALL = ["hr-later.txt", "hr.txt"]
EVERY = sorted([*DOCUMENTS, *LATER])


def _key(name: str, workspaces: list[str] | None, access: str, revoked: bool = False) -> str:
    api_key = ApiKey(
        name=name, all_workspaces=workspaces is None, workspaces=workspaces or [], access=access
    )
    api_key.full_clean(exclude=["prefix", "key_hash"])
    raw = api_key.set_new_key()
    api_key.revoked_at = timezone.now() if revoked else None
    api_key.save()
    return raw


@dataclass
class World:
    """The documents and jobs every caller meets, by name."""

    ids: dict[str, str]
    jobs: dict[str, str]
    site: CannedServer


def names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(item.get("filename") or item.get("name") for item in items)


def error(response: Any) -> tuple[int, str]:
    return response.status_code, response.json()["detail"]


def hide_ids(detail: str, world: World) -> str:
    """An error's detail with the ids of this run as ID."""
    for file_id in [*world.ids.values(), *world.jobs.values()]:
        detail = detail.replace(file_id, "ID")
    return detail


def build(admin: Client, site: CannedServer) -> World:
    ids, jobs = {}, {}
    for name, workspace in DOCUMENTS.items():
        team = name.removesuffix(".txt")
        text = f"The holidays start in spring for the {team} team. Staff book them early."
        response = admin.post(
            "/ingest/file",
            {"file": SimpleUploadedFile(name, text.encode()), "workspace": workspace},
        )
        assert response.status_code == 200, response.json()
        ids[name] = response.json()["fileId"]
    for name, workspace in LATER.items():
        data = f"Later: the {name} notes.".encode()
        response = admin.post(
            "/ingest/file?async=true",
            {"file": SimpleUploadedFile(name, data), "workspace": workspace},
        )
        assert response.status_code == 202, response.json()
        jobs[name], ids[name] = response.json()["jobId"], response.json()["fileId"]
    return World(ids, jobs, site)


def _listed(path: str) -> Callable[[Client, World], Any]:
    """GET a list (/documents, /jobs): the names of its items."""

    def request(client: Client, world: World) -> Any:
        response = client.get(path)
        if response.status_code != 200:
            return error(response)
        return 200, names(response.json()["items"])

    return request


def _document(method: str, name: str) -> Callable[[Client, World], Any]:
    """GET or DELETE /documents/{the id of `name`}: the document's name, or the error."""

    def request(client: Client, world: World) -> Any:
        response = getattr(client, method)(f"/documents/{world.ids[name]}")
        if response.status_code == 200:
            return 200, response.json()["filename"]
        return response.status_code, hide_ids(response.json()["detail"], world)

    return request


def _ask(**extra: Any) -> Callable[[Client, World], Any]:
    def request(client: Client, world: World) -> Any:
        response = client.post("/ask", {"q": QUESTION, **extra}, content_type="application/json")
        if response.status_code != 200:
            return error(response)
        return 200, names(response.json()["sources"])

    return request


def _ask_streamed(client: Client, world: World) -> Any:
    body = {"q": QUESTION, "workspace": "*", "stream": True}
    response = client.post("/ask", body, content_type="application/json")
    if response.status_code != 200:
        return error(response)
    events = b"".join(response).decode().split("\n\n")
    done = next(e for e in events if e.startswith("event: done"))
    return 200, names(orjson.loads(done.split("data: ", 1)[1])["sources"])


def _upload(name: str, **fields: str) -> Callable[[Client, World], Any]:
    def request(client: Client, world: World) -> Any:
        data = f"Uploaded as {name}, {sorted(fields.items())}.".encode()
        form: dict[str, Any] = {"file": SimpleUploadedFile(name, data)}
        form.update({k: world.ids.get(v, v) if k == "fileId" else v for k, v in fields.items()})
        response = client.post("/ingest/file", form)
        if response.status_code == 200:
            body = response.json()
            return 200, (body["filename"], body["workspace"])
        if response.status_code == 202:
            return 202, (response.json()["filename"], response.json()["workspace"])
        return response.status_code, hide_ids(response.json()["detail"], world)

    return request


def _fetch(client: Client, world: World) -> Any:
    body = {"fileUrl": world.site.url("/page"), "workspace": "eng", "filename": "page.txt"}
    response = client.post("/ingest/url", body, content_type="application/json")
    if response.status_code == 200:
        return 200, (response.json()["filename"], response.json()["workspace"])
    return error(response)


def _original(name: str) -> Callable[[Client, World], Any]:
    """GET /documents/{the id of `name`}/file: the bytes kept, or the error."""

    def request(client: Client, world: World) -> Any:
        response = client.get(f"/documents/{world.ids[name]}/file")
        if response.status_code == 200:
            return 200, response.content.decode().split(" for the ")[1]
        return response.status_code, hide_ids(response.json()["detail"], world)

    return request


def _job(name: str) -> Callable[[Client, World], Any]:
    def request(client: Client, world: World) -> Any:
        response = client.get(f"/jobs/{world.jobs[name]}")
        if response.status_code == 200:
            return 200, (response.json()["filename"], response.json()["status"])
        return response.status_code, hide_ids(response.json()["detail"], world)

    return request


def _old_delete(name: str) -> Callable[[Client, World], Any]:
    def request(client: Client, world: World) -> Any:
        body = {"fileId": world.ids[name]}
        response = client.post("/delete", body, content_type="application/json")
        if response.status_code != 200:
            return error(response)
        return 200, (response.json()["deleted"], response.json()["removed"] > 0)

    return request


def _health(client: Client, world: World) -> Any:
    return client.get("/health").status_code, None


def _left(client: Client, world: World) -> Any:
    """What the registry holds at the end, read by no caller at all."""
    records = get_backend().list(limit=100)
    return 200, sorted((record.filename, record.workspace) for record in records)


def row(unscoped, inside, outside, read_only, anonymous=None, revoked=REVOKED) -> dict:
    return {
        "unscoped": unscoped,
        "inside": inside,
        "outside": outside,
        "read-only": read_only,
        "revoked": revoked,
        "anonymous": unscoped if anonymous is None else anonymous,
    }


NOT_FOUND = (404, "Document 'ID' not found")
JOB_NOT_FOUND = (404, "Job 'ID' not found")
START = sorted([*DOCUMENTS.items(), *LATER.items()])

# The rows run in this order, each caller in a registry of its own.
MATRIX: list[tuple[str, Callable[[Client, World], Any], dict]] = [
    ("GET /health", _health, row(*[(200, None)] * 4, revoked=(200, None))),
    ("GET /documents?workspace=eng", _listed("/documents?workspace=eng"),
        row((200, ENG_ALL), (200, ENG_ALL), NO_ENG, (200, ENG_ALL))),
    ("GET /documents", _listed("/documents"),
        row((200, ["default.txt"]), (200, ENG_ALL), (200, HR_ALL), (200, ENG_ALL))),
    ("GET /documents?workspace=*", _listed("/documents?workspace=*"),
        row((200, EVERY), (200, ENG_ALL), (200, HR_ALL), (200, ENG_ALL))),
    ("GET /documents?workspace=docs (in scope, empty)", _listed("/documents?workspace=docs"),
        row((200, []), (200, []), (403, "This API key has no access to workspace 'docs'"),
            (403, "This API key has no access to workspace 'docs'"))),
    ("GET /documents/{eng.txt}", _document("get", "eng.txt"),
        row((200, "eng.txt"), (200, "eng.txt"), NOT_FOUND, (200, "eng.txt"))),
    ("GET /documents/{hr.txt}", _document("get", "hr.txt"),
        row((200, "hr.txt"), NOT_FOUND, (200, "hr.txt"), NOT_FOUND)),
    ("GET /documents/{eng.txt}/file", _original("eng.txt"),
        row((200, "eng team. Staff book them early."), (200, "eng team. Staff book them early."),
            NOT_FOUND, (200, "eng team. Staff book them early."))),
    ("GET /documents/{hr.txt}/file", _original("hr.txt"),
        row((200, "hr team. Staff book them early."), NOT_FOUND,
            (200, "hr team. Staff book them early."), NOT_FOUND)),
    ("POST /ask workspace=eng", _ask(workspace="eng"),
        row((200, ["eng-old.txt", "eng.txt"]), (200, ["eng-old.txt", "eng.txt"]), NO_ENG,
            (200, ["eng-old.txt", "eng.txt"]))),
    ("POST /ask", _ask(),
        row((200, ["default.txt"]), (200, ["eng-old.txt", "eng.txt"]), (200, ["hr.txt"]),
            (200, ["eng-old.txt", "eng.txt"]))),
    ("POST /ask workspace=*", _ask(workspace="*"),
        row((200, ["default.txt", "eng-old.txt", "eng.txt", "hr.txt"]),
            (200, ["eng-old.txt", "eng.txt"]), (200, ["hr.txt"]),
            (200, ["eng-old.txt", "eng.txt"]))),
    ("POST /ask workspace=* stream", _ask_streamed,
        row((200, ["default.txt", "eng-old.txt", "eng.txt", "hr.txt"]),
            (200, ["eng-old.txt", "eng.txt"]), (200, ["hr.txt"]),
            (200, ["eng-old.txt", "eng.txt"]))),
    ("GET /jobs/{eng-later}", _job("eng-later.txt"),
        row((200, ("eng-later.txt", "queued")), (200, ("eng-later.txt", "queued")),
            JOB_NOT_FOUND, (200, ("eng-later.txt", "queued")))),
    ("GET /jobs", _listed("/jobs"),
        row((200, ["eng-later.txt", "hr-later.txt"]), (200, ["eng-later.txt"]),
            (200, ["hr-later.txt"]), (200, ["eng-later.txt"]))),
    ("GET /jobs?workspace=hr", _listed("/jobs?workspace=hr"),
        row((200, ["hr-later.txt"]), NO_HR, (200, ["hr-later.txt"]), NO_HR)),
    ("POST /ingest/file workspace=eng", _upload("new.txt", workspace="eng"),
        row((200, ("new.txt", "eng")), (200, ("new.txt", "eng")), NO_ENG, READ_ONLY_INGEST)),
    ("POST /ingest/file (no workspace)", _upload("bare.txt"),
        row((200, ("bare.txt", "default")),
            (400, "Name the workspace to ingest into: this API key writes to 'docs', 'eng'"),
            (200, ("bare.txt", "hr")), READ_ONLY_INGEST)),
    ("POST /ingest/file workspace=eng async",
        _upload("queued.txt", workspace="eng", **{"async": "true"}),
        row((202, ("queued.txt", "eng")), (202, ("queued.txt", "eng")), NO_ENG,
            READ_ONLY_INGEST)),
    ("POST /ingest/file fileId={hr.txt} workspace=eng",
        _upload("taken.txt", workspace="eng", fileId="hr.txt"),
        row((200, ("taken.txt", "eng")), (409, "fileId 'ID' cannot be used: choose another"),
            NO_ENG, READ_ONLY_INGEST)),
    ("POST /ingest/url workspace=eng", _fetch,
        row((200, ("page.txt", "eng")), (200, ("page.txt", "eng")), NO_ENG, READ_ONLY_INGEST)),
    ("DELETE /documents/{eng-old.txt}", _document("delete", "eng-old.txt"),
        row((200, "eng-old.txt"), (200, "eng-old.txt"), NOT_FOUND, READ_ONLY_DELETE)),
    ("POST /delete {default.txt}", _old_delete("default.txt"),
        row((200, (True, True)), (200, (False, False)), (200, (False, False)),
            READ_ONLY_DELETE)),
]  # fmt: skip


def _after(caller: str) -> list[tuple[str, str]]:
    """What the registry holds after the rows, for this caller: the rows it may write
    changed it, the refused ones did not."""
    left = dict(START)
    wrote = {
        "unscoped": {"new.txt": "eng", "bare.txt": "default", "queued.txt": "eng",
                     "page.txt": "eng"},
        "inside": {"new.txt": "eng", "queued.txt": "eng", "page.txt": "eng"},
        "outside": {"bare.txt": "hr"},
    }.get(caller if caller != "anonymous" else "unscoped", {})  # fmt: skip
    left.update(wrote)
    if caller in ("unscoped", "anonymous"):
        del left["hr.txt"]  # re-ingested as taken.txt, into eng
        left["taken.txt"] = "eng"
        del left["default.txt"]
    if caller in ("unscoped", "anonymous", "inside"):
        del left["eng-old.txt"]
    return sorted(left.items())


@pytest.fixture
def site(settings) -> Any:
    settings.INGEST_TRUSTED_NETWORKS = ["127.0.0.1/32"]
    with CannedServer("127.0.0.1") as server:
        server.routes["/page"] = lambda h: h.respond(
            200, b"A fetched page about the weather.", [("Content-Type", "text/plain")]
        )
        yield server


@pytest.mark.parametrize("caller", CALLERS)
def test_every_endpoint_answers_each_caller_as_its_scope_allows(
    caller, client, registry_mode, settings, site
):
    admin = Client(HTTP_X_API_KEY=_key("setup", None, "write"))
    world = build(admin, site)
    if caller == "anonymous":
        settings.API_KEYS_REQUIRED = False
    else:
        workspaces, access = SCOPES[caller]
        client.defaults["HTTP_X_API_KEY"] = _key(caller, workspaces, access, caller == "revoked")

    got, expected = {}, {}
    for label, request, answers in [*MATRIX, ("left", _left, dict.fromkeys(CALLERS))]:
        got[label] = request(client, world)
        expected[label] = answers[caller] if label != "left" else (200, _after(caller))
    assert got == expected


def test_a_document_of_another_workspace_is_not_found_in_the_same_words(client, data_dir):
    admin = Client(HTTP_X_API_KEY=_key("setup", None, "write"))
    hidden = admin.post(
        "/ingest/file",
        {"file": SimpleUploadedFile("pay.txt", b"Pay day is the 25th."), "workspace": "hr"},
    ).json()["fileId"]
    never = "f" * len(hidden)
    client.defaults["HTTP_X_API_KEY"] = _key("eng", ["eng"], "write")
    for method in ("get", "delete"):
        there = getattr(client, method)(f"/documents/{hidden}")
        absent = getattr(client, method)(f"/documents/{never}")
        assert (there.status_code, absent.status_code) == (404, 404)
        assert there.content.replace(hidden.encode(), b"ID") == absent.content.replace(
            never.encode(), b"ID"
        )
        same = {"X-Request-ID"}  # each request's own
        assert {k: v for k, v in there.headers.items() if k not in same} == {
            k: v for k, v in absent.headers.items() if k not in same
        }
    assert admin.get(f"/documents/{hidden}").status_code == 200  # still there


def test_only_the_writes_a_key_may_make_reach_the_audit_trail(client, data_dir):
    admin = Client(HTTP_X_API_KEY=_key("setup", None, "write"))
    file_id = admin.post(
        "/ingest/file",
        {"file": SimpleUploadedFile("pay.txt", b"Pay day is the 25th."), "workspace": "hr"},
    ).json()["fileId"]
    client.defaults["HTTP_X_API_KEY"] = _key("reader", None, "read")
    assert client.delete(f"/documents/{file_id}").status_code == 403
    client.defaults["HTTP_X_API_KEY"] = _key("eng", ["eng"], "write")
    assert client.delete(f"/documents/{file_id}").status_code == 404
    assert client.post("/delete", {"fileId": file_id}, "application/json").status_code == 200
    assert list(AuditEvent.objects.values_list("action", "filename")) == [("ingest", "pay.txt")]


class TestKeysAtTheirEdges:
    def test_a_key_made_before_scopes_reads_and_writes_every_workspace(self, db):
        api_key = ApiKey(name="old")
        api_key.set_new_key()
        api_key.save()
        fresh = ApiKey.objects.get()
        assert (fresh.all_workspaces, fresh.workspaces, fresh.access) == (True, [], "write")

    def test_a_changed_scope_applies_to_the_next_request(self, client, data_dir):
        raw = _key("team", ["eng"], "write")
        client.defaults["HTTP_X_API_KEY"] = raw
        assert client.get("/documents?workspace=hr").status_code == 403
        api_key = ApiKey.objects.get()
        api_key.workspaces = ["eng", "hr"]
        api_key.save()  # as the admin does
        assert client.get("/documents?workspace=hr").status_code == 200
        api_key.access = "read"
        api_key.save()
        upload = {"file": SimpleUploadedFile("a.txt", b"Some text."), "workspace": "hr"}
        assert error(client.post("/ingest/file", upload)) == READ_ONLY_INGEST


def test_create_api_key_scopes_a_key_and_copies_a_scope_to_rotate_it(db, capsys):
    reader = call_command("create_api_key", "wiki", "--workspace", "eng", "--workspace",
                          "docs", "--read-only")  # fmt: skip
    shown = capsys.readouterr().err
    made = ApiKey.objects.get(name="wiki")
    assert (made.all_workspaces, made.workspaces, made.access) == (False, ["docs", "eng"], "read")
    assert "read, docs and eng" in shown
    client = Client(HTTP_X_API_KEY=reader)
    assert client.get("/documents?workspace=eng").status_code == 200
    assert client.get("/documents?workspace=hr").status_code == 403

    rotated = call_command("create_api_key", "wiki", "--same-as", made.prefix)
    new = ApiKey.objects.exclude(pk=made.pk).get()
    assert (new.all_workspaces, new.workspaces, new.access) == (False, ["docs", "eng"], "read")
    call_command("revoke_api_key", made.prefix)
    assert error(client.get("/documents?workspace=eng")) == REVOKED
    assert Client(HTTP_X_API_KEY=rotated).get("/documents?workspace=eng").status_code == 200


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workspace", "no spaces"], "Invalid workspace 'no spaces'"),
        (["--workspace", "eng", "--same-as", "dsk_x"], "--same-as copies the scope"),
        (["--same-as", "dsk_nothing"], "no API key has the prefix 'dsk_nothing'"),
    ],
)
def test_create_api_key_refuses_what_it_cannot_make(db, args, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("create_api_key", "team", *args)
    assert not ApiKey.objects.exists()


def test_a_job_does_not_show_its_document_once_moved_out_of_the_key_s_reach(client, data_dir):
    from ingest.jobs.runner import runner
    from ingest.models import IngestJob

    admin = Client(HTTP_X_API_KEY=_key("setup", None, "write"))
    upload = {"file": SimpleUploadedFile("plan.txt", b"The plan is to ship in May.")}
    queued = admin.post("/ingest/file?async=true", {**upload, "workspace": "eng"}).json()
    job = IngestJob.objects.get()
    runner.run(job.job_id, task_id=job.task_id)  # what a worker does with it
    client.defaults["HTTP_X_API_KEY"] = _key("eng", ["eng"], "read")
    seen = client.get(f"/jobs/{queued['jobId']}").json()
    assert (seen["status"], seen["document"]["workspace"]) == ("succeeded", "eng")

    moved = {"file": SimpleUploadedFile("plan.txt", b"The plan moved to HR."), "workspace": "hr"}
    assert admin.post("/ingest/file", {**moved, "fileId": queued["fileId"]}).status_code == 200
    assert client.get(f"/jobs/{queued['jobId']}").json()["document"] is None
    assert [item["document"] for item in client.get("/jobs").json()["items"]] == [None]
    assert client.get(f"/documents/{queued['fileId']}").status_code == 404


def test_scoped_keys_under_gunicorn_as_production_runs_them(start_live_service):
    """The service's own processes read keys on their native async pool (PostgreSQL), not
    through the ORM the test client uses: the key's workspaces must come back a list."""
    service, ids = start_live_service(), {}
    for name, workspace in (("eng.txt", "eng"), ("hr.txt", "hr")):
        text = f"The holidays start in spring for the {workspace} team.".encode()
        body, headers = multipart(name, text, {"workspace": workspace})
        status, _, created = service.request("POST", "/ingest/file", body, headers)
        assert status == 200, created
        ids[name] = created["fileId"]
    made = run_manage("create_api_key", "eng-reader", "--workspace", "eng", "--read-only",
                      env=service.env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    reader = dataclasses.replace(service, api_key=made.stdout.strip().splitlines()[-1])

    for _ in range(3):  # the first request finds the key, the next ones are served cached
        assert reader.request("GET", f"/documents/{ids['eng.txt']}")[0] == 200
        assert reader.request("GET", f"/documents/{ids['hr.txt']}")[0] == 404
    listed = reader.request("GET", "/documents?workspace=*")[2]
    assert [item["filename"] for item in listed["items"]] == ["eng.txt"]
    question = orjson.dumps({"q": QUESTION, "workspace": "*"})
    answer = reader.request("POST", "/ask", question, {"Content-Type": "application/json"})[2]
    assert [source["filename"] for source in answer["sources"]] == ["eng.txt"]
    body, headers = multipart("new.txt", b"Something new.", {"workspace": "eng"})
    status, _, refused = reader.request("POST", "/ingest/file", body, headers)
    assert (status, refused["detail"]) == READ_ONLY_INGEST


def test_a_pending_move_to_another_workspace_is_never_handed_to_a_key_outside_it(
    client, registry_mode
):
    """A key of eng and hr queues a re-ingest that moves a document from eng to hr; an
    eng key then uploading the same bytes (to that id, or to none) gets a job of its own
    into eng, or the document as it is, never the job into hr; nor does the document's
    answer name that job."""
    both = Client(HTTP_X_API_KEY=_key("both", ["eng", "hr"], "write"))
    client.defaults["HTTP_X_API_KEY"] = _key("eng", ["eng"], "write")

    def upload(caller: Client, data: bytes, query: str = "", **fields: str) -> Any:
        form = {"file": SimpleUploadedFile("plan.txt", data), **fields}
        return caller.post("/ingest/file" + query, form)

    first = upload(both, b"The plan is to ship in May.", workspace="eng").json()
    moving = upload(both, b"The plan moved to HR.", "?async=true", workspace="hr",
                    fileId=first["fileId"])  # fmt: skip
    assert (moving.status_code, moving.json()["workspace"]) == (202, "hr")

    again = upload(client, b"The plan moved to HR.", "?async=true", workspace="eng",
                   fileId=first["fileId"])  # fmt: skip
    assert again.status_code == 202, again.json()
    assert again.json()["workspace"] == "eng"
    assert again.json()["jobId"] != moving.json()["jobId"]
    shown = client.get(f"/documents/{first['fileId']}").json()["job"]
    assert shown["jobId"] == again.json()["jobId"]  # its own, the newer one

    second = upload(both, b"Holidays start in spring.", workspace="eng").json()
    upload(both, b"Holidays moved.", "?async=true", workspace="hr", fileId=second["fileId"])
    same = upload(client, b"Holidays start in spring.", "?async=true", workspace="eng")
    assert same.json()["workspace"] == "eng"
    assert client.get(f"/documents/{second['fileId']}").json()["job"] is None
    hidden = [job["workspace"] for job in client.get("/jobs?workspace=*").json()["items"]]
    assert set(hidden) == {"eng"}
