"""EPUB e-books, read from their zip and XML: META-INF/container.xml names the package
(the OPF), whose spine lists the chapters' XHTML documents in reading order; each is
read by the HTML reader, under the book's title, its footnotes as text of their own.

Not read: the navigation document and the NCX (a table of contents repeats the
chapters' headings), stylesheets, images. A book whose chapters are encrypted (DRM,
listed in META-INF/encryption.xml) is refused; obfuscated fonts, which encryption.xml
lists too, are no reason to.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any
from urllib.parse import unquote

from ingest.exceptions import UnreadableDocument
from ingest.sources.containers import Container, parse_xml
from ingest.sources.extraction import PageProgress, Read, Section
from ingest.sources.markup import html_sections

_CONTAINER = "{urn:oasis:names:tc:opendocument:xmlns:container}"
_OPF = "{http://www.idpf.org/2007/opf}"
_DC_TITLE = "{http://purl.org/dc/elements/1.1/}title"
_CIPHER_REFERENCE = "{http://www.w3.org/2001/04/xmlenc#}CipherReference"
_XHTML = frozenset(["application/xhtml+xml", "text/html"])
_WHAT = "the EPUB e-book"
# EPUB 3's footnotes, marked by epub:type or their ARIA role: the reference's number
# would end up inside the sentence that cites it ("capped with wax.1"), and the note is an
# <aside>, which the HTML reader drops as page furniture. The reference goes, the note is
# read as a block. Tags are found by a scan that stops at the next < or >, so a page of
# unclosed tags costs linear time.
_TAG = re.compile(rb"<(/?)(a|aside)\b([^<>]*+)>", re.I)
_NOTE_REFERENCE = re.compile(rb'(?:epub:type|role)\s*=\s*"[^"]*\b(?:doc-)?noteref\b', re.I)
_NOTE = re.compile(rb'(?:epub:type|role)\s*=\s*"[^"]*\b(?:doc-)?(?:foot|end|rear)note\b', re.I)


def read_epub(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """The chapters' sections in reading order, each chapter's headings under the book's
    title (dc:title). A chapter's own <title> is dropped when it only repeats the book's
    or names the file (pandoc writes "ch001.xhtml"), and kept as a heading otherwise."""
    book = Container(data, what=_WHAT)
    package_path = _package_path(book)
    package = parse_xml(book.read(package_path), what=f"{_WHAT}'s package ({package_path})")
    found = package.find(f"{_OPF}metadata/{_DC_TITLE}")
    title = " ".join((found.text or "").split()) if found is not None else ""
    chapters = _spine(package, base=posixpath.dirname(package_path))
    _refuse_encrypted(book, chapters)
    top = (title,) if title else ()
    sections: list[Section] = []
    for path in chapters:
        if path not in book:
            continue  # a spine entry the zip lacks: readers skip it, and so do we
        chapter, page_title = html_sections(_with_notes_as_text(book.read(path)))
        for section in chapter:
            headings = section.headings
            if page_title and headings[:1] == (page_title,) and _says_nothing(page_title, title):
                headings = headings[1:]
            if headings[:1] and headings[0].casefold() == title.casefold():
                headings = headings[1:]
            sections.append(Section(top + headings, section.text))
    return Read(sections, title)


def _package_path(book: Container) -> str:
    container = parse_xml(book.read("META-INF/container.xml"), what=f"{_WHAT}'s container.xml")
    for rootfile in container.iter(f"{_CONTAINER}rootfile"):
        path = rootfile.get("full-path", "")
        if path and rootfile.get("media-type", "") in ("", "application/oebps-package+xml"):
            return unquote(path)
    raise UnreadableDocument("The EPUB e-book is damaged: container.xml names no package")


def _spine(package: Any, *, base: str) -> list[str]:
    """The zip paths of the spine's XHTML documents, in reading order, without the
    navigation document."""
    items = {
        item.get("id"): item
        for item in package.iter(f"{_OPF}item")
        if item.get("media-type") in _XHTML and "nav" not in item.get("properties", "").split()
    }
    paths = []
    for itemref in package.iter(f"{_OPF}itemref"):
        item = items.get(itemref.get("idref"))
        if item is not None and item.get("href"):
            href = unquote(item.get("href").split("#")[0])
            paths.append(posixpath.normpath(posixpath.join(base, href)))
    if not paths:
        raise UnreadableDocument("The EPUB e-book is damaged: its spine lists no chapter")
    return paths


def _refuse_encrypted(book: Container, chapters: list[str]) -> None:
    if "META-INF/encryption.xml" not in book:
        return
    encryption = parse_xml(book.read("META-INF/encryption.xml"), what=f"{_WHAT}'s encryption.xml")
    encrypted = {
        posixpath.normpath(unquote(reference.get("URI", "")))
        for reference in encryption.iter(_CIPHER_REFERENCE)
    }
    if encrypted & set(chapters):
        raise UnreadableDocument(
            "The EPUB e-book is encrypted (DRM): its chapters cannot be read; upload a "
            "copy without DRM"
        )


def _with_notes_as_text(page: bytes) -> bytes:
    if b"note" not in page:
        return page
    out = []
    copied = 0  # where the part of the page not yet in `out` starts
    skipping = False  # inside a note reference, up to its </a>
    asides: list[bool] = []  # for each <aside> open, whether it is a note
    for tag in _TAG.finditer(page):
        closing, name, attributes = tag.group(1), tag.group(2).lower(), tag.group(3)
        if name == b"a":
            if not closing and not skipping and _NOTE_REFERENCE.search(attributes):
                out.append(page[copied : tag.start()])
                copied, skipping = tag.start(), True
            elif closing and skipping:
                copied, skipping = tag.end(), False
            continue
        if closing:
            note = asides.pop() if asides else False
        else:
            note = bool(_NOTE.search(attributes))
            asides.append(note)
        if note and not skipping:  # the note as a <div>, which the HTML reader reads
            out.append(page[copied : tag.start()] + b"<%sdiv%s>" % (closing, attributes))
            copied = tag.end()
    out.append(page[copied:])
    return b"".join(out)


def _says_nothing(page_title: str, book_title: str) -> bool:
    """Whether a chapter's <title> is the book's own or a file's name."""
    name = page_title.casefold()
    return name == book_title.casefold() or name.endswith((".xhtml", ".html", ".htm", ".xml"))
