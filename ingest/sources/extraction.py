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
from markdown_it import MarkdownIt
from markdown_it.token import Token

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
_FURNITURE_ROLES = ["navigation", "banner", "contentinfo", "search"]  # ARIA's landmarks
# Tables of contents: DocBook's and Sphinx's.
_CONTENTS_CLASS = re.compile(r"^(toc|toctree-wrapper|localtoc|contents-local)$", re.I)
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


def _html_sections(
    data: bytes, charset: str | None, *, drop_contents: bool = True
) -> tuple[list[Section], str]:
    """The page's sections under their headings, and its title, without its furniture
    and without its tables of contents: they repeat the titles of other pages, which
    are not evidence of this one's content; unless a table of contents is all the page
    has (a chapter's first page), which is then read with it."""
    soup = BeautifulSoup(data, "html.parser", from_encoding=charset)
    title = _clean_heading(soup.title.get_text(" ", strip=True)) if soup.title else ""
    for tag in soup(_FURNITURE_TAGS):
        tag.decompose()
    for tag in soup.find_all(class_=_FURNITURE_CLASS):
        if not tag.decomposed:
            tag.decompose()
    for tag in soup.find_all(role=_FURNITURE_ROLES):
        if not tag.decomposed:
            tag.decompose()
    if drop_contents:
        for tag in soup.find_all(class_=_CONTENTS_CLASS):
            if not tag.decomposed:
                tag.decompose()
    for tag in soup.find_all(["h1", "h2", "h3", "h4", "h5", "h6"]):
        level = int(tag.name[1])
        tag.replace_with(f"\n{_HEADING_MARK}{level} {tag.get_text(' ', strip=True)}\n")
    for tag in soup.find_all("pre"):  # each line of code, or each command, a line of its own
        lines = [line for line in tag.get_text("").split("\n") if line.strip()]
        tag.replace_with("\n\n" + "\n\n".join(lines) + "\n\n")
    for tag in soup.find_all(["p", "li", "div", "tr", "dt", "dd", "table", "br"]):
        tag.insert_after("\n\n")  # block boundaries end sentences, whatever the markup
    sections = _split_marked(soup.get_text(""), top=(title,) if title else ())
    if drop_contents and not any(normalise_whitespace(section.text) for section in sections):
        return _html_sections(data, charset, drop_contents=False)
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


# CommonMark with GitHub's tables and strikethrough, raw HTML recognised as such.
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n.*?\n(---|\.\.\.)[ \t]*(\n|\Z)", re.S)
# A MyST role before its code span ({ref}`pip freeze`): the role's name is markup.
_MYST_ROLE = re.compile(r"\{[A-Za-z][\w:+.-]*\}$")
_MYST_OPTION = re.compile(r"^:[\w-]+:")
# The inline HTML elements a Markdown writer uses for presentation; anything else that
# looks like a tag (a <Buffer> or <name> placeholder) is text and stays.
_HTML_INLINE = re.compile(
    r"^(<!--.*-->|</?(a|abbr|b|bdi|bdo|big|br|cite|code|del|dfn|em|font|i|img|ins|kbd|"
    r"mark|q|s|samp|small|span|strike|strong|sub|sup|time|tt|u|var|wbr)(\s[^>]*)?/?>)$",
    re.I | re.S,
)


def markdown_sections(text: str) -> list[Section]:
    """Markdown as sections of plain text, parsed as CommonMark (markdown-it-py): headings
    become the sections' context, and the markup goes while the text stays as written:
    an identifier's underscores are not emphasis, a <Type> placeholder is not a tag, a
    link is its text. Each paragraph, list item and table row is a block of its own, and
    each line of code a line of its own; MyST roles and directives' options go too."""
    text = _FRONT_MATTER.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    blocks: list[str] = []
    _markdown_blocks(_MARKDOWN.parse(text), blocks)
    return _split_marked("\n".join(blocks))


def _markdown_blocks(tokens: list[Token], blocks: list[str]) -> None:
    heading = 0
    row: list[str] | None = None
    for token in tokens:
        kind = token.type
        if kind == "heading_open":
            heading = int(token.tag[1])
        elif kind == "heading_close":
            heading = 0
        elif kind == "tr_open":
            row = []
        elif kind == "tr_close" and row is not None:
            blocks.extend(["", "; ".join(cell for cell in row if cell), ""])
            row = None
        elif kind == "inline":
            inline = markdown_inline_text(token.children or [])
            if heading:
                blocks.append(f"{_HEADING_MARK}{heading} {' '.join(inline.split())}")
            elif row is not None:
                row.append(inline.strip())
            else:
                blocks.extend(["", inline, ""])
        elif kind == "fence" and token.info.strip().startswith("{"):  # a MyST directive
            body = [line for line in token.content.split("\n") if not _MYST_OPTION.match(line)]
            _markdown_blocks(_MARKDOWN.parse("\n".join(body)), blocks)
        elif kind in ("fence", "code_block"):
            for line in token.content.split("\n"):  # a command or a line of code each
                blocks.extend(["", line])
            blocks.append("")
        elif kind == "html_block":
            blocks.extend(["", BeautifulSoup(token.content, "html.parser").get_text(" "), ""])


def markdown_inline_text(children: list[Token]) -> str:
    """An inline run of Markdown as the text a reader sees."""
    parts: list[str] = []
    for number, child in enumerate(children):
        kind, content = child.type, child.content
        following = children[number + 1].type if number + 1 < len(children) else ""
        if kind == "text" and following == "code_inline":
            content = _MYST_ROLE.sub("", content)
        if kind in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif not (kind == "html_inline" and _HTML_INLINE.match(content)):
            # text, code, an image's alt text, a <placeholder>; *_open/close have none
            parts.append(content)
    return "".join(parts)


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
