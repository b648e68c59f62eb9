"""E-mail messages (.eml, RFC 5322 with MIME), read by the standard library's `email`.

Every section of a message is under two headings: its subject, then who sent it and
when ("From Ann Lee <ann@example.org> · 2025-03-03 10:15 +0100"). The message's title is
its subject.

- The body is the text/plain part, else the HTML one through the HTML reader (the plain
  one wins when both are alternatives of one another and it has text). Quoted replies
  are the message's text and stay.
- Each attachment of an accepted type (by its content and name, as an upload is) is read
  by its own reader, its sections under a third heading, its file name; a PDF's pages
  stay its pages. An attached message is read as a message, its headings after the
  outer ones, one level deep only: a message attached inside it is skipped.
- An attachment of a type the service does not accept (an image in a signature, a zip)
  is skipped silently: it is listed nowhere. One that cannot be read (damaged, encrypted,
  too large, without text) is skipped with a log line: the message is read without it.
- A message cut short is read as far as it goes, as a mail client shows it: the body
  before the cut is indexed, and an attachment cut short fails its reader and is skipped.
"""

from __future__ import annotations

import logging
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import PurePath

from ingest.exceptions import IngestError, UnsupportedFileType
from ingest.sources.detection import detect_kind
from ingest.sources.extraction import PageProgress, Read, Section, decode_text, reader_of
from ingest.sources.markup import html_sections

logger = logging.getLogger(__name__)

# How deep attached messages are read: the message, and a message attached to it.
_MAX_DEPTH = 1
# What parsing a malformed header can raise in the standard library's header parser.
_HEADER_ERRORS = (ValueError, IndexError, TypeError, AttributeError, LookupError)


def read_eml(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """The message's body and readable attachments as sections under its subject, sender
    and date (see the module's docstring)."""
    message = _parse(data)
    return Read(_sections(message, (), depth=0), _header(message, "subject"))


def _parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)  # what policy.default makes
    return message


def _sections(message: EmailMessage, above: tuple[str, ...], *, depth: int) -> list[Section]:
    headings = above + _headings(message)
    if message.get_content_type() == "message/rfc822":  # a message forwarded as the body
        return _attachment(message, headings, depth=depth)
    sections = _body(message, headings)
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        sections.extend(_attachment(part, headings, depth=depth))
    return sections


def _headings(message: EmailMessage) -> tuple[str, ...]:
    """The message's subject, then "From <sender> · <date>"."""
    sender = _header(message, "from")
    date = _header(message, "date")
    try:
        when = message["date"].datetime if date else None
    except _HEADER_ERRORS:
        when = None
    if when is not None:
        date = when.strftime("%Y-%m-%d %H:%M %z").strip()
    sent = " · ".join(part for part in (f"From {sender}" if sender else "", date) if part)
    return tuple(heading for heading in (_header(message, "subject"), sent) if heading)


def _header(message: EmailMessage, name: str) -> str:
    try:
        value = message[name]
    except _HEADER_ERRORS:  # a header the parser cannot make sense of: left out
        return ""
    return " ".join(str(value).split()) if value is not None else ""


def _body(message: EmailMessage, headings: tuple[str, ...]) -> list[Section]:
    plain = message.get_body(preferencelist=("plain",))
    if isinstance(plain, EmailMessage) and (text := _text(plain)).strip():
        return [Section(headings, text)]
    html = message.get_body(preferencelist=("html",))
    if not isinstance(html, EmailMessage):
        return []
    sections, title = html_sections(_text(html).encode("utf-8"), "utf-8")
    # An HTML body's <title> is the subject again, or a mail program's template's.
    return [
        Section(headings + section.headings[1 if title else 0 :], section.text)
        for section in sections
    ]


def _text(part: EmailMessage) -> str:
    """A text part's content, whatever charset it declares (a wrong or unknown one too)."""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):
        content = None
    if isinstance(content, str):
        return content
    payload = part.get_payload(decode=True)
    return decode_text(payload if isinstance(payload, bytes) else b"")


def _attachment(part: EmailMessage, headings: tuple[str, ...], *, depth: int) -> list[Section]:
    name = PurePath((part.get_filename() or "").replace("\\", "/")).name
    what = f"attachment {name or part.get_content_type()}"
    if part.get_content_type() == "message/rfc822":
        inner = part.get_content()
        if depth >= _MAX_DEPTH or not isinstance(inner, EmailMessage):
            logger.info("E-mail: attached message skipped (attached more than one level deep)")
            return []
        return _sections(inner, headings, depth=depth + 1)
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    try:
        kind = detect_kind(data, filename=name, content_type=part.get_content_type())
        if kind == "eml":
            if depth >= _MAX_DEPTH:
                logger.info("E-mail: %s skipped (attached more than one level deep)", what)
                return []
            return _sections(_parse(data), headings, depth=depth + 1)
        read = reader_of(kind)(data, charset=part.get_content_charset(), progress=None)
    except UnsupportedFileType:
        return []  # not a type the service reads: skipped silently, as the docstring says
    except IngestError as exc:
        logger.info("E-mail: %s skipped: %s", what, exc)
        return []
    label = (name or what,)
    return [
        Section(headings + label + section.headings, section.text, section.pages)
        for section in read.sections
    ]
