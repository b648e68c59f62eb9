"""A separate process writing the JSON registry, for the multi-process tests.

python -m tests.support.registry_writer PATH FIRST COUNT [--forever]
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from registry.backends.json_registry import JsonFileRegistry
from registry.records import DocumentRecord


def record(n: int) -> DocumentRecord:
    at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=n)
    return DocumentRecord(
        file_id=f"writer-{n:08d}",
        filename=f"file-{n}.txt",
        # Long enough that writing the file, not building it, takes most of each write.
        url=f"https://example.org/{n}/" + "x" * 1900,
        size_bytes=n,
        num_chunks=1,
        indexed=True,
        created_at=at,
        updated_at=at,
    )


def main() -> None:
    path, first, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    forever = "--forever" in sys.argv
    registry = JsonFileRegistry(path)
    n = first
    while True:
        registry.upsert(record(n))
        if n == first:
            print("first write done", flush=True)
        n += 1
        if n >= first + count and not forever:
            break
    print(n - first)


if __name__ == "__main__":
    main()
