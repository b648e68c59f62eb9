"""The API's hot reads on psycopg's native async pool (common/db/async_reads.py) answer exactly
what the ORM path answers: served as an ASGI server serves them (Django's AsyncClient in
an event loop of its own), beside Django's sync test client, which reads through its own
thread and connection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import ProgrammingError, connection, connections
from django.test import AsyncClient
from django.utils import timezone

from common.db import async_reads
from ingest.models import IngestJob
from registry.models import ApiKey, Document
from tests.support.live import without_queue

pytestmark = pytest.mark.django_db(transaction=True)  # the pool's connections see commits

on_postgres = connection.vendor == "postgresql"


def _documents() -> list[Document]:
    documents = []
    for n in range(7):
        created = datetime(2024, 1, 1 + n, 12, 30, tzinfo=UTC)
        documents.append(
            Document.objects.create(
                file_id=f"doc-{n}",
                filename=f"notes-{n}.md",
                size_bytes=1000 + n,
                workspace="eng" if n % 2 else "default",
                num_chunks=n,
                indexed=True,
                created_at=created,
                updated_at=created,
            )
        )
    return documents


def _serve(requests: list[tuple[str, dict[str, str]]]) -> tuple[list[Any], dict[str, int]]:
    """Each request through the ASGI path in one event loop; the responses and the
    native pool's counters."""

    async def run() -> tuple[list[Any], dict[str, int]]:
        client = AsyncClient()
        try:
            responses = [await client.get(path, headers=headers) for path, headers in requests]
            return responses, await async_reads.pool_stats()
        finally:
            await async_reads.close_pool()
            # The ORM's async calls ran in asgiref's one thread: close its connection.
            await sync_to_async(connections.close_all)()

    return asyncio.run(run())


def _pending_jobs() -> None:
    """doc-3 (eng) has two pending jobs, the newer running; doc-4 (default) is being
    moved to hr by a job a key of default alone must not see; doc-1's job is done."""
    made = datetime(2024, 2, 1, tzinfo=UTC)

    def job(file_id: str, workspace: str, status: str, minutes: int) -> None:
        IngestJob.objects.create(
            file_id=file_id,
            name=f"{file_id}.md",
            workspace=workspace,
            sha256="0" * 64,
            status=status,
            created_at=made + timedelta(minutes=minutes),
        )

    job("doc-3", "eng", IngestJob.Status.QUEUED, 1)
    job("doc-3", "eng", IngestJob.Status.RUNNING, 2)
    job("doc-4", "hr", IngestJob.Status.QUEUED, 3)
    job("doc-1", "eng", IngestJob.Status.SUCCEEDED, 4)


def _scoped_key(*workspaces: str) -> str:
    key = ApiKey(name="scoped", all_workspaces=False, workspaces=list(workspaces))
    raw = key.set_new_key()
    key.save()
    return raw


def _revoked_key() -> str:
    key = ApiKey(name="old")
    raw = key.set_new_key()
    key.revoked_at = timezone.now()
    key.save()
    return raw


def test_reads_answer_the_same_on_the_native_pool_as_through_the_orm(client, api_key, data_dir):
    _documents()
    _pending_jobs()
    keyed = {"X-API-Key": api_key}
    default_only = {"X-API-Key": _scoped_key("default")}
    requests = [
        ("/documents/doc-3", keyed),
        ("/documents?workspace=default&limit=2&offset=1", keyed),
        ("/documents?workspace=*&limit=50", keyed),
        ("/documents?workspace=nowhere", keyed),
        ("/documents?workspace=eng&offset=100", keyed),
        ("/documents/missing", keyed),
        ("/documents", {"X-API-Key": "dsk_unknown"}),
        ("/documents", {"X-API-Key": _revoked_key()}),
        ("/health", {}),
        ("/documents/doc-4", default_only),
        ("/documents?workspace=default", default_only),
        ("/documents?workspace=*", keyed),
    ]
    served, stats = _serve(requests)
    for (path, headers), response in zip(requests, served, strict=True):
        expected = client.get(path, headers=headers)
        assert (response.status_code, response.json()) == (
            expected.status_code,
            expected.json(),
        ), path
    statuses = [response.status_code for response in served]
    assert statuses == [200, 200, 200, 200, 200, 404, 401, 403, 200, 200, 200, 200]
    page = served[1].json()
    assert [item["fileId"] for item in page["items"]] == ["doc-4", "doc-2"]
    assert page["total"] == 4
    assert served[4].json() == {"items": [], "total": 3, "limit": 50, "offset": 100}
    assert served[0].json()["createdAt"] == served[0].json()["updatedAt"]
    newer = IngestJob.objects.get(file_id="doc-3", status=IngestJob.Status.RUNNING)
    assert served[0].json()["job"] == {"jobId": newer.job_id, "status": "running"}
    moving = IngestJob.objects.get(file_id="doc-4")
    assert served[9].json()["job"] is None  # hr's job, which this key cannot see
    assert [item["job"] for item in served[10].json()["items"] if item["fileId"] == "doc-4"] == [
        None
    ]
    jobs = {item["fileId"]: item["job"] for item in served[11].json()["items"]}
    assert jobs == {
        "doc-6": None,
        "doc-5": None,
        "doc-4": {"jobId": moving.job_id, "status": "queued"},
        "doc-3": {"jobId": newer.job_id, "status": "running"},
        "doc-2": None,
        "doc-1": None,
        "doc-0": None,
    }
    if on_postgres:  # SQLite has no native pool: the same answers through the ORM
        assert stats["requests_num"] >= len(requests)


@pytest.mark.skipif(not on_postgres, reason="the native pool is PostgreSQL's")
def test_a_known_key_is_looked_up_once_per_cache_period(api_key, data_dir):
    _documents()
    keyed = {"X-API-Key": api_key}
    served, stats = _serve([("/documents/doc-1", keyed)] * 5)
    assert [response.status_code for response in served] == [200] * 5
    # One lookup of the key, then one read per request.
    assert stats["requests_num"] == 1 + 5


@pytest.mark.skipif(not on_postgres, reason="the native pool is PostgreSQL's")
def test_a_document_or_a_page_with_its_jobs_is_one_query(api_key, data_dir):
    """Each read, the pending jobs and the page's total included, is one statement on
    the native pool: the pool hands out one connection per request and no more."""
    _documents()
    _pending_jobs()
    keyed = {"X-API-Key": api_key}
    paths = [
        "/documents/doc-3",
        "/documents?workspace=eng",
        "/documents?workspace=*&limit=2&offset=1",
        "/documents?workspace=eng&offset=100",
        "/documents/missing",
    ]
    served, stats = _serve([(path, keyed) for path in paths])
    assert [response.status_code for response in served] == [200, 200, 200, 200, 404]
    assert served[1].json()["total"] == 3 and served[3].json()["items"] == []
    assert stats["requests_num"] == 1 + len(paths)  # the key's lookup, then one each


@pytest.mark.skipif(not on_postgres, reason="the native pool is PostgreSQL's")
def test_database_errors_come_out_as_djangos(db):
    async def run() -> None:
        try:
            await async_reads.fetch_rows("SELECT * FROM no_such_table")
        finally:
            await async_reads.close_pool()

    with pytest.raises(ProgrammingError, match="no_such_table"):
        asyncio.run(run())


@pytest.mark.skipif(not on_postgres, reason="the native pool is PostgreSQL's")
def test_the_switch_sends_reads_back_through_the_orm(api_key, data_dir, settings):
    settings.DB_ASYNC_READS = False
    _documents()
    served, stats = _serve([("/documents/doc-1", {"X-API-Key": api_key}), ("/health", {})])
    assert [response.status_code for response in served] == [200, 200]
    assert stats == {}


@pytest.mark.skipif(not on_postgres, reason="the native pool is PostgreSQL's")
def test_health_says_the_database_answers_when_only_the_table_is_missing(data_dir):
    # (A database that does not answer: tests/api/test_health.py, on a live server.)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE documents RENAME TO documents_away")
    try:
        served, _ = _serve([("/health", {})])
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE documents_away RENAME TO documents")
    assert (served[0].status_code, without_queue(served[0].json())) == (
        503,
        {"ok": False, "db": True},
    )
