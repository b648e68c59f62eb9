"""What a person checks of a document the service read: the text under each heading, and
answers whose every sentence is found in the document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.test import Client

from ingest.answers.extractive import cited_sentences, folded
from tests.support.client import ask, upload
from tests.support.inspection import stored_chunks


def accepted(api: Client, name: str, data: bytes, content_type: str) -> dict[str, Any]:
    """Upload a document that must be indexed as `content_type`; its description."""
    response = upload(api, name, data)
    assert response.status_code == 200, response.json()
    assert response.json()["contentType"] == content_type
    return response.json()


def texts_by_context(data_dir: Path) -> dict[str, str]:
    """The stored chunks' texts, joined under each context (its headings)."""
    texts: dict[str, str] = {}
    for chunk in stored_chunks(data_dir):
        texts[chunk["context"]] = texts.get(chunk["context"], "") + "\n" + chunk["text"]
    return texts


def answer_quoting(api: Client, question: str, document_text: str) -> tuple[str, dict]:
    """Ask `question`; the answer, having checked that it has sentences and that each is
    found word for word (white space folded) in `document_text`, and the /ask body."""
    body = ask(api, question)
    sentences = [sentence for sentence, _ in cited_sentences(body["answer"])]
    assert sentences, body
    for sentence in sentences:
        assert folded(sentence) in folded(document_text), (sentence, body)
    return body["answer"], body
