"""Recognise a document's type from its content and name, and extract its text.

Accepted: plain text, Markdown, HTML, PDF (its text layer, and its scanned pages by OCR),
Word (.docx), PowerPoint (.pptx), Excel (.xlsx, .xls), CSV and TSV, OpenDocument (.odt,
.ods, .odp), EPUB, RTF, e-mail (.eml) and images of text (PNG, JPEG, TIFF, by OCR). The
content decides the reader; the name may only narrow it. A PDF named .txt is read as a
PDF, a file named .pdf that is not a PDF is refused, and a zip archive is a .docx, .xlsx
or EPUB by what it holds, not by its name.

Each reader gives the document as sections: the text under each heading, with the path
of headings above it ("Title > Chapter > Section"), which chunks carry as context, and
for formats with pages (PDF, slides, images) the pages it spans. Markup and page
furniture (navigation, headers, footers) never reach the text.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Protocol

from bs4 import BeautifulSoup
from charset_normalizer import from_bytes
from markdown_it import MarkdownIt
from markdown_it.token import Token

from ingest.exceptions import EmptyDocument, UnreadableDocument, UnsupportedFileType

logger = logging.getLogger(__name__)

ACCEPTED = (
    "text (.txt), Markdown (.md), HTML (.html), PDF (.pdf), Word (.docx), PowerPoint "
    "(.pptx), Excel (.xlsx, .xls), CSV (.csv, .tsv), OpenDocument (.odt, .ods, .odp), "
    "EPUB (.epub), RTF (.rtf), e-mail (.eml) and images of text (.png, .jpg, .tiff)"
)
EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".xhtml": "html",
    ".pdf": "pdf",
    ".docx": "docx",
    ".docm": "docx",  # macro-enabled: the text is read, the macros never run
    ".pptx": "pptx",
    ".pptm": "pptx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".xls": "xls",
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".odt": "odt",
    ".ods": "ods",
    ".odp": "odp",
    ".epub": "epub",
    ".rtf": "rtf",
    ".eml": "eml",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".tif": "tiff",
    ".tiff": "tiff",
}
# Formats read from a binary container, which the content must match.
BINARY_KINDS = frozenset(
    ["pdf", "docx", "pptx", "xlsx", "xls", "odt", "ods", "odp", "epub", "png", "jpeg", "tiff"]
)
_OOXML = "application/vnd.openxmlformats-officedocument"
MEDIA_TYPES = {
    "text": "text/plain",
    "markdown": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": f"{_OOXML}.wordprocessingml.document",
    "pptx": f"{_OOXML}.presentationml.presentation",
    "xlsx": f"{_OOXML}.spreadsheetml.sheet",
    "xls": "application/vnd.ms-excel",
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "odt": "application/vnd.oasis.opendocument.text",
    "ods": "application/vnd.oasis.opendocument.spreadsheet",
    "odp": "application/vnd.oasis.opendocument.presentation",
    "epub": "application/epub+zip",
    "rtf": "application/rtf",
    "eml": "message/rfc822",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "tiff": "image/tiff",
}
CONTENT_TYPES = {media: kind for kind, media in MEDIA_TYPES.items()} | {
    "text/x-markdown": "markdown",
    "application/xhtml+xml": "html",
    "application/vnd.ms-word.document.macroenabled.12": "docx",
    "application/vnd.ms-powerpoint.presentation.macroenabled.12": "pptx",
    "application/vnd.ms-excel.sheet.macroenabled.12": "xlsx",
    "application/csv": "csv",
    "text/rtf": "rtf",
    "image/jpg": "jpeg",
}
# Legacy binary Office formats: nothing here reads them (no LibreOffice in the image).
_LEGACY_OFFICE = {
    ".doc": "a legacy Word document (.doc): save it as .docx and upload that",
    ".dot": "a legacy Word template (.dot): save it as .docx and upload that",
    ".ppt": "a legacy PowerPoint presentation (.ppt): save it as .pptx and upload that",
    ".pps": "a legacy PowerPoint slide show (.pps): save it as .pptx and upload that",
}
# Signatures of binary formats people upload by mistake, for a precise refusal.
_BINARY_SIGNATURES = {
    b"GIF8": "a GIF image",
    b"\x7fELF": "an executable",
    b"MZ": "a Windows executable",
    b"\x1f\x8b": "a gzip archive",
    b"Rar!": "a RAR archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
}
_IMAGE_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
}
_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ODF_MEDIA = {
    "application/vnd.oasis.opendocument.text": "odt",
    "application/vnd.oasis.opendocument.spreadsheet": "ods",
    "application/vnd.oasis.opendocument.presentation": "odp",
    "application/epub+zip": "epub",
}
_OOXML_PARTS = {
    "word/document.xml": "docx",
    "ppt/presentation.xml": "pptx",
    "xl/workbook.xml": "xlsx",
}
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html|head|body)\b", re.I | re.S)
# An RFC 5322 message: header lines from the first, with a From: and a Subject: or Date:.
_MAIL_HEADER = re.compile(
    rb"^(Return-Path|Received|From|To|Delivered-To|MIME-Version|Message-ID|Date|Subject|"
    rb"X-[\w-]+):[ \t]",
    re.I,
)
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
    # The first and last page the text is on, 1-based as a PDF viewer counts them (not
    # the printed numbers); None for a format without pages.
    pages: tuple[int, int] | None = None

    @property
    def context(self) -> str:
        return HEADING_SEPARATOR.join(self.headings)


@dataclass(frozen=True)
class Read:
    """What a reader makes of a document: its sections, and its title if it names one."""

    sections: list[Section]
    title: str = ""


# Pages read so far and the document's pages: a reader of slow pages (OCR) reports each.
PageProgress = Callable[[int, int], None]


class Reader(Protocol):
    def __call__(
        self, data: bytes, *, charset: str | None, progress: PageProgress | None
    ) -> Read: ...


@dataclass(frozen=True)
class Extracted:
    kind: str  # a key of MEDIA_TYPES
    content_type: str
    sections: list[Section]
    title: str = ""

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


# Each kind's reader, imported when a document of the kind first comes: "module:function".
READERS: dict[str, str] = {
    "text": "ingest.sources.extraction:read_text",
    "markdown": "ingest.sources.extraction:read_markdown",
    "html": "ingest.sources.extraction:read_html",
    "pdf": "ingest.sources.scans:read_pdf",
    "png": "ingest.sources.scans:read_image",
    "jpeg": "ingest.sources.scans:read_image",
    "tiff": "ingest.sources.scans:read_image",
    "docx": "ingest.sources.office:read_docx",
    "pptx": "ingest.sources.office:read_pptx",
    "xlsx": "ingest.sources.spreadsheets:read_xlsx",
    "xls": "ingest.sources.spreadsheets:read_xls",
    "csv": "ingest.sources.spreadsheets:read_csv",
    "tsv": "ingest.sources.spreadsheets:read_tsv",
    "odt": "ingest.sources.opendocument:read_odt",
    "ods": "ingest.sources.spreadsheets:read_ods",
    "odp": "ingest.sources.opendocument:read_odp",
    "epub": "ingest.sources.ebooks:read_epub",
    "rtf": "ingest.sources.rtf:read_rtf",
    "eml": "ingest.sources.mail:read_eml",
}


def reader_of(kind: str) -> Reader:
    module, _, name = READERS[kind].partition(":")
    reader: Reader = getattr(importlib.import_module(module), name)
    return reader


def detect_kind(data: bytes, *, filename: str = "", content_type: str = "") -> str:
    """The document kind (a key of MEDIA_TYPES), or UnsupportedFileType naming the
    accepted types, or UnreadableDocument for an encrypted or damaged container."""
    suffix = PurePosixPath(filename).suffix.lower() if filename else ""
    if suffix in _LEGACY_OFFICE and not data.startswith((b"%PDF-", _ZIP, b"{\\rtf")):
        raise UnsupportedFileType(
            f"{filename!r} is {_LEGACY_OFFICE[suffix]} (accepted are {ACCEPTED})"
        )
    named = EXTENSIONS.get(suffix)
    if suffix and named is None:
        raise UnsupportedFileType(f"{filename!r} is not an accepted type: accepted are {ACCEPTED}")
    declared = CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
    expected = named or declared

    found = _binary_kind(data, expected=expected, filename=filename)
    if found:
        return found
    for signature, what in _BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise UnsupportedFileType(f"the content is {what}: accepted are {ACCEPTED}")
    if expected in BINARY_KINDS:
        raise UnsupportedFileType(
            f"{filename or 'the document'} is not {_A[expected]}: its content is not one "
            f"(accepted are {ACCEPTED})"
        )
    if data.lstrip()[:5] == b"{\\rtf":
        return "rtf"
    if not _looks_like_text(data):
        raise UnsupportedFileType(f"the content is binary, not text: accepted are {ACCEPTED}")
    if expected:
        return expected
    if _HTML_START.match(data[:2048]):
        return "html"
    return "eml" if _looks_like_mail(data) else "text"


_A = {
    "pdf": "a PDF (it does not start with %PDF-)",
    "docx": "a Word document (.docx)",
    "pptx": "a PowerPoint presentation (.pptx)",
    "xlsx": "an Excel workbook (.xlsx)",
    "xls": "an Excel 97-2003 workbook (.xls)",
    "odt": "an OpenDocument text (.odt)",
    "ods": "an OpenDocument spreadsheet (.ods)",
    "odp": "an OpenDocument presentation (.odp)",
    "epub": "an EPUB e-book",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "tiff": "a TIFF image",
}


def _binary_kind(data: bytes, *, expected: str | None, filename: str) -> str | None:
    """The kind of a binary container by its content; None when it is none of ours."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    for signature, kind in _IMAGE_SIGNATURES.items():
        if data.startswith(signature):
            return kind
    if data.startswith(_ZIP):
        return _zip_kind(data, expected=expected, filename=filename)
    if data.startswith(_OLE):
        return _ole_kind(data, expected=expected)
    return None


def _zip_kind(data: bytes, *, expected: str | None, filename: str) -> str:
    """A zip's kind by what it holds: ODF and EPUB name their type in a first member
    `mimetype`, Office Open XML files by their main part."""
    import io
    import zipfile
    import zlib

    try:
        names = set(zipfile.ZipFile(io.BytesIO(data)).namelist())
        mimetype = ""
        if "mimetype" in names:
            # Its first bytes only: the member may be a zip bomb of its own.
            with zipfile.ZipFile(io.BytesIO(data)) as archive, archive.open("mimetype") as member:
                mimetype = member.read(100).decode("ascii", "replace").strip()
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        OSError,
        EOFError,
        ValueError,
        NotImplementedError,  # a compression method or zip version zipfile lacks
        zlib.error,  # a damaged deflate stream
    ) as exc:
        if expected in BINARY_KINDS:
            raise UnreadableDocument(
                f"{filename or 'The document'} cannot be read: the file is damaged or "
                f"truncated ({exc})"
            ) from None
        raise UnsupportedFileType(
            f"the content is a damaged ZIP archive: accepted are {ACCEPTED}"
        ) from None
    if mimetype in _ODF_MEDIA:
        return _ODF_MEDIA[mimetype]
    for part, kind in _OOXML_PARTS.items():
        if part in names:
            return kind
    raise UnsupportedFileType(
        f"the content is a ZIP archive, not an Office, OpenDocument or EPUB file: "
        f"accepted are {ACCEPTED}"
    )


def _ole_kind(data: bytes, *, expected: str | None = None) -> str:
    """A Microsoft compound file's kind by its streams' names (UTF-16 in its directory):
    an .xls workbook, or a refusal saying what it is (a password-protected Office Open XML
    file is such a container too)."""

    def has(stream: str) -> bool:
        return stream.encode("utf-16-le") in data

    if has("EncryptedPackage"):
        raise UnreadableDocument(
            "The document is encrypted with a password: remove the password and upload it again"
        )
    if has("Workbook") or has("Book"):
        return "xls"
    if has("WordDocument"):
        raise UnsupportedFileType(
            f"the content is {_LEGACY_OFFICE['.doc']} (accepted are {ACCEPTED})"
        )
    if has("PowerPoint Document"):
        raise UnsupportedFileType(
            f"the content is {_LEGACY_OFFICE['.ppt']} (accepted are {ACCEPTED})"
        )
    if expected == "xls":  # its directory, which names the streams, was cut off
        raise UnreadableDocument(
            "The Excel workbook cannot be read: it is damaged or truncated (no Workbook stream)"
        )
    raise UnsupportedFileType(
        f"the content is a legacy Microsoft Office file: accepted are {ACCEPTED}"
    )


def _looks_like_mail(data: bytes) -> bool:
    """Whether the text is an e-mail message: header lines from its first line on, with
    From: and Subject: or Date: among them, before the first blank line."""
    head = data[:8192].replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].split(b"\n")
    if not head or not _MAIL_HEADER.match(head[0]):
        return False
    names = {line.split(b":", 1)[0].lower() for line in head if b":" in line[:80]}
    return b"from" in names and bool(names & {b"subject", b"date"})


def extract(
    data: bytes,
    *,
    filename: str = "",
    content_type: str = "",
    charset: str | None = None,
    progress: PageProgress | None = None,
) -> Extracted:
    """Text of the document, or EmptyDocument when there is none to index. `progress`
    hears of each page read, from readers whose pages are slow (OCR)."""
    kind = detect_kind(data, filename=filename, content_type=content_type)
    read = reader_of(kind)(data, charset=charset, progress=progress)
    sections = [
        Section(section.headings, text, section.pages)
        for section in read.sections
        if (text := normalise_whitespace(section.text))
    ]
    if not sections:
        raise EmptyDocument("No text to index: the document is empty")
    return Extracted(kind=kind, content_type=MEDIA_TYPES[kind], sections=sections, title=read.title)


def read_text(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    return Read([Section((), decode_text(data, charset))])


def read_markdown(
    data: bytes, *, charset: str | None, progress: PageProgress | None = None
) -> Read:
    return Read(markdown_sections(decode_text(data, charset)))


def read_html(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    sections, title = _html_sections(data, charset)
    return Read(sections, title)


def html_sections(data: bytes, charset: str | None = None) -> tuple[list[Section], str]:
    """An HTML page's sections and title (for readers of formats made of HTML: EPUB's
    chapters, an e-mail's HTML body)."""
    return _html_sections(data, charset)


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
