"""Check a question set of bench/data/relevance/ against its corpus: every answerable
item's `document` exists and its `evidence` occurs in that document's visible text (tags
removed, white space folded, case ignored).

    python3 bench/check_relevance_set.py licences
"""

from __future__ import annotations

import html.parser
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("question", "keywords", "paraphrase", "near-miss")


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1
        self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def fold(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().casefold()


def visible_text(path: Path) -> str:
    raw = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".html":
        parser = _Text()
        parser.feed(raw)
        raw = "".join(parser.parts)
    return fold(raw)


def check(corpus: str) -> int:
    directory = ROOT / "bench" / "out" / "corpora" / corpus
    data = json.loads((ROOT / "bench" / "data" / "relevance" / f"{corpus}.json").read_text())
    problems = 0
    for number, item in enumerate(data["items"], start=1):
        kind = item.get("kind")
        if kind not in KINDS or not item.get("q"):
            print(f"{number}: kind must be one of {KINDS} and q set: {item}")
            problems += 1
            continue
        if kind == "near-miss":
            continue
        path = directory / str(item.get("document"))
        if not path.is_file():
            print(f"{number}: no document {item.get('document')!r} in {directory}")
            problems += 1
        elif fold(item.get("evidence", "")) not in visible_text(path) or not item["evidence"]:
            print(f"{number}: evidence not in {path.name}: {item.get('evidence')!r}")
            problems += 1
    print(dict(Counter(item.get("kind") for item in data["items"])), f"{problems} problems")
    return problems


if __name__ == "__main__":
    sys.exit(1 if check(sys.argv[1]) else 0)
