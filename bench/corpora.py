"""The real corpora the relevance evaluation asks questions of (bench/eval_relevance.py).

None of this text was written here: each corpus is a Debian package's documentation (or a
file of the base system), copied under bench/out/corpora/<name>/ with the file names it
is ingested under, which the question sets of bench/data/relevance/ name.

    apt-get install postgresql-doc-15 python3-doc git-doc debian-policy debian-reference-en
    .venv/bin/python bench/corpora.py            # copies every corpus, prints the counts

| corpus | genre | role |
|---|---|---|
| pg-manual | a manual (PostgreSQL 15) | calibration |
| python-howto | web pages (the Python HOWTOs) | calibration |
| git-manual | a manual (git's manual pages) | held out |
| licences | legal texts (/usr/share/common-licenses) | held out |
| debian-policy | a specification (the Debian Policy Manual) | held out |
| debian-reference | web pages (the Debian Reference) | held out |
| debian-notes | plain notes (packages' README.Debian) | held out |

Calibration corpora are the ones any threshold of the answering rules may be set on;
held-out corpora are only ever reported.
"""

from __future__ import annotations

import gzip
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "corpora"
DOC = Path("/usr/share/doc")


@dataclass(frozen=True)
class Corpus:
    name: str
    genre: str
    held_out: bool
    package: str  # the Debian package that holds it

    @property
    def directory(self) -> Path:
        return OUT / self.name

    def files(self) -> list[Path]:
        return sorted(self.directory.iterdir()) if self.directory.is_dir() else []


CORPORA = [
    Corpus("pg-manual", "manual", False, "postgresql-doc-15"),
    Corpus("python-howto", "web pages", False, "python3-doc"),
    Corpus("git-manual", "manual", True, "git-doc"),
    Corpus("licences", "legal texts", True, "base-files"),
    Corpus("debian-policy", "specification", True, "debian-policy"),
    Corpus("debian-reference", "web pages", True, "debian-reference-en"),
    Corpus("debian-notes", "plain notes", True, "(installed packages)"),
]
BY_NAME = {corpus.name: corpus for corpus in CORPORA}

# The manual without its release notes and book index, as bench/eval_retrieval.py reads it.
SKIPPED_MANUAL_PAGES = ("release-", "bookindex")
# git's manual pages of commands and concepts; the technical notes and howtos are left out.
GIT_PAGES = ("git-*.html", "git*.html", "gitglossary.html")
LICENCES = (
    "GPL-2",
    "GPL-3",
    "LGPL-2.1",
    "LGPL-3",
    "Apache-2.0",
    "MPL-1.1",
    "MPL-2.0",
    "Artistic",
    "CC0-1.0",
    "BSD",
    "GFDL-1.3",
)


def _sources(corpus: Corpus) -> Iterator[tuple[Path, str]]:
    """(file to copy, name to ingest it under) of a corpus."""
    if corpus.name == "pg-manual":
        for page in sorted((DOC / "postgresql-doc-15" / "html").glob("*.html")):
            if not page.name.startswith(SKIPPED_MANUAL_PAGES):
                yield page, page.name
    elif corpus.name == "python-howto":
        for page in sorted((DOC / "python3.11-doc" / "html" / "howto").glob("*.html")):
            if page.name != "index.html":
                yield page, page.name
    elif corpus.name == "git-manual":
        seen: set[Path] = set()
        for pattern in GIT_PAGES:
            for page in sorted((DOC / "git-doc").glob(pattern)):
                if page not in seen:
                    seen.add(page)
                    yield page, page.name
    elif corpus.name == "licences":
        for name in LICENCES:
            yield Path("/usr/share/common-licenses") / name, f"{name}.txt"
    elif corpus.name == "debian-policy":
        for page in sorted((DOC / "debian-policy" / "policy.html").glob("*.html")):
            if page.name.startswith(("ch-", "ap-")):
                yield page, page.name
    elif corpus.name == "debian-reference":
        for page in sorted((DOC / "debian-reference-en" / "docs").glob("*.en.html")):
            yield page, page.name
    elif corpus.name == "debian-notes":
        seen_notes: set[bytes] = set()  # one note of each text: gcc's, erlang's repeat
        for note in sorted(DOC.glob("*/README.Debian*")):
            text = _read(note)
            if len(text) > 1024 and text not in seen_notes:
                seen_notes.add(text)
                yield note, f"{note.parent.name}-README.Debian.txt"


def _read(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


def materialise(corpus: Corpus) -> list[Path]:
    """Copy (and ungzip) a corpus's files under its directory; returns them."""
    sources = list(_sources(corpus))
    if not sources:
        sys.exit(f"corpus {corpus.name} is missing: apt-get install {corpus.package}")
    corpus.directory.mkdir(parents=True, exist_ok=True)
    for source, name in sources:
        target = corpus.directory / name
        if target.exists():
            continue
        target.write_bytes(_read(source))
    return corpus.files()


if __name__ == "__main__":
    for corpus in CORPORA:
        files = materialise(corpus)
        size = sum(path.stat().st_size for path in files)
        role = "held out" if corpus.held_out else "calibration"
        print(
            f"{corpus.name:18} {corpus.genre:13} {role:12} {len(files):5} files {size:>11,} bytes"
        )
