"""The offline embedder: deterministic across processes, normalised, checked on load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ingest.search.embeddings import HashingEmbedder
from tests.support.client import ingest, upload
from tests.support.paths import ROOT
from tests.support.processes import child_env

TEXT = "Quarterly revenue grew by twelve percent in the northern region."


def embed_in_a_new_process(text: str) -> bytes:
    code = (
        "import sys; from ingest.search.embeddings import HashingEmbedder; "
        f"sys.stdout.write(HashingEmbedder(384).embed([{text!r}])[0].tobytes().hex())"
    )
    # A different hash seed per process would change hash(); it must not change vectors.
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(PYTHONHASHSEED="random"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return bytes.fromhex(result.stdout)


def test_the_same_text_embeds_to_the_same_vector_in_two_separate_processes():
    first, second = embed_in_a_new_process(TEXT), embed_in_a_new_process(TEXT)
    assert first == second
    assert first == HashingEmbedder(384).embed([TEXT])[0].tobytes()


def test_vectors_are_unit_length_and_similar_texts_score_higher():
    vectors = HashingEmbedder(384).embed(
        [TEXT, "Revenue in the northern region grew twelve percent.", "Cats sleep all day.", ""]
    )
    assert vectors.dtype == np.float32 and vectors.shape == (4, 384)
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0, atol=1e-5)
    assert not vectors[3].any()  # no words, no direction
    assert vectors[0] @ vectors[1] > 0.5 > vectors[0] @ vectors[2]


def test_the_store_records_the_embedder_and_refuses_a_mismatch(api, settings, data_dir: Path):
    ingest(api, "report.txt", TEXT)
    settings.EMBEDDING_DIM = 256
    response = api.post("/ask", {"question": "revenue"}, content_type="application/json")
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert "'hashing-v1' with 384 dimensions" in detail
    assert "at 256" in detail
    assert upload(api, "other.txt", "Different text about weather.").status_code == 503
    assert api.get("/documents").json()["total"] == 1


@pytest.mark.json_store_only
@pytest.mark.parametrize("content", [b"{not json", b'{"format": "something-else"}', b'"text"'])
def test_a_damaged_vector_file_is_a_clear_503(api, data_dir: Path, content):
    (data_dir / "vectors.json").write_bytes(content)
    response = api.post("/ask", {"question": "revenue"}, content_type="application/json")
    assert response.status_code == 503
    assert "vectors.json is damaged" in response.json()["detail"]
