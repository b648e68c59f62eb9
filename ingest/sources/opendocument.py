"""OpenDocument text (.odt) and presentations (.odp), read from their zip and XML.

The text is content.xml's, walked by one reader of ODF's text elements for both: headings
(`text:h` at their outline level), paragraphs, each list item and each table row
(`cell; cell`) a block, footnotes after their paragraph. Not read: styles.xml (page
headers and footers), comments (`office:annotation`), tracked deletions
(`text:tracked-changes`), tables of contents and indexes (they repeat the headings). The
title is meta.xml's `dc:title`, the outermost heading of every section.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ingest.exceptions import UnreadableDocument
from ingest.sources.containers import Container, capitalised, parse_xml
from ingest.sources.extraction import PageProgress, Read, Section

_NS = {
    "office": "urn:oasis:names:tc:opendocument:xmlns:office:1.0",
    "text": "urn:oasis:names:tc:opendocument:xmlns:text:1.0",
    "table": "urn:oasis:names:tc:opendocument:xmlns:table:1.0",
    "draw": "urn:oasis:names:tc:opendocument:xmlns:drawing:1.0",
    "presentation": "urn:oasis:names:tc:opendocument:xmlns:presentation:1.0",
    "manifest": "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0",
    "dc": "http://purl.org/dc/elements/1.1/",
}


def _q(name: str) -> str:
    """ "text:p" as ElementTree spells it: "{urn:...:text:1.0}p"."""
    prefix, _, local = name.partition(":")
    return f"{{{_NS[prefix]}}}{local}"


_H, _P, _TABLE = _q("text:h"), _q("text:p"), _q("table:table")
_SPACE, _TAB, _BREAK = _q("text:s"), _q("text:tab"), _q("text:line-break")
_NOTE, _NOTE_BODY = _q("text:note"), _q("text:note-body")
_ROW, _CELL = _q("table:table-row"), _q("table:table-cell")
_ROW_GROUPS = {
    _q(f"table:{group}") for group in ("table-header-rows", "table-rows", "table-row-group")
}
_DRAW = f"{{{_NS['draw']}}}"
_PAGE, _NOTES = _q("draw:page"), _q("presentation:notes")
_CLASS, _NAME = _q("presentation:class"), _q("draw:name")
_LEVEL = _q("text:outline-level")
# Not the document's text: comments, deleted text kept for change tracking, what repeats
# other text (tables of contents, indexes), declarations, forms, a slide's header and
# footer declarations, a footnote's number.
_SKIPPED = {
    _q(name)
    for name in (
        "office:annotation",
        "office:annotation-end",
        "office:forms",
        "text:tracked-changes",
        "text:table-of-content",
        "text:illustration-index",
        "text:table-index",
        "text:object-index",
        "text:user-index",
        "text:alphabetical-index",
        "text:bibliography",
        "text:sequence-decls",
        "text:variable-decls",
        "text:user-field-decls",
        "text:note-citation",
        "text:soft-page-break",
        "presentation:header-decl",
        "presentation:footer-decl",
        "presentation:date-time-decl",
        "table:covered-table-cell",
    )
}

# A block of text: its heading level (0 for a paragraph, a list item, a table row), its text.
Block = tuple[int, str]


def read_odt(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """The text document's sections, one under each heading, with the path of headings
    above it (the title first)."""
    title, body = _open(data, what="the OpenDocument text", body="office:text")
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []

    def close() -> None:
        if lines:
            headings = (title,) if title else ()
            sections.append(Section(headings + tuple(h for _, h in stack), "\n\n".join(lines)))
        lines.clear()

    for level, text in _walk(body):
        if not level:
            lines.append(text)
            continue
        close()
        while stack and stack[-1][0] >= level:
            stack.pop()
        if heading := " ".join(text.split()):
            stack.append((level, heading))
    close()
    return Read(sections, title)


def read_odp(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """One section per slide, its page the slide's number: the slide's title frame (else
    its name) as heading under the presentation's title, its text, then its speaker
    notes."""
    title, body = _open(data, what="the OpenDocument presentation", body="office:presentation")
    sections = []
    for number, slide in enumerate(body.iter(_PAGE), start=1):
        titles = [child for child in slide if child.get(_CLASS) == "title"]
        heading = " ".join(" ".join(text for _, text in _walk(titles)).split())
        heading = heading or slide.get(_NAME, "") or f"Slide {number}"
        shown = [child for child in slide if child not in titles and child.tag != _NOTES]
        notes = [child for child in slide if child.tag == _NOTES]
        text = "\n\n".join(text for _, text in _walk(shown + notes))
        headings = (title, heading) if title and title != heading else (heading,)
        sections.append(Section(headings, text, (number, number)))
    return Read(sections, title)


def _open(data: bytes, *, what: str, body: str) -> tuple[str, Any]:
    """The document's title and its body element (office:text, office:presentation);
    UnreadableDocument when it is encrypted, damaged or not of that kind."""
    container = Container(data, what=what)
    if "META-INF/manifest.xml" in container:
        manifest = parse_xml(container.read("META-INF/manifest.xml"), what=f"{what}'s manifest")
        if manifest.find(f".//{_q('manifest:encryption-data')}") is not None:
            raise UnreadableDocument(
                f"{capitalised(what)} is encrypted with a password: save it without one and "
                "upload it again"
            )
    content = container.read("content.xml")
    if not content.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise UnreadableDocument(
            f"{capitalised(what)} is encrypted or damaged: its content.xml is not XML"
        )
    root = parse_xml(content, what=f"{what}'s content.xml")
    element = root.find(f"{_q('office:body')}/{_q(body)}")
    if element is None:
        raise UnreadableDocument(f"{capitalised(what)} is damaged: content.xml has no {body}")
    title = ""
    if "meta.xml" in container:
        found = parse_xml(container.read("meta.xml"), what=f"{what}'s meta.xml").find(
            f".//{_q('dc:title')}"
        )
        title = " ".join((found.text or "").split()) if found is not None else ""
    return title, element


def _walk(elements: Any) -> Iterator[Block]:
    """The blocks inside an element (or a list of elements), in document order."""
    try:
        for child in elements:
            yield from _walk_one(child)
    except RecursionError:
        raise UnreadableDocument(
            "The document is damaged: its elements are nested too deeply to read"
        ) from None


def _walk_one(element: Any) -> Iterator[Block]:
    tag = element.tag
    if tag in _SKIPPED:
        return
    if tag in (_H, _P):
        later: list[Any] = []
        text = _inline(element, later)
        if text.strip():
            yield (int(element.get(_LEVEL) or 1) if tag == _H else 0), text
        for inner in later:
            yield from _walk(inner)
    elif tag == _TABLE:
        for row in _rows(element):
            cells = (" ".join(text for _, text in _walk(cell)) for cell in row.iter(_CELL))
            if line := "; ".join(cell.strip() for cell in cells if cell.strip()):
                yield 0, line
    else:  # sections, lists and their items, frames and text boxes, slides' shapes
        yield from _walk(element)


def _rows(table: Any) -> Iterator[Any]:
    for child in table:
        if child.tag == _ROW:
            yield child
        elif child.tag in _ROW_GROUPS:
            yield from _rows(child)


def _inline(element: Any, later: list[Any]) -> str:
    """A paragraph's text; what it anchors that is made of paragraphs of its own (a
    footnote's body, a frame's text box) goes to `later`, read after it."""
    parts = [element.text or ""]
    for child in element:
        tag = child.tag
        if tag == _SPACE:
            parts.append(" " * int(child.get(_q("text:c")) or 1))
        elif tag == _TAB:
            parts.append("\t")
        elif tag == _BREAK:
            parts.append("\n")
        elif tag == _NOTE:
            later.extend(child.iter(_NOTE_BODY))
        elif tag.startswith(_DRAW):
            later.append(child)
        elif tag not in _SKIPPED:
            parts.append(_inline(child, later))
        parts.append(child.tail or "")
    return "".join(parts)
