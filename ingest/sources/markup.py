"""HTML and Markdown read as sections of plain text under their headings: markup and page
furniture (navigation, headers, footers, tables of contents) never reach the text."""

from __future__ import annotations

import re

from bs4 import BeautifulSoup
from markdown_it import MarkdownIt
from markdown_it.token import Token

from ingest.sources.extraction import (
    SPACES,
    PageProgress,
    Read,
    Section,
    decode_text,
    normalise_whitespace,
)

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
    return SPACES.sub(" ", heading.replace("\n", " ")).strip(" #¶")


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
