"""Lexical ranking by fields (issue 34): each chunk keeps its document's name (`title`),
and the full-text column weighs the name (A) and the headings (B) above the text (D),
which the search's ts_rank weights read (ingest/stores/pgvector_sql.py). The names of the
chunks already stored come from the registry. Changed where the pgvector `chunks` table
exists (0001 made it only where pgvector is); the generated column is made again, with
its GIN index, which on a large table takes a while and locks it."""

from __future__ import annotations

from django.db import migrations, models

# The name without its extension, its words apart, as ingest.search.lexical.title_words.
TITLE = (
    "regexp_replace(regexp_replace(title, '\\.[[:alnum:]]{1,5}$', ''), '[^[:alnum:]]+', ' ', 'g')"
)
FIELDS_SEARCH = (
    f"setweight(to_tsvector('english', {TITLE}), 'A') "
    "|| setweight(to_tsvector('english', context), 'B') || to_tsvector('english', text)"
)
OLD_SEARCH = "to_tsvector('english', context || ' ' || text)"


def _search(expression: str) -> str:
    return f"""
DROP INDEX IF EXISTS chunks_search_gin;
ALTER TABLE chunks DROP COLUMN IF EXISTS search;
ALTER TABLE chunks ADD COLUMN search tsvector GENERATED ALWAYS AS ({expression}) STORED;
CREATE INDEX IF NOT EXISTS chunks_search_gin ON chunks USING gin (search);
"""


FORWARD = (
    "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS title text NOT NULL DEFAULT '';"
    "UPDATE chunks SET title = d.filename FROM documents d WHERE d.file_id = chunks.file_id;"
    + _search(FIELDS_SEARCH)
)
BACKWARD = _search(OLD_SEARCH) + "ALTER TABLE chunks DROP COLUMN IF EXISTS title;"


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
    dependencies = [("ingest", "0007_job_pages")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="chunk", name="title", field=models.TextField(default="")
                ),
            ],
            database_operations=[migrations.RunPython(forward, backward, elidable=False)],
        )
    ]
