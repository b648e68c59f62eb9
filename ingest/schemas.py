from __future__ import annotations

from ninja import Schema
from pydantic import Field

from registry.records import DEFAULT_WORKSPACE


class UrlIn(Schema):
    url: str = Field(min_length=1, max_length=2048)
    workspace: str = Field(DEFAULT_WORKSPACE, max_length=64)


class AskIn(Schema):
    question: str = Field(min_length=1, max_length=2000)
    workspace: str | None = Field(None, max_length=64)
    top_k: int = Field(5, ge=1, le=20)


class SourceOut(Schema):
    file_id: str
    filename: str
    chunk_index: int
    score: float
    text: str


class AskOut(Schema):
    answer: str
    sources: list[SourceOut]
