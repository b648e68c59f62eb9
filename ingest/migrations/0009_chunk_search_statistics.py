"""The statistics ANALYZE keeps of the chunks' full-text column at 1,000, ten times the
default, where the pgvector `chunks` table exists. The hybrid search reads each query
stem's chunk count from them (ingest/stores/pgvector_sql.WEIGHTS) and counts the stems they
do not list through the GIN index, which for a stem held by a few thousand chunks reads
each of them: 150 ms for one question at a million chunks, where the default lists only
stems held by more than 0.6% of the chunks and this one those held by more than 0.025%
(bench/bench_pgvector.py). ANALYZE then samples 300,000 rows, about 8 s at a million."""

from __future__ import annotations

from django.db import migrations

FORWARD = "ALTER TABLE chunks ALTER COLUMN search SET STATISTICS 1000; ANALYZE chunks (search);"
BACKWARD = "ALTER TABLE chunks ALTER COLUMN search SET STATISTICS -1; ANALYZE chunks (search);"


def _has_chunks(connection) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('chunks') IS NOT NULL")
        return bool(cursor.fetchone()[0])


def forward(apps, schema_editor) -> None:
    if _has_chunks(schema_editor.connection):
        schema_editor.execute(FORWARD)


def backward(apps, schema_editor) -> None:
    if _has_chunks(schema_editor.connection):
        schema_editor.execute(BACKWARD)


class Migration(migrations.Migration):
    dependencies = [("ingest", "0008_chunk_fields")]
    operations = [migrations.RunPython(forward, backward, elidable=False)]
