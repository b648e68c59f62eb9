"""Answers checked as a person checks them: each sentence found in the document sent."""

from __future__ import annotations

from django.test import Client

from ingest.answers.extractive import cited_sentences, folded
from tests.support.client import ask


def answer_quoting(api: Client, question: str, document_text: str) -> tuple[str, dict]:
    """Ask `question`; the answer, having checked that it has sentences and that each is
    found word for word (white space folded) in `document_text`, and the /ask body."""
    body = ask(api, question)
    sentences = [sentence for sentence, _ in cited_sentences(body["answer"])]
    assert sentences, body
    for sentence in sentences:
        assert folded(sentence) in folded(document_text), (sentence, body)
    return body["answer"], body
