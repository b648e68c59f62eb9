"""Recognise a document's type from its content and name.

Accepted: plain text, Markdown, HTML, PDF (its text layer, and its scanned pages by OCR),
Word (.docx), PowerPoint (.pptx), Excel (.xlsx, .xls), CSV and TSV, OpenDocument (.odt,
.ods, .odp), EPUB, RTF, e-mail (.eml) and images of text (PNG, JPEG, TIFF, by OCR). The
content decides the reader; the name may only narrow it. A PDF named .txt is read as a
PDF, a file named .pdf that is not a PDF is refused, and a zip archive is a .docx, .xlsx
or EPUB by what it holds, not by its name.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from pathlib import PurePosixPath

from ingest.exceptions import UnreadableDocument, UnsupportedFileType

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
