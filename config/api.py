"""The NinjaAPI: routers mounted, domain errors mapped to HTTP statuses."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from django.db import DatabaseError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, ValidationError
from ninja.renderers import JSONRenderer
from ninja.responses import NinjaJSONEncoder

from config.health import router as health_router
from ingest.api import documents_router, jobs_router
from ingest.api import router as ingest_router
from ingest.exceptions import (
    IngestError,
)
from registry.auth import ApiKeyRevoked
from registry.exceptions import (
    DATABASE_UNAVAILABLE,
    AccessDenied,
    DocumentNotFound,
    FileIdTaken,
    RegistryError,
    RegistryUnavailable,
)

logger = logging.getLogger(__name__)


class OrjsonRenderer(JSONRenderer):
    """ninja's JSON renderer on orjson, several times faster than json.dumps on a page of
    documents. The same JSON: what orjson does not know natively goes to ninja's encoder,
    datetimes included (so they are written as before), and anything orjson refuses
    (an integer beyond 64 bits, a dict with non-string keys) is written by ninja's own
    renderer."""

    _encoder = NinjaJSONEncoder()

    def render(self, request: HttpRequest, data: Any, *, response_status: int) -> Any:
        try:
            return orjson.dumps(
                data, default=self._encoder.default, option=orjson.OPT_PASSTHROUGH_DATETIME
            )
        except orjson.JSONEncodeError:
            return super().render(request, data, response_status=response_status)


api = NinjaAPI(
    renderer=OrjsonRenderer(),
    title="Document service",
    version="1.0.0",
    description=(
        "Ingest documents, ask questions answered from them, manage the registry. "
        "Every endpoint but /health needs an API key in the `X-API-Key` header."
    ),
    docs_url="/docs",
)
api.add_router("", ingest_router)
api.add_router("", documents_router)
api.add_router("", jobs_router)
api.add_router("", health_router)


def _error(request: HttpRequest, status: int, detail: str) -> HttpResponse:
    return api.create_response(request, {"detail": detail}, status=status)


@api.exception_handler(DocumentNotFound)
def document_not_found(request: HttpRequest, exc: DocumentNotFound) -> HttpResponse:
    return _error(request, 404, str(exc))


@api.exception_handler(FileIdTaken)
def file_id_taken(request: HttpRequest, exc: FileIdTaken) -> HttpResponse:
    return _error(request, 409, str(exc))


@api.exception_handler(AccessDenied)
def access_denied(request: HttpRequest, exc: AccessDenied) -> HttpResponse:
    return _error(request, 403, str(exc))


@api.exception_handler(RegistryUnavailable)
def registry_unavailable(request: HttpRequest, exc: RegistryUnavailable) -> HttpResponse:
    logger.error("registry unavailable: %s", exc)
    if isinstance(exc.__cause__, DatabaseError):  # the details (host, error) stay in the log
        return _error(request, 503, DATABASE_UNAVAILABLE)
    return _error(request, 503, f"Registry unavailable: {exc}")


@api.exception_handler(IngestError)
def ingest_error(request: HttpRequest, exc: IngestError) -> HttpResponse:
    status = exc.status  # each domain error has one (ingest/exceptions.py)
    if status == 503:
        logger.error("vector store unavailable: %s", exc)
    return _error(request, status, str(exc))


@api.exception_handler(AuthenticationError)
def missing_api_key(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return _error(request, 401, "Missing or unknown API key: send it in the X-API-Key header")


@api.exception_handler(ApiKeyRevoked)
def revoked_api_key(request: HttpRequest, exc: ApiKeyRevoked) -> HttpResponse:
    return _error(request, 403, "This API key has been revoked")


_PARAMETER_SOURCES = {"body", "form", "query", "path", "header", "cookie", "file"}


def _field_location(loc: Any) -> list[Any]:
    parts = list(loc)
    if parts and parts[0] in _PARAMETER_SOURCES:
        source = parts.pop(0)
        if source == "body" and parts and parts[0] == "payload":
            parts.pop(0)
    return parts


@api.exception_handler(ValidationError)
def invalid_input(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = []
    for error in exc.errors:
        # ninja's locations start with where the value came from and, for a JSON body,
        # the view's parameter name; the caller knows the field by its own name.
        where = ".".join(map(str, _field_location(error.get("loc", ()))))
        problems.append(
            f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", "")
        )
    body = {"detail": "Invalid request: " + "; ".join(problems), "errors": exc.errors}
    return api.create_response(request, body, status=422)


@api.exception_handler(MultiPartParserError)
def malformed_multipart(request: HttpRequest, exc: MultiPartParserError) -> HttpResponse:
    # Django would answer its HTML 400 page; API clients read JSON.
    return _error(request, 400, f"Malformed multipart body: {exc}")


@api.exception_handler(DatabaseError)
def database_error(request: HttpRequest, exc: DatabaseError) -> HttpResponse:
    if isinstance(exc, OperationalError):  # not answering: no traceback for each request
        logger.error("database unavailable: %s", exc)
    else:
        logger.exception("database error")
    return _error(request, 503, DATABASE_UNAVAILABLE)


@api.exception_handler(RegistryError)
def registry_error(request: HttpRequest, exc: RegistryError) -> HttpResponse:
    return _error(request, 400, str(exc))
