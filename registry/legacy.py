"""The one boundary that speaks the legacy camelCase registry format.

A legacy registry is a JSON array of objects: `{fileId, filename, sizeBytes, workspace,
numChunks, indexed, createdAt, updatedAt}` with epoch-second timestamps. Fields this
service added (`source`, `url`, `contentType`, `sha256`) ride along as extra keys, which
the legacy reader ignored.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson

from registry.exceptions import InvalidRecord, InvalidRegistryFile
from registry.records import (
    DEFAULT_WORKSPACE,
    FILE_ID_MAX,
    FILENAME_MAX,
    DocumentRecord,
    is_valid_workspace,
)

# Epoch values above this are taken as milliseconds (1e11 s would be the year 5138).
_MILLISECONDS_THRESHOLD = 1e11


def record_to_legacy(record: DocumentRecord) -> dict[str, Any]:
    legacy: dict[str, Any] = {
        "fileId": record.file_id,
        "filename": record.filename,
        "sizeBytes": record.size_bytes,
        "workspace": record.workspace,
        "numChunks": record.num_chunks,
        "indexed": record.indexed,
        "createdAt": _to_epoch(record.created_at),
        "updatedAt": _to_epoch(record.updated_at),
    }
    if record.source != "file":
        legacy["source"] = record.source
    if record.url:
        legacy["url"] = record.url
    if record.content_type:
        legacy["contentType"] = record.content_type
    if record.sha256:
        legacy["sha256"] = record.sha256
    return legacy


def record_from_legacy(obj: Any) -> DocumentRecord:
    """Normalise one legacy record, or raise InvalidRecord with the reason.

    Accepts what messy registries hold: numbers as strings, float or ISO-8601 timestamps,
    whitespace around text, unknown extra keys. `updatedAt` defaults to `createdAt`;
    `createdAt` is required because an import must never stamp "now" on old documents.
    """
    if not isinstance(obj, dict):
        raise InvalidRecord(f"expected an object, got {type(obj).__name__}")
    file_id = _text(obj, "fileId", required=True, max_length=FILE_ID_MAX)
    filename = _text(obj, "filename", required=True, max_length=FILENAME_MAX)
    workspace = _text(obj, "workspace", max_length=64) or DEFAULT_WORKSPACE
    if not is_valid_workspace(workspace):
        raise InvalidRecord(
            f"workspace {workspace!r} is not a valid name (letters, digits, '_', '.', '-')"
        )
    created_at = _timestamp(obj, "createdAt", required=True)
    updated_at = _timestamp(obj, "updatedAt") or created_at
    num_chunks = _integer(obj, "numChunks")
    source = _text(obj, "source", max_length=8) or "file"
    if source not in ("file", "url"):
        raise InvalidRecord(f"source {source!r} is not 'file' or 'url'")
    return DocumentRecord(
        file_id=file_id,
        filename=filename,
        size_bytes=_integer(obj, "sizeBytes"),
        workspace=workspace,
        num_chunks=num_chunks,
        indexed=_boolean(obj, "indexed", default=num_chunks > 0),
        created_at=created_at,
        updated_at=updated_at,
        source=source,
        url=_text(obj, "url", max_length=2048),
        content_type=_text(obj, "contentType", max_length=100),
        sha256=_text(obj, "sha256", max_length=64).lower(),
    )


def _to_epoch(value: datetime) -> int | float:
    seconds = value.timestamp()
    return int(seconds) if value.microsecond == 0 else seconds


def _text(obj: dict[str, Any], key: str, *, required: bool = False, max_length: int) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise InvalidRecord(f"{key} is missing")
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidRecord(f"{key} must be a string, got {type(value).__name__}")
    text = str(value).strip()
    if required and not text:
        raise InvalidRecord(f"{key} is empty")
    if len(text) > max_length:
        raise InvalidRecord(f"{key} is longer than {max_length} characters")
    if "\x00" in text:
        raise InvalidRecord(f"{key} contains a NUL character")
    return text


def _integer(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key)
    if value is None or value == "":
        return 0
    number = _number(value, key)
    if not number.is_integer() or number < 0:
        raise InvalidRecord(f"{key} must be a whole number >= 0, got {value!r}")
    return int(number)


def _number(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise InvalidRecord(f"{key} must be a number, got a boolean")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise InvalidRecord(f"{key} must be a number, got {value!r}") from None
    else:
        raise InvalidRecord(f"{key} must be a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise InvalidRecord(f"{key} must be a finite number, got {value!r}")
    return number


def _boolean(obj: dict[str, Any], key: str, *, default: bool) -> bool:
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise InvalidRecord(f"{key} must be true or false, got {value!r}")


def _timestamp(obj: dict[str, Any], key: str, *, required: bool = False) -> datetime | None:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise InvalidRecord(f"{key} is missing")
        return None
    if isinstance(value, str) and not _looks_numeric(value):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRecord(f"{key} is not a timestamp: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    seconds = _number(value, key)
    if abs(seconds) >= _MILLISECONDS_THRESHOLD:
        seconds /= 1000
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidRecord(f"{key} is out of range: {value!r}") from None


def _looks_numeric(value: str) -> bool:
    try:
        float(value.strip())
    except ValueError:
        return False
    return True


def parse_legacy_file(data: bytes) -> list[Any]:
    """The JSON array inside a legacy registry file, or InvalidRegistryFile saying why."""
    if data.startswith(b"\xef\xbb\xbf"):
        raise InvalidRegistryFile(
            "starts with a UTF-8 byte-order mark (BOM); save it as UTF-8 without BOM"
        )
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InvalidRegistryFile("is UTF-16 encoded; expected UTF-8")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRegistryFile(
            f"is not UTF-8: byte 0x{data[exc.start]:02x} at offset {exc.start}; "
            "expected a UTF-8 JSON file"
        ) from None
    if not data.strip():
        raise InvalidRegistryFile("is empty; expected a JSON array (an empty registry is [])")
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRegistryFile(f"is not valid JSON ({exc}); is it truncated?") from None
    if not isinstance(parsed, list):
        raise InvalidRegistryFile(
            f"holds a JSON {type(parsed).__name__}, expected an array of document objects"
        )
    return parsed


def dump_legacy_file(records: list[DocumentRecord]) -> bytes:
    return orjson.dumps([record_to_legacy(record) for record in records])
