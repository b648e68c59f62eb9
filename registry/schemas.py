from __future__ import annotations

from datetime import datetime

from ninja import Schema
from pydantic import Field


class DocumentOut(Schema):
    file_id: str
    filename: str
    workspace: str
    num_chunks: int
    size_bytes: int
    indexed: bool
    source: str
    url: str
    content_type: str
    sha256: str
    created_at: datetime
    updated_at: datetime


class DocumentListOut(Schema):
    items: list[DocumentOut]
    total: int
    limit: int
    offset: int


class DeleteIn(Schema):
    file_id: str = Field(min_length=1, max_length=64)


class DeletedOut(Schema):
    deleted: bool = True
    file_id: str
    filename: str
