"""The framework floor bench_http.py serves beside the service: the same three reads, the
same JSON, on the same database, with nothing of ours in the way.

    FLOOR=django|ninja DATABASE_URL=postgresql://… \
        gunicorn -c gunicorn.conf.py --pythonpath bench floor_app:application

FLOOR=django: plain Django async views returning JsonResponse. FLOOR=ninja: a bare
NinjaAPI whose operations return dicts validated by response schemas, as the service's
do. Either way: no middleware, no API key, no scopes, no logging, one psycopg
AsyncConnectionPool per worker (autocommit, no check on checkout) and one statement per
request, written by hand: what the framework costs on its own, on the event loop, with
the database work the service does at its best. Served with the service's gunicorn.conf.py
(its worker class and worker count), so only the application differs.
"""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from typing import Any

import django
from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils.functional import empty

FLOOR = os.environ.get("FLOOR", "ninja")

# gunicorn.conf.py's on_starting read the service's settings in the master, before the
# fork: this worker starts from the floor's own instead.
settings._wrapped = empty
settings.configure(
    DEBUG=False,
    SECRET_KEY="floor-" + "x" * 60,
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402
from ninja import NinjaAPI, Schema  # noqa: E402
from psycopg_pool import AsyncConnectionPool  # noqa: E402

COLUMNS = (
    "file_id, filename, workspace, num_chunks, size_bytes, indexed, source, url, "
    "content_type, sha256, created_at, updated_at"
)
PENDING_JOB = (
    "LEFT JOIN LATERAL (SELECT j.id, j.status FROM ingest_jobs j WHERE j.file_id = d.file_id"
    " AND j.status IN ('queued', 'running') ORDER BY j.created_at DESC LIMIT 1) job ON true"
)
ONE = f"SELECT {COLUMNS}, job.id, job.status FROM documents d {PENDING_JOB} WHERE d.file_id = %s"
PAGE = (
    f"SELECT total.n, page.* FROM (SELECT count(*) FROM documents WHERE workspace = %s) total(n)"
    f" LEFT JOIN LATERAL (SELECT {COLUMNS}, job.id AS job_id, job.status AS job_status"
    f" FROM documents d {PENDING_JOB} WHERE d.workspace = %s"
    " ORDER BY d.created_at DESC, d.file_id DESC LIMIT %s OFFSET %s) page ON true"
    " ORDER BY page.created_at DESC, page.file_id DESC"
)
HEALTH = "SELECT 1 FROM documents LIMIT 1"

_pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool] = {}


async def _pool() -> AsyncConnectionPool:
    loop = asyncio.get_running_loop()
    if loop not in _pools:
        pool = AsyncConnectionPool(
            os.environ["DATABASE_URL"],
            kwargs={"autocommit": True},
            min_size=1,
            max_size=int(os.environ.get("DB_POOL_SIZE", "10")),
            open=False,
        )
        _pools[loop] = pool
        await pool.open()
    return _pools[loop]


async def _rows(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    async with (await _pool()).connection() as connection:
        cursor = await connection.execute(sql, params)
        return await cursor.fetchall()


def _seconds(value: datetime) -> int | float:
    seconds = value.timestamp()
    return int(seconds) if value.microsecond == 0 else seconds


def _document(row: tuple[Any, ...]) -> dict[str, Any]:
    job = {"jobId": row[12].hex, "status": row[13]} if row[12] is not None else None
    return {
        "fileId": row[0],
        "filename": row[1],
        "workspace": row[2],
        "numChunks": row[3],
        "sizeBytes": row[4],
        "indexed": row[5],
        "source": row[6],
        "url": row[7],
        "contentType": row[8],
        "sha256": row[9],
        "createdAt": _seconds(row[10]),
        "updatedAt": _seconds(row[11]),
        "job": job,
    }


async def _health() -> dict[str, Any]:
    await _rows(HEALTH)
    return {"ok": True, "db": True}


async def _one(file_id: str) -> dict[str, Any] | None:
    rows = await _rows(ONE, (file_id,))
    return _document(rows[0]) if rows else None


async def _page(workspace: str, limit: int, offset: int) -> dict[str, Any]:
    rows = await _rows(PAGE, (workspace, workspace, limit, offset))
    items = [_document(row[1:]) for row in rows if row[1] is not None]
    return {"items": items, "total": rows[0][0], "limit": limit, "offset": offset}


if FLOOR == "django":

    async def health(request: HttpRequest) -> JsonResponse:
        return JsonResponse(await _health())

    async def document(request: HttpRequest, file_id: str) -> JsonResponse:
        found = await _one(file_id)
        return JsonResponse(found or {"detail": "not found"}, status=200 if found else 404)

    async def documents(request: HttpRequest) -> JsonResponse:
        limit, offset = int(request.GET.get("limit", 50)), int(request.GET.get("offset", 0))
        return JsonResponse(await _page(request.GET.get("workspace", "default"), limit, offset))

    urlpatterns = [
        path("health", health),
        path("documents/<str:file_id>", document),
        path("documents", documents),
    ]
else:
    api = NinjaAPI(docs_url=None, openapi_url=None)

    class HealthOut(Schema):
        ok: bool
        db: bool

    class JobRefOut(Schema):
        jobId: str
        status: str

    class DocumentOut(Schema):
        fileId: str
        filename: str
        workspace: str
        numChunks: int
        sizeBytes: int
        indexed: bool
        source: str
        url: str
        contentType: str
        sha256: str
        createdAt: int | float
        updatedAt: int | float
        job: JobRefOut | None = None

    class DocumentListOut(Schema):
        items: list[DocumentOut]
        total: int
        limit: int
        offset: int

    @api.get("/health", response=HealthOut)
    async def ninja_health(request: HttpRequest) -> dict[str, Any]:
        return await _health()

    @api.get("/documents/{file_id}", response={200: DocumentOut, 404: dict})
    async def ninja_document(request: HttpRequest, file_id: str) -> Any:
        found = await _one(file_id)
        return found if found else (404, {"detail": "not found"})

    @api.get("/documents", response=DocumentListOut)
    async def ninja_documents(
        request: HttpRequest, workspace: str = "default", limit: int = 50, offset: int = 0
    ) -> dict[str, Any]:
        return await _page(workspace, limit, offset)

    urlpatterns = [path("", api.urls)]

application = get_asgi_application()
