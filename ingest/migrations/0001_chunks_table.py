"""The `chunks` table of VECTOR_STORE=pgvector, where the database has pgvector.

SQLite, and a PostgreSQL whose server lacks the extension, keep the json store and
migrate cleanly: this migration then creates nothing, and the start-up check of
VECTOR_STORE=pgvector names the missing extension. `CREATE EXTENSION vector` needs the
database owner once (on Neon: the role that created the database); if the app role may
not run it, the owner runs it and then `migrate ingest zero && migrate ingest`.
"""

from __future__ import annotations

import django.db.models.deletion
import pgvector.django
from django.db import migrations, models

from registry.records import FILE_ID_MAX, WORKSPACE_MAX

CREATE = f"""
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS chunks (
    id bigserial PRIMARY KEY,
    file_id varchar({FILE_ID_MAX}) NOT NULL
        REFERENCES documents (file_id) ON DELETE CASCADE,
    workspace varchar({WORKSPACE_MAX}) NOT NULL,
    chunk_index integer NOT NULL,
    context text NOT NULL DEFAULT '',
    text text NOT NULL,
    embedding vector NOT NULL,
    search tsvector GENERATED ALWAYS AS (to_tsvector('english', context || ' ' || text)) STORED,
    UNIQUE (file_id, chunk_index)
);
CREATE INDEX IF NOT EXISTS chunks_search_gin ON chunks USING gin (search);
CREATE INDEX IF NOT EXISTS chunks_workspace_idx ON chunks (workspace);
CREATE TABLE IF NOT EXISTS chunk_store (
    id integer PRIMARY KEY CHECK (id = 1),
    embedder text NOT NULL,
    dim integer NOT NULL
);
"""
DROP = "DROP TABLE IF EXISTS chunks; DROP TABLE IF EXISTS chunk_store;"


def pgvector_available(connection) -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
        return cursor.fetchone() is not None


def create(apps, schema_editor) -> None:
    if pgvector_available(schema_editor.connection):
        schema_editor.execute(CREATE)


def drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("registry", "0002_content_unique_and_api_keys")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Chunk",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        ("workspace", models.CharField(max_length=WORKSPACE_MAX)),
                        ("chunk_index", models.IntegerField()),
                        ("context", models.TextField(default="")),
                        ("text", models.TextField()),
                        ("embedding", pgvector.django.VectorField()),
                        (
                            "document",
                            models.ForeignKey(
                                db_column="file_id",
                                on_delete=django.db.models.deletion.DO_NOTHING,
                                db_constraint=False,
                                related_name="chunks",
                                to="registry.document",
                                to_field="file_id",
                            ),
                        ),
                    ],
                    options={"db_table": "chunks"},
                ),
                migrations.AddConstraint(
                    model_name="chunk",
                    constraint=models.UniqueConstraint(
                        fields=("document", "chunk_index"), name="chunks_doc_index"
                    ),
                ),
            ],
            database_operations=[migrations.RunPython(create, drop, elidable=False)],
        )
    ]
