"""Django's state learns the one-row table chunk_store (made by 0001 with `chunks`), so
that `grant_app_role` grants it; and, where the chunks table exists, its HNSW index for
the dimension of the configured EMBEDDER is built now, by the owner who migrates: the
service's role may not create indexes (`grant_app_role`), and it would otherwise try on
its first write. A store of another dimension later gets its index from `reindex` or
`import_vectors`, run as the owner.
"""

from __future__ import annotations

from django.db import migrations, models


def create_index(apps, schema_editor) -> None:
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('chunks') IS NOT NULL")
        if not cursor.fetchone()[0]:
            return
    from ingest.search.embeddings import get_embedder
    from ingest.stores.pgvector_sql import create_hnsw_index

    with connection.cursor() as cursor:
        create_hnsw_index(cursor, get_embedder().dim)


class Migration(migrations.Migration):
    dependencies = [("ingest", "0001_chunks_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="ChunkStore",
                    fields=[
                        ("id", models.IntegerField(default=1, primary_key=True, serialize=False)),
                        ("embedder", models.TextField()),
                        ("dim", models.IntegerField()),
                    ],
                    options={"db_table": "chunk_store"},
                )
            ],
            database_operations=[
                migrations.RunPython(create_index, migrations.RunPython.noop, elidable=False)
            ],
        )
    ]
