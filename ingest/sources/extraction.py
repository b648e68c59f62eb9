"""Recognise a document's type from its content and name, and extract its text.

Accepted: plain text (.txt), Markdown (.md), HTML (.html, .htm) and PDF (.pdf). The content
decides the parser; the name may only narrow it. A PDF named .txt is read as a PDF, a PNG
named .txt is refused, and a file named .pdf that is not a PDF is refused.

HTML and Markdown keep their structure as sections: the text under each heading, with the
path of headings above it ("Title > Chapter > Section"), which chunks carry as context.
Markdown syntax and page furniture (navigation, headers, footers) never reach the text.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from bs4 import BeautifulSoup
from charset_normalizer import from_bytes
from django.conf import settings

from ingest.exceptions import EmptyDocument, UnsupportedFileType
from ingest.sources.pdf_text import PdfRefused, read_pdf

logger = logging.getLogger(__name__)

ACCEPTED = "text (.txt), Markdown (.md), HTML (.html, .htm) and PDF (.pdf)"
EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
CONTENT_TYPES = {
    "text/plain": "text",
    "text/markdown": "markdown",
    "text/x-markdown": "markdown",
    "text/html": "html",
    "application/xhtml+xml": "html",
    "application/pdf": "pdf",
}
MEDIA_TYPES = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
}
# Signatures of binary formats people upload by mistake, for a precise refusal.
_BINARY_SIGNATURES = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"PK\x03\x04": "a ZIP archive (or a .docx/.xlsx/.odt document)",
    b"\xd0\xcf\x11\xe0": "a legacy Microsoft Office document",
    b"\x7fELF": "an executable",
    b"MZ": "a Windows executable",
    b"\x1f\x8b": "a gzip archive",
}
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


HEADING_SEPARATOR = " > "
# Page furniture, not content: HTML5's elements for it and the class names that DocBook,
# Sphinx and most site generators give theirs.
_FURNITURE_TAGS = [
    "nav",
    "header",
    "footer",
    "aside",
    "script",
    "style",
    "noscript",
    "template",
    "svg",
    "head",
    "iframe",
    "form",
    "button",
]
_FURNITURE_CLASS = re.compile(
    r"^(navheader|navfooter|navbar|nav|breadcrumbs?|sidebar|sphinxsidebar|related|"
    r"footer|header|skip-?link|toc-?backref|headerlink)$",
    re.I,
)
_HEADING_MARK = "\ue000"  # a private-use character: never in a real document


@dataclass(frozen=True)
class Section:
    headings: tuple[str, ...]  # the headings above the text, outermost first
    text: str

    @property
    def context(self) -> str:
        return HEADING_SEPARATOR.join(self.headings)


@dataclass(frozen=True)
class Extracted:
    kind: str  # text, markdown, html or pdf
    content_type: str
    sections: list[Section]
    title: str = ""

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


def detect_kind(data: bytes, *, filename: str = "", content_type: str = "") -> str:
    """The document kind, or UnsupportedFileType naming the accepted types."""
    suffix = PurePosixPath(filename).suffix.lower() if filename else ""
    named = EXTENSIONS.get(suffix)
    if suffix and named is None:
        raise UnsupportedFileType(f"{filename!r} is not an accepted type: accepted are {ACCEPTED}")
    declared = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())

    if data.startswith(b"%PDF-"):
        return "pdf"
    for signature, what in _BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise UnsupportedFileType(f"the content is {what}: accepted are {ACCEPTED}")
    if named == "pdf" or (declared == "pdf" and not named):
        raise UnsupportedFileType(
            f"{filename or 'the document'} is not a PDF (it does not start with %PDF-): "
            f"accepted are {ACCEPTED}"
        )
    if not _looks_like_text(data):
        raise UnsupportedFileType(f"the content is binary, not text: accepted are {ACCEPTED}")
    if named:
        return named
    if declared:
        return declared
    return "html" if _HTML_START.match(data[:2048]) else "text"


def extract(
    data: bytes, *, filename: str = "", content_type: str = "", charset: str | None = None
) -> Extracted:
    """Text of the document, or EmptyDocument when there is none to index."""
    kind = detect_kind(data, filename=filename, content_type=content_type)
    title = ""
    if kind == "pdf":
        sections = [Section((), _pdf_text(data))]
    elif kind == "html":
        sections, title = _html_sections(data, charset)
    elif kind == "markdown":
        sections = markdown_sections(decode_text(data, charset))
    else:
        sections = [Section((), decode_text(data, charset))]
    sections = [
        Section(section.headings, text)
        for section in sections
        if (text := normalise_whitespace(section.text))
    ]
    if not sections:
        reason = (
            "the PDF has no text layer (a scanned document needs OCR, which this service "
            "does not do)"
            if kind == "pdf"
            else "the document is empty"
        )
        raise EmptyDocument(f"No text to index: {reason}")
    return Extracted(kind=kind, content_type=MEDIA_TYPES[kind], sections=sections, title=title)


def decode_text(data: bytes, charset: str | None = None) -> str:
    """Decode bytes whatever their encoding: declared charset, UTF-8, detection, then
    Latin-1, which decodes anything. Never raises."""
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    for encoding in (charset, "utf-8"):
        if encoding:
            try:
                return data.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                continue
    matches = from_bytes(data[:200_000])
    best = matches.best()
    if best is not None and best.encoding:
        encoding = best.encoding
        # Short Western text scores the same in several code pages; Windows-1252 is by
        # far the most common of them, so it wins a tie.
        tied = {
            m.encoding for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)
        }
        if "cp1252" in tied:
            encoding = "cp1252"
        try:
            return data.decode(encoding, errors="replace")
        except LookupError:
            pass
    return data.decode("latin-1")


def normalise_whitespace(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _looks_like_text(data: bytes) -> bool:
    sample = data[:8192]
    if not sample:
        return True
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        # UTF-16 with a byte-order mark: text only if it decodes (an odd length or a lone
        # surrogate does not) and few of its characters are control codes.
        try:
            return _few_control_codes(data.decode("utf-16")[:4096])
        except UnicodeDecodeError:
            return False
    if b"\x00" in sample:
        return False
    return _few_control_codes(sample.decode("latin-1"))


def _few_control_codes(text: str) -> bool:
    control = sum(1 for char in text if char < " " and char not in "\t\n\f\r")
    return control / max(len(text), 1) < 0.05


def _html_sections(data: bytes, charset: str | None) -> tuple[list[Section], str]:
    soup = BeautifulSoup(data, "html.parser", from_encoding=charset)
    title = _clean_heading(soup.title.get_text(" ", strip=True)) if soup.title else ""
    for tag in soup(_FURNITURE_TAGS):
        tag.decompose()
    for tag in soup.find_all(class_=_FURNITURE_CLASS):
        if not tag.decomposed:
            tag.decompose()
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        level = int(tag.name[1])
        tag.replace_with(f"\n{_HEADING_MARK}{level} {tag.get_text(' ', strip=True)}\n")
    for tag in soup.find_all(["p", "li", "pre", "div", "tr", "dt", "dd", "table", "br"]):
        tag.insert_after("\n\n")  # block boundaries end sentences, whatever the markup
    sections = _split_marked(soup.get_text(""), top=(title,) if title else ())
    return sections, title


def _split_marked(text: str, *, top: tuple[str, ...] = ()) -> list[Section]:
    """Text with heading marks ("\\ue000<level> <heading>" lines) as sections."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []

    def close() -> None:
        if any(line.strip() for line in lines):
            headings = top + tuple(heading for _, heading in stack)
            sections.append(Section(_dedupe(headings), "\n".join(lines)))
        lines.clear()

    for line in text.split("\n"):
        if line.startswith(_HEADING_MARK):
            close()
            level, _, heading = line[1:].partition(" ")
            heading = _clean_heading(heading)
            while stack and stack[-1][0] >= int(level):
                stack.pop()
            if heading:
                stack.append((int(level), heading))
        else:
            lines.append(line)
    close()
    return sections


def _clean_heading(heading: str) -> str:
    return _SPACES.sub(" ", heading.replace("\n", " ")).strip(" #¶")


def _dedupe(headings: tuple[str, ...]) -> tuple[str, ...]:
    """Headings without one that repeats its parent (a page's title and its h1)."""
    kept: list[str] = []
    for heading in headings:
        if not kept or heading.casefold() not in kept[-1].casefold():
            kept.append(heading)
    return tuple(kept)


_MD_FENCE = re.compile(r"^\s*(```|~~~)")
_MD_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)[ \t]*#*[ \t]*$")
_MD_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_MD_RULE = re.compile(r"^ {0,3}([-*_])([ \t]*\1){2,}[ \t]*$")
_MD_TABLE_RULE = re.compile(r"^[\s|:-]+$")
_MD_LINE_START = re.compile(r"^ {0,3}(>[ \t]?)*([-*+][ \t]+|\d{1,9}[.)][ \t]+)?(\[[ xX]\][ \t]+)?")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)|\[([^\]]+)\]\[[^\]]*\]")
_MD_LINK_DEFINITION = re.compile(r"^ {0,3}\[[^\]]+\]:\s+\S+")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|~~)(?=\S)(.+?)(?<=\S)\1")
_MD_CODE = re.compile(r"`+([^`]*)`+")
_MD_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<!--.*?-->")


def markdown_sections(text: str) -> list[Section]:
    """Markdown as sections of plain text: headings become the sections' context, and
    emphasis, links, code marks, list and quote markers, tables' rules and HTML tags go."""
    marked: list[str] = []
    fenced = False
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for number, line in enumerate(lines):
        if _MD_FENCE.match(line):
            fenced = not fenced
            marked.append("")
            continue
        if fenced:
            marked.append(line)
            continue
        heading = _MD_ATX.match(line)
        following = lines[number + 1] if number + 1 < len(lines) else ""
        if heading:
            marked.append(
                f"{_HEADING_MARK}{len(heading.group(1))} {markdown_inline(heading.group(2))}"
            )
        elif line.strip() and _MD_SETEXT.match(following) and not _MD_RULE.match(line):
            level = 1 if following.strip().startswith("=") else 2
            marked.append(f"{_HEADING_MARK}{level} {markdown_inline(line.strip())}")
        elif _MD_SETEXT.match(line) and marked and marked[-1].startswith(_HEADING_MARK):
            continue  # the underline of the heading just marked
        elif _MD_RULE.match(line) or _MD_LINK_DEFINITION.match(line):
            marked.append("")
        elif "|" in line and _MD_TABLE_RULE.match(line):
            continue
        else:
            start = _MD_LINE_START.match(line)
            if start and start.group(2):
                marked.append("")  # a list item is a sentence of its own
            line = line[start.end() if start else 0 :]
            if line.count("|") >= 2:
                marked.append("")
                line = " ".join(cell.strip() for cell in line.strip().strip("|").split("|")) + "."
            marked.append(markdown_inline(line))
    return _split_marked("\n".join(marked))


def markdown_inline(text: str) -> str:
    """Inline Markdown as the text a reader sees."""
    text = _MD_TAG.sub("", text)
    text = _MD_IMAGE.sub(r"\1", text)
    text = _MD_LINK.sub(lambda match: match.group(1) or match.group(2), text)
    text = _MD_CODE.sub(r"\1", text)
    for _ in range(2):  # nested emphasis: ***both***
        text = _MD_EMPHASIS.sub(r"\2", text)
    return text


def _pdf_text(data: bytes) -> str:
    """The PDF's text, read in a child process within PDF_TIME_LIMIT and
    PDF_MEMORY_LIMIT_MB (ingest/pdf_text.py)."""
    try:
        return read_pdf(
            data, seconds=settings.PDF_TIME_LIMIT, memory_mb=settings.PDF_MEMORY_LIMIT_MB
        )
    except PdfRefused as exc:
        logger.info("PDF refused: %s", exc)
        raise EmptyDocument(str(exc)) from None
