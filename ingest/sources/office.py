"""Word (.docx, .docm) by python-docx and PowerPoint (.pptx, .pptm) by python-pptx.

A Word document's headings (Title, Heading 1 to 9, and styles based on them) open its
sections, each under the path of headings above it; every paragraph, list item and
table row is a block of its own (a table row reads "cell; cell; cell"). Headers, footers,
comments and footnotes are not the document's text and are not read. A presentation is a
section per slide, headed by the slide's title, with the slide as its page: the text of
its shapes (tables by rows, groups within), then its speaker notes.

Before a library sees the file, every member of the zip is read once within the
expansion limits (a zip bomb is refused), and every XML member's prolog is checked for a
document type declaration, which Office Open XML never has and entity expansion needs.
Macros are never run: nothing here executes anything, a .docm is read for its text.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any
from xml.parsers import expat

from ingest.exceptions import IngestError, UnreadableDocument
from ingest.sources.containers import Container, capitalised, damaged
from ingest.sources.extraction import PageProgress, Read, Section

_XML_MEMBER = re.compile(r"\.(xml|rels|vml)$", re.I)


class _Prolog(Exception):
    """Raised by the expat handlers to stop at the root element or a DTD."""


def check_members(container: Container) -> None:
    """Read each member once within the archive's limits (Container.check_all) and
    refuse an XML member that declares a document type (entity expansion): a DTD can
    only come before the root element, so only each member's prolog is parsed."""
    for name in container.names:
        if name.endswith("/"):
            continue
        data = container.read(name)
        if _XML_MEMBER.search(name) and _declares_doctype(data, what=container.what):
            raise UnreadableDocument(
                f"{capitalised(container.what)} declares XML entities in {name}, which are "
                "refused (entity expansion)"
            )


def _declares_doctype(data: bytes, *, what: str) -> bool:
    parser = expat.ParserCreate()
    found: list[bool] = []

    def doctype(*args: Any) -> None:
        found.append(True)
        raise _Prolog

    def root(*args: Any) -> None:
        raise _Prolog

    parser.StartDoctypeDeclHandler = doctype
    parser.StartElementHandler = root
    try:
        for start in range(0, len(data), 65_536):
            parser.Parse(data[start : start + 65_536], False)
        parser.Parse(b"", True)
    except _Prolog:
        pass
    except expat.ExpatError as exc:
        reason = expat.errors.messages.get(exc.code, str(exc))
        raise UnreadableDocument(
            f"{capitalised(what)} cannot be read: malformed XML ({reason})"
        ) from None
    return bool(found)


# -- Word ---------------------------------------------------------------------------------

# python-docx opens only a plain .docx: its Document() refuses a macro-enabled document
# or a template by the main part's content type, though their XML is the same. Their
# types are registered as a DocumentPart here and the package opened below Document();
# no release of python-docx (1.2.0) reads them otherwise.
_WORD_MAIN_TYPES = (
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
    "application/vnd.ms-word.document.macroEnabled.main+xml",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.template.main+xml",
    "application/vnd.ms-word.template.macroEnabledTemplate.main+xml",
)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
# Within a paragraph: what is text, and what holds none of the paragraph's own (deleted
# revisions, text boxes, which are shapes floating beside it, and the duplicate that
# markup compatibility keeps for older readers).
_CHARACTERS = {f"{_W}tab": " ", f"{_W}br": "\n", f"{_W}cr": "\n", f"{_W}noBreakHyphen": "-"}
_NOT_TEXT = frozenset([f"{_W}del", f"{_W}txbxContent", _MC_FALLBACK, f"{_W}pPr", f"{_W}rPr"])
_HEADING_STYLE = re.compile(r"^heading ([1-9])$", re.I)


def read_docx(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """A Word document's sections under their headings, in the order of its body."""
    what = "the Word document"
    check_members(Container(data, what=what))
    try:
        document = _open_word(data)
        levels = _heading_levels(document)
        title = (document.core_properties.title or "").strip()
        body = _WordBody(levels)
        body.walk(document.element.body)
    except IngestError:
        raise
    except Exception as exc:
        raise damaged(what, exc) from None
    return Read(body.sections(), title or body.title)


def _open_word(data: bytes) -> Any:
    from docx.opc.part import PartFactory
    from docx.package import Package
    from docx.parts.document import DocumentPart

    for content_type in _WORD_MAIN_TYPES:
        PartFactory.part_type_for.setdefault(content_type, DocumentPart)
    part = Package.open(io.BytesIO(data)).main_document_part
    if part.content_type not in _WORD_MAIN_TYPES or not isinstance(part, DocumentPart):
        raise UnreadableDocument(
            f"The Word document cannot be read: its main part is {part.content_type}"
        )
    return part.document


def _heading_levels(document: Any) -> dict[str, int]:
    """Each paragraph style that makes a heading, by style id, with its level: 0 for
    Title, n for Heading n, and the level of a style based on one (a custom heading)
    or with an outline level of its own."""
    from docx.enum.style import WD_STYLE_TYPE

    styles = [style for style in document.styles if style.type == WD_STYLE_TYPE.PARAGRAPH]
    levels: dict[str, int] = {}

    def level(style: Any, depth: int = 0) -> int | None:
        if style is None or depth > 20:
            return None
        name = style.name or ""
        if name.lower() == "title":
            return 0
        if match := _HEADING_STYLE.match(name):
            return int(match.group(1))
        outline = style.element.find(f"{_W}pPr/{_W}outlineLvl")
        if outline is not None:
            value = int(outline.get(f"{_W}val", "9"))
            return value + 1 if value < 9 else None
        return level(style.base_style, depth + 1)

    for style in styles:
        found = level(style)
        if found is not None and style.style_id:
            levels[style.style_id] = found
    return levels


class _WordBody:
    """The body's blocks gathered into sections as the headings come."""

    def __init__(self, levels: dict[str, int]) -> None:
        self.levels = levels
        self.stack: list[tuple[int, str]] = []
        self.blocks: list[str] = []
        self.done: list[Section] = []
        self.title = ""  # the first Title-styled paragraph's

    def walk(self, element: Any) -> None:
        for child in element.iterchildren():
            tag = child.tag
            if tag == f"{_W}p":
                self.paragraph(child)
            elif tag == f"{_W}tbl":
                self.table(child)
            elif tag in (f"{_W}sdt", f"{_W}sdtContent", f"{_W}customXml", f"{_W}ins"):
                self.walk(child)  # content controls and the like hold body content

    def paragraph(self, p: Any) -> None:
        text = _paragraph_text(p)
        style = p.find(f"{_W}pPr/{_W}pStyle")
        level = self.levels.get(style.get(f"{_W}val", "") if style is not None else "")
        if level is None:
            if text.strip():
                self.blocks.append(text)
            return
        heading = " ".join(text.split())
        if not heading:
            return
        self.close()
        if level == 0 and not self.title:
            self.title = heading
        while self.stack and self.stack[-1][0] >= level:
            self.stack.pop()
        self.stack.append((level, heading))

    def table(self, table: Any) -> None:
        for row in table.iterchildren(f"{_W}tr"):
            # Each w:tc once: a cell spanning columns is one w:tc, and the cells a
            # vertical merge continues hold no text of their own.
            cells = [" ".join(_cell_text(cell).split()) for cell in row.iterchildren(f"{_W}tc")]
            line = "; ".join(cell for cell in cells if cell)
            if line:
                self.blocks.append(line)

    def close(self) -> None:
        if self.blocks:
            headings = tuple(heading for _, heading in self.stack)
            # A blank line between blocks: each paragraph, item and row ends a sentence.
            self.done.append(Section(headings, "\n\n".join(self.blocks)))
        self.blocks = []

    def sections(self) -> list[Section]:
        self.close()
        return self.done


def _paragraph_text(p: Any) -> str:
    return "".join(_runs_text(p))


def _runs_text(element: Any) -> Iterator[str]:
    for child in element.iterchildren():
        tag = child.tag
        if tag == f"{_W}t":
            yield child.text or ""
        elif tag in _CHARACTERS:
            yield _CHARACTERS[tag]
        elif tag not in _NOT_TEXT and isinstance(tag, str):
            yield from _runs_text(child)  # runs, hyperlinks, insertions, fields, smart tags


def _cell_text(cell: Any) -> str:
    """A table cell's paragraphs, and those of any table within it, on one line."""
    parts = []
    for p in cell.iter(f"{_W}p"):
        parts.append(_paragraph_text(p))
    return " ".join(parts)


# -- PowerPoint ---------------------------------------------------------------------------


def read_pptx(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """A presentation's slides in the order presented, each a section and a page."""
    what = "the PowerPoint presentation"
    check_members(Container(data, what=what))
    try:
        from pptx import Presentation

        presentation = Presentation(io.BytesIO(data))
        sections = [
            _slide_section(slide, number)
            for number, slide in enumerate(presentation.slides, start=1)
        ]
        title = (presentation.core_properties.title or "").strip()
    except IngestError:
        raise
    except Exception as exc:
        raise damaged(what, exc) from None
    return Read(sections, title)


def _slide_section(slide: Any, number: int) -> Section:
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    blocks: list[str] = []
    for shape in slide.shapes:
        if title_shape is None or shape.shape_id != title_shape.shape_id:
            blocks.extend(_shape_blocks(shape))
    if slide.has_notes_slide:
        notes = slide.notes_slide.notes_text_frame
        if notes is not None:
            blocks.extend(paragraph.text for paragraph in notes.paragraphs)
    text = "\n\n".join(block for block in blocks if block.strip())
    return Section((title or f"Slide {number}",), text, (number, number))


def _shape_blocks(shape: Any) -> Iterator[str]:
    """A shape's text, a block per paragraph or table row; a group's shapes in turn."""
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
        for member in shape.shapes:
            yield from _shape_blocks(member)
    elif getattr(shape, "has_table", False) and shape.has_table:
        for row in shape.table.rows:
            # A merged cell's spanned cells hold nothing: each text once.
            cells = [" ".join(cell.text.split()) for cell in row.cells if not cell.is_spanned]
            yield "; ".join(cell for cell in cells if cell)
    elif shape.has_text_frame:
        for paragraph in shape.text_frame.paragraphs:
            yield paragraph.text
