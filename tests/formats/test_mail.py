"""E-mail messages through POST /ingest/file (issue 33): made by the standard library's
`email` package, each is read under its subject, sender and date, from its plain body
(else its HTML one) and its attachments of accepted types, and answered from with an
exact quote; what cannot be read in it is skipped, not a reason to refuse the message."""

from __future__ import annotations

import io
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support.client import upload
from tests.support.documents import HANDBOOK_PDF_PAGES, make_pdf
from tests.support.inspection import stored_chunks, stored_text, vector_file_ids
from tests.support.reading import accepted, answer_quoting, texts_by_context

SENT = "Budget for 2025 > From Ann Lee <ann@example.org> · 2025-03-03 10:15 +0100"
PLAIN = (
    "Hello team,\n\nThe board approved the budget on Friday. Travel is capped at four trips "
    "a year.\n\n> Did the board vote on the budget?\n> Bob\n"
)
HTML = (
    "<html><head><title>Budget for 2025</title></head><body><h1>Decision</h1><p>The board "
    "approved the budget on Friday.</p><p>Only the HTML version says this.</p></body></html>"
)
MINUTES = "Minutes of the board. The vote on the budget was unanimous."


def message(subject: str = "Budget for 2025", **bodies: str) -> EmailMessage:
    """A message from Ann with a plain body and an HTML alternative (either may be left
    out, `plain=""` or `html=""`)."""
    mail = EmailMessage()
    mail["Subject"] = subject
    mail["From"] = "Ann Lee <ann@example.org>"
    mail["To"] = "team@example.org"
    mail["Date"] = "Mon, 03 Mar 2025 10:15:00 +0100"
    plain, html = bodies.get("plain", PLAIN), bodies.get("html", HTML)
    if plain:
        mail.set_content(plain)
    if html and plain:
        mail.add_alternative(html, subtype="html")
    elif html:
        mail.set_content(html, subtype="html")
    return mail


@pytest.fixture(scope="module")
def with_attachments() -> bytes:
    """A message with a PDF, a text file, a GIF (a type the service refuses), a damaged
    PDF and a forwarded message that has a message attached in its turn."""
    mail = message()
    mail.add_attachment(
        make_pdf(HANDBOOK_PDF_PAGES), maintype="application", subtype="pdf", filename="handbook.pdf"
    )
    mail.add_attachment(MINUTES, filename="minutes.txt")
    mail.add_attachment(b"GIF89a" + b"\0" * 32, maintype="image", subtype="gif", filename="a.gif")
    broken = make_pdf(["A damaged attachment says nothing."])[:200]
    mail.add_attachment(broken, maintype="application", subtype="pdf", filename="broken.pdf")
    forwarded = message("Parking", plain="Visitors park in lot C from Monday.", html="")
    deeper = message("Old thread", plain="A message two levels down is not read.", html="")
    forwarded.add_attachment(deeper)
    mail.add_attachment(forwarded)
    return bytes(mail)


class TestBodies:
    def test_the_plain_body_is_read_under_subject_sender_and_date(
        self, api, registry_mode, data_dir: Path
    ):
        accepted(api, "budget.eml", bytes(message()), "message/rfc822")
        chunks = stored_chunks(data_dir)
        assert [chunk["context"] for chunk in chunks] == [SENT]
        text = stored_text(data_dir)
        assert "Travel is capped at four trips a year." in text
        assert "> Did the board vote on the budget?" in text  # the quoted reply stays
        assert "Only the HTML version" not in text  # the alternative of the plain body

    def test_an_html_only_message_is_read_through_the_html_reader(self, api, data_dir: Path):
        accepted(api, "budget.eml", bytes(message(plain="")), "message/rfc822")
        chunks = stored_chunks(data_dir)
        assert [chunk["context"] for chunk in chunks] == [f"{SENT} > Decision"]
        assert "Only the HTML version says this." in chunks[0]["text"]
        assert "<p>" not in chunks[0]["text"]

    def test_a_question_is_answered_with_an_exact_quote(self, api, data_dir: Path):
        upload(api, "budget.eml", bytes(message()))
        answer, body = answer_quoting(api, "How many trips is travel capped at?", PLAIN)
        assert "Travel is capped at four trips a year." in answer
        assert body["sources"][0]["context"] == SENT

    def test_a_message_forwarded_as_the_whole_body_is_read(self, api, data_dir: Path):
        """message/rfc822 as the top-level type (how some mail programs forward)."""
        forwarded = message("Parking", plain="Visitors park in lot C from Monday.", html="")
        outer = EmailMessage()
        outer["Subject"] = "Fwd: Parking"
        outer["From"] = "Bo Ek <bo@example.org>"
        outer.set_content(forwarded)
        assert outer.get_content_type() == "message/rfc822"
        accepted(api, "fwd.eml", bytes(outer), "message/rfc822")
        (chunk,) = stored_chunks(data_dir)
        assert chunk["text"] == "Visitors park in lot C from Monday."
        assert chunk["context"] == (
            "Fwd: Parking > From Bo Ek <bo@example.org> > Parking > "
            "From Ann Lee <ann@example.org> · 2025-03-03 10:15 +0100"
        )

    def test_a_message_that_is_only_headers_has_no_text_to_index(self, api, data_dir: Path):
        headers = b"From: ann@example.org\r\nSubject: Lunch?\r\nDate: Mon, 3 Mar 2025\r\n\r\n"
        response = upload(api, "lunch.eml", headers)
        assert response.status_code == 422
        assert response.json()["detail"].startswith("No text to index")
        assert vector_file_ids(data_dir) == []


class TestAttachments:
    def test_attachments_of_accepted_types_are_read_under_their_names(
        self, api, registry_mode, data_dir: Path, with_attachments
    ):
        accepted(api, "budget.eml", with_attachments, "message/rfc822")
        chunks = texts_by_context(data_dir)
        assert "Parking is free for employees in lot B." in chunks[f"{SENT} > handbook.pdf"]
        assert MINUTES.split(". ")[1] in chunks[f"{SENT} > minutes.txt"]
        forwarded = f"{SENT} > Parking > From Ann Lee <ann@example.org> · 2025-03-03 10:15 +0100"
        assert "Visitors park in lot C from Monday." in chunks[forwarded]
        text = stored_text(data_dir)
        assert "two levels down" not in text  # attached messages are read one level deep
        assert "a.gif" not in text and "broken.pdf" not in text  # skipped, listed nowhere

    def test_a_pdf_attachment_keeps_its_pages(self, api, data_dir: Path, with_attachments):
        upload(api, "budget.eml", with_attachments)
        pages = {chunk["text"]: chunk["pages"] for chunk in stored_chunks(data_dir)}
        assert [span for text, span in pages.items() if "lot B" in text] == [[1, 1]]
        assert [span for text, span in pages.items() if "30 days" in text] == [[2, 2]]
        assert [span for text, span in pages.items() if "four trips" in text] == [None]

    def test_a_question_is_answered_from_an_attachment(self, api, data_dir, with_attachments):
        upload(api, "budget.eml", with_attachments)
        answer, body = answer_quoting(
            api, "When are travel expenses reimbursed?", "\n".join(HANDBOOK_PDF_PAGES)
        )
        assert "Travel expenses are reimbursed within 30 days of submission." in answer
        assert body["sources"][0]["context"] == f"{SENT} > handbook.pdf"
        assert body["sources"][0]["pageSpan"] == {"firstPage": 2, "lastPage": 2}

    def test_a_word_attachment_is_read_by_the_word_reader(self, api, data_dir: Path):
        import docx

        document = docx.Document()
        document.add_heading("Office moves", level=1)
        document.add_paragraph("The finance team moves to the third floor in May.")
        out = io.BytesIO()
        document.save(out)
        mail = message()
        mail.add_attachment(
            out.getvalue(),
            maintype="application",
            subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
            filename="moves.docx",
        )
        accepted(api, "budget.eml", bytes(mail), "message/rfc822")
        chunks = texts_by_context(data_dir)
        moves = [text for context, text in chunks.items() if context.startswith(f"{SENT} > moves")]
        assert any("third floor in May" in text for text in moves), chunks

    def test_a_truncated_message_is_read_as_far_as_it_goes(
        self, api, data_dir: Path, with_attachments
    ):
        """Cut inside its PDF attachment: the body is read, as a mail client shows it, and
        the attachment cut short is skipped (its reader refuses it)."""
        cut_at = with_attachments.index(b"Content-Disposition: attachment") + 600
        accepted(api, "budget.eml", with_attachments[:cut_at], "message/rfc822")
        text = stored_text(data_dir)
        assert "Travel is capped at four trips a year." in text
        assert "lot B" not in text and "Minutes of the board" not in text
