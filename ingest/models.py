"""The `chunks` table of VECTOR_STORE=pgvector, as Django knows it.

The table itself is created by migration 0001 only where the database has pgvector
(SQLite and a PostgreSQL without it keep the json store and migrate cleanly); Django's
model state still knows it, so that test flushes and the admin see it. Reads and writes
go through ingest/stores/pgvector.py; its generated `search` column (a tsvector) is not
a model field.
"""

from __future__ import annotations

from django.db import models
from pgvector.django import VectorField

from registry.records import WORKSPACE_MAX


class Chunk(models.Model):
    document = models.ForeignKey(
        "registry.Document",
        to_field="file_id",
        db_column="file_id",
        on_delete=models.DO_NOTHING,  # the database cascades (ON DELETE CASCADE)
        db_constraint=False,  # made by migration 0001, where the table exists
        related_name="chunks",
    )
    workspace = models.CharField(max_length=WORKSPACE_MAX)
    chunk_index = models.IntegerField()
    context = models.TextField(default="")
    text = models.TextField()
    embedding = VectorField()

    class Meta:
        db_table = "chunks"
        constraints = [
            models.UniqueConstraint(fields=["document", "chunk_index"], name="chunks_doc_index")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}:{self.chunk_index}"


class ChunkStore(models.Model):
    """The one row saying which embedder (and dimension) built the chunks table's
    vectors; created with the table by migration 0001, known here so that grants
    (`grant_app_role`) and test flushes include it."""

    id = models.IntegerField(primary_key=True, default=1)
    embedder = models.TextField()
    dim = models.IntegerField()

    class Meta:
        db_table = "chunk_store"

    def __str__(self) -> str:
        return f"{self.embedder} ({self.dim} dimensions)"
