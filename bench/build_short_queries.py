"""Build bench/data/short_queries.json: the short keyword queries people type into a search
box, labelled by the manuals' own back-of-book indexes, which no one here wrote.

    apt-get install postgresql-doc-15 python3-doc
    .venv/bin/python bench/build_short_queries.py [--count 200] [--seed 25]

- Answerable: terms of 1-4 words sampled from the PostgreSQL 15 manual's index
  (bookindex.html), each labelled with the pages the index sends its reader to.
- Unanswerable: terms of 1-4 words sampled from the Python 3.11 documentation's general
  index (genindex-all.html) none of whose words occurs anywhere in the PostgreSQL pages
  that bench/eval_retrieval.py ingests, in any form (compared as the service compares
  words: lower case, stemmed; `reorganize` is in the manual as `reorganized`), so the
  manual cannot answer them.

The sample is drawn with a fixed seed, so the file is the same on every machine with the
same Debian packages.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from pathlib import Path

from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.search.lexical import word_terms, words  # noqa: E402

PG = Path("/usr/share/doc/postgresql-doc-15/html")
PYTHON = Path("/usr/share/doc/python3.11/html/genindex-all.html")
OUT = ROOT / "bench" / "data" / "short_queries.json"
_PARENTHESES = re.compile(r"\s*\([^)]*\)")
_TERM = re.compile(r"^[A-Za-z][\w.-]*( [\w.-]+){0,3}$")


def pg_terms() -> dict[str, list[str]]:
    """Each top-level term of the PostgreSQL index and the pages it points to."""
    soup = BeautifulSoup((PG / "bookindex.html").read_bytes(), "html.parser")
    terms: dict[str, list[str]] = {}
    for entry in soup.select("dt[id^=ientry]"):
        term = entry.get_text("", strip=False).split(",", 1)[0].strip()
        pages = sorted({a["href"].split("#", 1)[0] for a in entry.select("a.indexterm")})
        if _TERM.match(term) and pages and not term.startswith("pg_"):
            terms.setdefault(term, pages)
    return terms


def python_terms() -> list[str]:
    """The Python index's entries, their parenthesised kinds dropped."""
    soup = BeautifulSoup(PYTHON.read_bytes(), "html.parser")
    found: set[str] = set()
    for item in soup.select("td li"):
        first = item.find(string=True, recursive=True)
        if first is None:
            continue
        term = _PARENTHESES.sub("", " ".join(str(first).split())).strip().rstrip("()")
        if _TERM.match(term):
            found.add(term)
    return sorted(found)


def pg_vocabulary() -> set[str]:
    """Every word of the pages eval_retrieval.py ingests."""
    vocabulary: set[str] = set()
    for page in PG.glob("*.html"):
        if page.name.startswith("release") or page.name == "bookindex.html":
            continue
        text = BeautifulSoup(page.read_bytes(), "html.parser").get_text(" ")
        vocabulary.update(word_terms(text))
    return vocabulary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=25)
    options = parser.parse_args()
    for path in (PG, PYTHON):
        if not path.exists():
            sys.exit(f"{path} is missing: apt-get install postgresql-doc-15 python3-doc")
    rng = random.Random(options.seed)
    answerable = pg_terms()
    picked = rng.sample(sorted(answerable), options.count)
    vocabulary = pg_vocabulary()
    foreign = [
        term
        for term in python_terms()
        if words(term) and not any(stem in vocabulary for stem in word_terms(term))
    ]
    unanswerable = rng.sample(foreign, min(options.count, len(foreign)))
    OUT.write_text(
        json.dumps(
            {
                "about": (
                    "Short queries: terms of the PostgreSQL 15 manual's index (bookindex.html, "
                    "Debian postgresql-doc-15) labelled with the pages it points to, and terms "
                    "of the Python 3.11 docs' general index (Debian python3-doc) with no word "
                    "in the manual. Built by bench/build_short_queries.py "
                    f"--count {options.count} --seed {options.seed}."
                ),
                "questions": [{"q": term, "pages": answerable[term]} for term in picked],
                "unanswerable": unanswerable,
            },
            indent=1,
        )
        + "\n"
    )
    print(
        f"{OUT}: {len(picked)} of {len(answerable)} index terms, {len(unanswerable)} of "
        f"{len(foreign)} Python terms with no word in the manual"
    )


if __name__ == "__main__":
    main()
