"""Where each chunk sits in its document (issue 33): the first and last page it spans,
1-based as a PDF viewer counts them, NULL for a format without pages. Added to the
pgvector `chunks` table where it exists (0001 made it only where pgvector is)."""

from __future__ import annotations

from django.db import migrations, models

ADD = (
    "ALTER TABLE chunks ADD COLUMN IF NOT EXISTS first_page integer, "
    "ADD COLUMN IF NOT EXISTS last_page integer"
)
DROP = "ALTER TABLE chunks DROP COLUMN IF EXISTS first_page, DROP COLUMN IF EXISTS last_page"


def _has_chunks(connection) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('chunks') IS NOT NULL")
        return bool(cursor.fetchone()[0])


def add(apps, schema_editor) -> None:
    if _has_chunks(schema_editor.connection):
        schema_editor.execute(ADD)


def drop(apps, schema_editor) -> None:
    if _has_chunks(schema_editor.connection):
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("ingest", "0005_task_path")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="chunk", name="first_page", field=models.IntegerField(null=True)
                ),
                migrations.AddField(
                    model_name="chunk", name="last_page", field=models.IntegerField(null=True)
                ),
            ],
            database_operations=[migrations.RunPython(add, drop, elidable=False)],
        )
    ]
