"""RTF documents, their text read by striprtf: each paragraph a block, each table row a
line of `cell; cell`. The title is the one the document's \\info group names, if any.

An RTF file is a tree of brace-delimited groups: one that never closes its groups was cut
short (a truncated upload), and is refused rather than indexed in part.
"""

from __future__ import annotations

import codecs
import re

from striprtf.striprtf import rtf_to_text

from ingest.exceptions import UnreadableDocument
from ingest.sources.extraction import PageProgress, Read, Section

# What moves the group depth: a brace, an escaped character (\{ \} \\ are text) or
# \binN, whose N bytes of binary data are skipped unread.
_TOKEN = re.compile(rb"\\bin(\d+) ?|\\[^a-zA-Z0-9]|[{}]")
_CODE_PAGE = re.compile(rb"\\ansicpg(\d+)")
_TITLE = re.compile(r"{\\info\b.*?{\\title\b ?([^{}]*)}", re.S)


def read_rtf(data: bytes, *, charset: str | None, progress: PageProgress | None = None) -> Read:
    """The document's paragraphs and table rows, as one section under its title."""
    _check_groups(data)
    source = data.decode(_code_page(data), errors="replace")
    try:
        text = rtf_to_text(source, errors="replace")
        found = _TITLE.search(source)
        title = rtf_to_text("{\\rtf1 " + found.group(1) + "}", errors="replace") if found else ""
    except (ValueError, IndexError, LookupError) as exc:  # a damaged \'xx escape, \uN
        raise UnreadableDocument(f"The RTF document is damaged ({exc})") from None
    title = " ".join(title.split())
    return Read([Section((title,) if title else (), _blocks(text))], title)


def _code_page(data: bytes) -> str:
    """The code page the document declares (\\ansicpgN), which its raw 8-bit bytes are
    in; Windows-1252 when it declares none or one Python does not know."""
    found = _CODE_PAGE.search(data[:4096])
    encoding = f"cp{int(found.group(1))}" if found else "cp1252"
    try:
        codecs.lookup(encoding)
    except LookupError:
        return "cp1252"
    return encoding


def _check_groups(data: bytes) -> None:
    """UnreadableDocument unless every group opened is closed, and none before it opens."""
    depth = 0
    position = 0
    while found := _TOKEN.search(data, position):
        position = found.end()
        if found.group(1):
            position += int(found.group(1))
        elif found.group() == b"{":
            depth += 1
        elif found.group() == b"}":
            depth -= 1
            if depth < 0:
                raise UnreadableDocument(
                    f"The RTF document is damaged: a group is closed at byte {found.start()} "
                    "that was never opened"
                )
    if depth:
        raise UnreadableDocument(
            f"The RTF document is truncated or damaged: it ends with {depth} "
            f"group{'s' if depth > 1 else ''} still open"
        )


def _blocks(text: str) -> str:
    """striprtf's text with a blank line after each paragraph, and its table rows (each
    cell ended by "|", each paragraph in a cell by a line break) as `cell; cell`."""
    text = re.sub(r"\n+\|", "|", text)
    blocks = []
    for line in text.split("\n"):
        if line.endswith("|"):
            line = "; ".join(cell.strip() for cell in line.split("|") if cell.strip())
        blocks.append(line)
    return "\n\n".join(blocks)
