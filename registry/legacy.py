"""The one boundary that speaks the legacy camelCase registry format.

A legacy registry is a JSON array of objects: `{fileId, filename, sizeBytes, workspace,
numChunks, indexed, createdAt, updatedAt}` with epoch-second timestamps. Fields this
service added (`source`, `url`, `contentType`, `sha256`) ride along as extra keys, which
the legacy reader ignored.

`LegacyRecord` reads what messy registries hold: numbers as strings, epoch seconds or
milliseconds (Pydantic takes values above 2e10 as milliseconds), float and ISO-8601
timestamps, whitespace around text, nulls, unknown extra keys. Its errors are translated
into one-line reasons that name the legacy key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from common.fileio import read_bytes
from registry.exceptions import InvalidRecord, InvalidRegistryFile
from registry.records import (
    CONTENT_TYPE_MAX,
    DEFAULT_WORKSPACE,
    FILE_ID_MAX,
    FILENAME_MAX,
    SHA256_LENGTH,
    URL_MAX,
    WORKSPACE_MAX,
    DocumentRecord,
    SourceKind,
    epoch_seconds,
    is_valid_workspace,
)

# The largest values the `documents` columns hold (BigIntegerField, PositiveIntegerField),
# the same on PostgreSQL and SQLite: JSON numbers have no limit.
SIZE_BYTES_MAX = 2**63 - 1
NUM_CHUNKS_MAX = 2**31 - 1
# PostgreSQL refuses NUL in text, so a record holding one could never be stored.
_NO_NUL = r"^[^\x00]*$"


def _text(max_length: int, *, required: bool = False) -> StringConstraints:
    return StringConstraints(min_length=int(required), max_length=max_length, pattern=_NO_NUL)


def _in_utc(value: datetime) -> datetime:
    """ISO timestamps keep their offset and naive ones mean UTC: store every instant in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if value.utcoffset() == _ZERO:  # epoch numbers: already UTC, in pydantic's own tzinfo
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range") from None


_ZERO = timedelta(0)
Timestamp = Annotated[datetime, AfterValidator(_in_utc)]


class LegacyRecord(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        str_strip_whitespace=True,
        coerce_numbers_to_str=True,  # legacy ids written as numbers
        extra="ignore",
        frozen=True,
    )

    file_id: Annotated[str, _text(FILE_ID_MAX, required=True)]
    filename: Annotated[str, _text(FILENAME_MAX, required=True)]
    size_bytes: int = Field(0, ge=0, le=SIZE_BYTES_MAX)
    workspace: Annotated[str, _text(WORKSPACE_MAX)] = DEFAULT_WORKSPACE
    num_chunks: int = Field(0, ge=0, le=NUM_CHUNKS_MAX)
    indexed: bool | None = None
    # Required: an import must never stamp "now" on old documents.
    created_at: Timestamp
    updated_at: Timestamp | None = None
    source: SourceKind = SourceKind.FILE
    url: Annotated[str, _text(URL_MAX)] = ""
    content_type: Annotated[str, _text(CONTENT_TYPE_MAX)] = ""
    sha256: Annotated[str, _text(SHA256_LENGTH)] = ""

    @model_validator(mode="before")
    @classmethod
    def _unset_is_default(cls, data: Any) -> Any:
        # The hand-written reader took null and "" for "not set"; Pydantic would refuse
        # null for a number and "" for a timestamp.
        if not isinstance(data, dict):
            raise InvalidRecord(f"expected an object, got {type(data).__name__}")
        values = data.values()
        if None not in values and "" not in values:  # most records: nothing to drop
            return data
        return {key: value for key, value in data.items() if value is not None and value != ""}

    @field_validator("size_bytes", "num_chunks", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        # Pydantic reads true as 1; a boolean where a count belongs is a broken record
        # (tests/cutover/test_import_registry.py shows the refusal).
        if isinstance(value, bool):
            raise ValueError("a boolean")
        return value

    @field_validator("workspace")
    @classmethod
    def _valid_workspace(cls, value: str) -> str:
        if not is_valid_workspace(value):
            raise ValueError("not a valid name")
        return value

    @field_validator("sha256")
    @classmethod
    def _lower_case(cls, value: str) -> str:
        return value.lower()

    @field_serializer("created_at", "updated_at")
    def _to_epoch(self, value: datetime) -> int | float:
        return epoch_seconds(value)

    @classmethod
    def from_record(cls, record: DocumentRecord) -> LegacyRecord:
        fields = {name: getattr(record, name) for name in cls.model_fields}
        return cls.model_construct(**{**fields, "source": SourceKind(record.source)})

    def to_record(self) -> DocumentRecord:
        return DocumentRecord(
            file_id=self.file_id,
            filename=self.filename,
            size_bytes=self.size_bytes,
            workspace=self.workspace,
            num_chunks=self.num_chunks,
            indexed=self.num_chunks > 0 if self.indexed is None else self.indexed,
            created_at=self.created_at,
            updated_at=self.updated_at or self.created_at,
            source=self.source,
            url=self.url,
            content_type=self.content_type,
            sha256=self.sha256,
        )


def record_from_legacy(obj: Any) -> DocumentRecord:
    """Normalise one legacy record, or raise InvalidRecord with the reason."""
    try:
        return LegacyRecord.model_validate(obj).to_record()
    except ValidationError as exc:
        raise InvalidRecord(_reason(exc.errors()[0])) from None


# Extras the legacy reader never wrote are left out while they hold their default.
_EXTRAS = ("source", "url", "content_type", "sha256")


def record_to_legacy(record: DocumentRecord) -> dict[str, Any]:
    unset = {name for name in _EXTRAS if getattr(record, name) in ("", SourceKind.FILE)}
    return LegacyRecord.from_record(record).model_dump(by_alias=True, exclude=unset)


def _reason(error: ErrorDetails) -> str:
    """One line naming the legacy key and what is wrong with its value."""
    key = to_camel(str(error["loc"][0])) if error["loc"] else "record"
    value = error.get("input")
    kind = error["type"]
    if kind == "missing":
        return f"{key} is missing"
    if kind in ("less_than_equal", "int_parsing_size"):
        limit = SIZE_BYTES_MAX if key == "sizeBytes" else NUM_CHUNKS_MAX
        return f"{key} {int(float(value))} is larger than the database holds ({limit})"
    if key in ("sizeBytes", "numChunks"):
        return f"{key} must be a whole number >= 0, got {value!r}"
    if key in ("createdAt", "updatedAt"):
        return f"{key} is not a timestamp: {value!r}"
    if key == "workspace" and kind == "value_error":
        return f"workspace {value!r} is not a valid name (letters, digits, '_', '.', '-')"
    if key == "source":
        return f"source {value!r} is not 'file' or 'url'"
    if key == "indexed":
        return f"indexed must be true or false, got {value!r}"
    if kind == "string_too_short":
        return f"{key} is empty"
    if kind == "string_too_long":
        return f"{key} is longer than {error.get('ctx', {}).get('max_length')} characters"
    if kind == "string_pattern_mismatch":
        return f"{key} contains a NUL character"
    if kind == "string_type":
        return f"{key} must be a string, got {type(value).__name__}"
    return f"{key}: {error['msg']}"


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


def read_registry_file(path: Path) -> list[Any]:
    """The JSON array in `path`, or InvalidRegistryFile naming the file and the reason."""
    data = read_bytes(path, what="registry file", error=InvalidRegistryFile)
    try:
        items = parse_legacy_file(data)
    except InvalidRegistryFile as exc:
        raise InvalidRegistryFile(f"registry file {path} {exc}") from None
    if items and not any(isinstance(item, dict) for item in items):
        kinds = sorted({type(item).__name__ for item in items})
        raise InvalidRegistryFile(
            f"registry file {path} holds a JSON array of {'/'.join(kinds)} values, "
            "expected an array of document objects"
        )
    return items


def dump_legacy_file(records: list[DocumentRecord]) -> bytes:
    return orjson.dumps([record_to_legacy(record) for record in records])
