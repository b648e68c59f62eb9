"""Build legacy_vec.json and legacy_registry.json: the old service's two files for three
documents of real text no one here wrote (CPython's own documentation of heapq, the Zen of
Python, and the statistics module), with the old service's exact keys.

    python tests/data/build_legacy_fixture.py

The committed files are this script's output on CPython 3.11. The old service's Gemini
embeddings are not available here; each chunk gets 768 floats from a seeded generator,
which the import never reads (it embeds the texts again).
"""

from __future__ import annotations

import codecs
import heapq
import json
import random
import re
import statistics
import this
from pathlib import Path

HERE = Path(__file__).parent
ZEN = codecs.decode(this.s, "rot13")
CREATED = 1_700_000_000

DOCUMENTS = [
    ("5b8f1c0e2d7a4c6b9e3f1a2b3c4d5e6f", "heapq-about.txt", "default", heapq.__about__),
    ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "zen-of-python.txt", "default", ZEN),
    ("legacy-42", "statistics.txt", "science", statistics.__doc__ or ""),
]


def chunks(text: str, size: int = 80) -> list[str]:
    """Paragraphs packed into chunks of about `size` words, as a simple chunker would."""
    out: list[str] = []
    current: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        words = paragraph.split()
        if current and len(current) + len(words) > size:
            out.append(" ".join(current))
            current = []
        current += words
    if current:
        out.append(" ".join(current))
    return out


def main() -> None:
    rng = random.Random(768)
    vectors, registry = [], []
    for n, (file_id, filename, workspace, text) in enumerate(DOCUMENTS):
        parts = chunks(text)
        created = CREATED + 3600 * n
        for chunk_id, part in enumerate(parts):
            vectors.append(
                {
                    "id": f"{file_id}:{chunk_id}",
                    "fileId": file_id,
                    "filename": filename,
                    "chunkId": chunk_id,
                    "workspace": workspace,
                    "text": part,
                    "embedding": [round(rng.gauss(0, 0.05), 6) for _ in range(768)],
                    "createdAt": created,
                }
            )
        registry.append(
            {
                "fileId": file_id,
                "filename": filename,
                "sizeBytes": len(text.encode()),
                "workspace": workspace,
                "numChunks": len(parts),
                "indexed": True,
                "createdAt": created,
                "updatedAt": created,
            }
        )
    (HERE / "legacy_vec.json").write_text(json.dumps(vectors))
    (HERE / "legacy_registry.json").write_text(json.dumps(registry, indent=2))


if __name__ == "__main__":
    main()
