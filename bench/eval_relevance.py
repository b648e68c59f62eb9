"""Relevance on material the answering rules were not tuned on: for each real corpus of
bench/corpora.py, how often `/ask` refuses an answerable question and how often it
answers one nothing in the workspace answers, and hit@1 / MRR@10 of BM25, dense and
hybrid ranking on the same chunks.

    apt-get install postgresql-doc-15 python3-doc git-doc debian-policy debian-reference-en
    .venv/bin/python bench/eval_relevance.py [--corpora licences,git-manual] [--verbose]
    .venv/bin/python bench/eval_relevance.py --store pgvector [--database-url URL]

Run from the project root. Each corpus is ingested through `POST /ingest/file` into a
workspace of its own named after it, in one service (SQLite and a store file under
bench/out/relevance/, kept between runs). Then each workspace is asked:

- its own question set (bench/data/relevance/<corpus>.json, written by people reading
  the documents, never by looking at the ranking): natural questions, keyword queries and
  paraphrases, each labelled with its document and a few words of the passage that
  answers it (`evidence`); and near-misses, on the corpus's topic but answered nowhere in
  it. The PostgreSQL manual's set is bench/data/pg15_questions.json, labelled by page.
- off-topic questions: the answerable questions of other corpora that share no subject
  with it (OFF_TOPIC below), which must be refused.

A ranking's hit is a chunk of the labelled document holding the evidence (the manual's:
any chunk of a labelled page); hit@1 and MRR@10 count the first hit's rank. `/ask`'s
answer to an answerable question is *refused* ("I couldn't find relevant context."),
*right* when one of the sources it quotes is a hit, or *elsewhere*. Every answer is
checked for fidelity: each quoted sentence is found word for word in the source it cites.

Calibration corpora (bench/corpora.py) are the only ones the answering thresholds may be
set on; the held-out ones are marked in the report.

With `--store pgvector` the json run's registry and store file are moved into a
PostgreSQL with pgvector by the runbook's commands (as bench/eval_retrieval.py does) and
asked again.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpora import BY_NAME, CORPORA, Corpus, materialise  # noqa: E402
from bench.evaluation import (  # noqa: E402
    close_and_stop,
    document_rank,
    move_to_pgvector,
    quotes_its_sources,
    service_in,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", default=",".join(c.name for c in CORPORA))
    parser.add_argument("--k", type=int, default=10, help="ranks that count (MRR@k)")
    parser.add_argument("--verbose", action="store_true", help="print each miss")
    parser.add_argument("--store", choices=["json", "pgvector"], default="json")
    parser.add_argument("--database-url", help="for --store pgvector (default: start one)")
    parser.add_argument("--ingest-only", action="store_true")
    parser.add_argument(
        "--fields",
        help="CONTEXT_WEIGHT,TITLE_WEIGHT of the store file's BM25F to measure instead of "
        "the analyzer's (the store's terms are counted again in memory; 1,0 is the "
        "ranking before fields). PostgreSQL's are constants of ingest/stores/pgvector_sql.py",
    )
    parser.add_argument(
        "--floors",
        help="comma-separated relevance floors (the embedder's relevance_floor) to report "
        "refusals at instead of its own: each workspace is asked again at each",
    )
    parser.add_argument("--workdir", type=Path, default=ROOT / "bench" / "out" / "relevance")
    return parser.parse_args()


ARGS = parse_args()
WORKDIR = ARGS.workdir
service_in(WORKDIR, embedder="minilm")
PG_SERVER = ROOT / "bench" / "out" / "relevance-pgvector-server"
QUESTION_SETS = ROOT / "bench" / "data" / "relevance"
PG_QUESTIONS = ROOT / "bench" / "data" / "pg15_questions.json"
# The manual's own index terms and the Python docs' index terms found nowhere in it
# (bench/build_short_queries.py): asked of the manual's workspace only.
SHORT_QUERIES = ROOT / "bench" / "data" / "short_queries.json"

# The corpora whose questions a workspace must refuse: none of them shares a subject
# with it (the Debian Reference has a chapter on git, the notes one on PostgreSQL, the
# Policy Manual one on copyright files, so those pairs are left out).
OFF_TOPIC = {
    "pg-manual": ("licences", "python-howto", "git-manual", "debian-policy"),
    "python-howto": ("licences", "pg-manual", "git-manual", "debian-policy"),
    "git-manual": ("licences", "pg-manual", "python-howto", "debian-policy", "debian-notes"),
    "licences": ("pg-manual", "python-howto", "git-manual", "debian-reference", "debian-notes"),
    "debian-policy": ("pg-manual", "python-howto", "git-manual"),
    "debian-reference": ("licences", "pg-manual", "python-howto"),
    "debian-notes": ("licences", "python-howto"),
}


if ARGS.store == "pgvector":
    move_to_pgvector(WORKDIR, PG_SERVER, ARGS.database_url)

import django  # noqa: E402

django.setup()

if ARGS.fields:
    from ingest.search import lexical

    lexical.CONTEXT_WEIGHT, lexical.TITLE_WEIGHT = (int(w) for w in ARGS.fields.split(","))

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from ingest.answers.extractive import NO_ANSWER  # noqa: E402
from ingest.search.embeddings import get_embedder  # noqa: E402
from ingest.search.lexical import terms  # noqa: E402
from ingest.stores import get_vector_store  # noqa: E402
from registry.backends import get_backend  # noqa: E402

METHODS = ("lexical", "dense", "hybrid")
ANSWERABLE = ("question", "keywords", "paraphrase", "index term")
UNANSWERABLE = ("near-miss", "off-topic", "foreign term")


@dataclass
class Item:
    kind: str  # question, keywords, paraphrase; near-miss or off-topic (unanswerable)
    q: str
    documents: tuple[str, ...] = ()
    evidence: str = ""

    @property
    def answerable(self) -> bool:
        return self.kind in ANSWERABLE


def question_set(corpus: str) -> list[Item]:
    if corpus == "pg-manual":
        data = json.loads(PG_QUESTIONS.read_text())
        short = json.loads(SHORT_QUERIES.read_text())
        return (
            [Item("question", q["q"], tuple(q["pages"])) for q in data["questions"]]
            + [Item("near-miss", q) for q in data["unanswerable"]]
            + [Item("index term", q["q"], tuple(q["pages"])) for q in short["questions"]]
            + [Item("foreign term", q) for q in short["unanswerable"]]
        )
    path = QUESTION_SETS / f"{corpus}.json"
    if not path.exists():
        return []
    return [
        Item(
            item["kind"],
            item["q"],
            (item["document"],) if "document" in item else (),
            item.get("evidence", ""),
        )
        for item in json.loads(path.read_text())["items"]
    ]


def ingest(client: Client, corpus: Corpus) -> None:
    files = materialise(corpus)
    present = {d.filename for d in get_backend().list(limit=100_000) if d.workspace == corpus.name}
    todo = [path for path in files if path.name not in present]
    if not todo:
        return
    print(f"ingesting {len(todo)} files of {corpus.name} …", flush=True)
    started = time.monotonic()
    for number, path in enumerate(todo, start=1):
        with path.open("rb") as handle:
            response = client.post("/ingest/file", {"file": handle, "workspace": corpus.name})
        if response.status_code != 200:
            print(f"  {path.name}: {response.status_code} {response.content[:200]!r}")
        if number % 100 == 0:
            print(f"  {number}/{len(todo)} ({time.monotonic() - started:.0f} s)", flush=True)


@dataclass
class Tally:
    """One corpus's figures."""

    ranks: dict[str, list[int | None]] = field(default_factory=lambda: {m: [] for m in METHODS})
    outcomes: Counter[str] = field(default_factory=Counter)  # answerable: refused/right/…
    refused_by_kind: Counter[str] = field(default_factory=Counter)
    asked_by_kind: Counter[str] = field(default_factory=Counter)
    answers: int = 0
    misquoted: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    chunks: int = 0  # in the corpus's workspace
    kind_ranks: dict[tuple[str, str], list[int | None]] = field(default_factory=dict)


class Workspace:
    """A corpus's workspace: its chunks, to find each item's hits."""

    def __init__(self, corpus: str) -> None:
        self.corpus = corpus
        self.names = {
            d.file_id: d.filename
            for d in get_backend().list(limit=100_000)
            if d.workspace == corpus
        }
        # Each document's chunks (by name) as (chunk id, its headings and text without
        # white space: a reader may set "apt(8)" where the page's markup spaced it).
        self.by_name: dict[str, list[tuple[str, str]]] = {}
        chunks = [m for m in get_vector_store().chunks() if m["workspace"] == corpus]
        for m in chunks:
            self.by_name.setdefault(self.names.get(m["file_id"], ""), []).append(
                (m["chunk_id"], _bare(f"{m['context']} {m['text']}"))
            )
        self.chunks = len(chunks)

    def targets(self, item: Item) -> set[str]:
        """The chunk ids that answer an item."""
        chunks = [chunk for name in item.documents for chunk in self.by_name.get(name, [])]
        evidence = _bare(item.evidence)
        return {chunk_id for chunk_id, text in chunks if evidence in text}


def _bare(text: str) -> str:
    return "".join(text.split()).casefold()


def first_rank(chunk_ids: list[str], targets: set[str], k: int) -> int | None:
    for rank, chunk_id in enumerate(chunk_ids[:k], start=1):
        if chunk_id in targets:
            return rank
    return None


def ask(client: Client, tally: Tally, item: Item, workspace: str) -> dict:
    response = client.post(
        "/ask", {"q": item.q, "workspace": workspace, "k": ARGS.k}, content_type="application/json"
    )
    if response.status_code != 200:  # counted as a refusal, and listed
        tally.errors.append(f"/ask {item.q!r} in {workspace}: {response.status_code}")
        return {"answer": NO_ANSWER, "sources": []}
    body = response.json()
    if body["answer"] != NO_ANSWER:
        tally.answers += 1
        if not quotes_its_sources(body):
            tally.misquoted.append(item.q)
    return body


def evaluate(
    client: Client, corpus: str, sets: dict[str, list[Item]], *, rank: bool = True
) -> Tally:
    store, embedder = get_vector_store(), get_embedder()
    space = Workspace(corpus)
    tally = Tally(chunks=space.chunks)
    off_topic = [
        Item("off-topic", item.q)
        for other in OFF_TOPIC[corpus]
        for item in sets.get(other, [])
        if item.answerable and item.kind != "index term"
    ]
    for item in sets.get(corpus, []) + off_topic:
        tally.asked_by_kind[item.kind] += 1
        body = ask(client, tally, item, corpus)
        refused = body["answer"] == NO_ANSWER
        tally.refused_by_kind[item.kind] += refused
        if not item.answerable:
            if not refused and ARGS.verbose:
                tally.misses.append(f"answered {item.kind} {item.q!r}: {body['answer'][:160]!r}")
            continue
        targets = space.targets(item)
        if not targets and rank:
            print(f"  {corpus}: no chunk holds the evidence of {item.q!r}: {item.evidence!r}")
        vector = embedder.embed([item.q])[0]
        for method in METHODS if rank else ():
            if item.evidence:
                hits = store.search(
                    vector, terms(item.q), workspace=corpus, top_k=ARGS.k, method=method
                ).hits
                found = first_rank([h.chunk_id for h in hits], targets, ARGS.k)
            else:  # labelled by page: ranked by document
                hits = store.search(
                    vector, terms(item.q), workspace=corpus, top_k=6 * ARGS.k, method=method
                ).hits
                wanted = {
                    file_id for file_id, name in space.names.items() if name in item.documents
                }
                found = document_rank([h.file_id for h in hits], wanted, ARGS.k)
            tally.ranks[method].append(found)
            tally.kind_ranks.setdefault((item.kind, method), []).append(found)
        if not rank:
            tally.ranks["hybrid"].append(None)
        cited = {f"{s['fileId']}:{s['chunkId']}" for s in body["sources"]}
        outcome = "refused" if refused else "right" if cited & targets else "elsewhere"
        tally.outcomes[outcome] += 1
        if outcome != "right" and ARGS.verbose:
            tally.misses.append(
                f"{outcome} {item.kind} {item.q!r} (hybrid rank {tally.ranks['hybrid'][-1]})"
            )
    return tally


def report(corpus: str, tally: Tally) -> None:
    role = "HELD OUT" if BY_NAME[corpus].held_out else "calibration"
    answerable = sum(tally.outcomes.values())
    print(f"\n== {corpus} ({BY_NAME[corpus].genre}, {role}): {tally.chunks} chunks")
    for method in METHODS:
        found = tally.ranks[method]
        hit1 = sum(1 for rank in found if rank == 1)
        mrr = sum(1 / rank for rank in found if rank) / (len(found) or 1)
        kinds = "; ".join(
            f"{kind} {sum(1 for r in ranks if r == 1)}/{len(ranks)} "
            f"{sum(1 / r for r in ranks if r) / len(ranks):.3f}"
            for (kind, of), ranks in tally.kind_ranks.items()
            if of == method
        )
        print(
            f"  {method:8} hit@1 {hit1:>3}/{len(found):<4} MRR@{ARGS.k} {mrr:.3f}"
            f"   (by kind, hit@1 and MRR: {kinds})"
        )
    refused = tally.outcomes["refused"]
    print(
        f"  /ask answerable: {answerable}, refused {refused} "
        f"({100 * refused / (answerable or 1):.1f}%), right passage cited "
        f"{tally.outcomes['right']}, elsewhere {tally.outcomes['elsewhere']}"
    )
    for kind in (*ANSWERABLE, *UNANSWERABLE):
        asked = tally.asked_by_kind[kind]
        if asked:
            print(f"    {kind:10} refused {tally.refused_by_kind[kind]:>3}/{asked}")
    print(f"  fidelity: {tally.answers - len(tally.misquoted)}/{tally.answers} answers exact")
    for line in tally.errors:
        print(f"  ERROR {line}")
    for line in tally.misses:
        print(f"    {line}")


def sweep(client: Client, wanted: list[str], sets: dict[str, list[Item]]) -> None:
    """Refusals per corpus at each relevance floor of --floors (the embedder's own is put
    back after)."""
    embedder = get_embedder()
    own = embedder.relevance_floor
    print(f"floor   {'  '.join(f'{name[:16]:>24}' for name in wanted)}")
    try:
        for floor in (float(f) for f in ARGS.floors.split(",")):
            embedder.relevance_floor = floor
            cells = []
            for name in wanted:
                tally = evaluate(client, name, sets, rank=False)
                answerable = sum(tally.outcomes.values())
                off = sum(tally.asked_by_kind[k] for k in UNANSWERABLE)
                caught = sum(tally.refused_by_kind[k] for k in UNANSWERABLE)
                cells.append(f"{tally.outcomes['refused']:>3}/{answerable:<3} {caught:>4}/{off:<4}")
            print(f"{floor:6.2f}  {'  '.join(f'{cell:>24}' for cell in cells)}", flush=True)
    finally:
        embedder.relevance_floor = own
    print("(each cell: answerable refused, unanswerable refused)")


def main() -> None:
    call_command("migrate", verbosity=0)
    client = Client()
    wanted = [name for name in ARGS.corpora.split(",") if name]
    if ARGS.store == "json":
        for name in wanted:
            ingest(client, BY_NAME[name])
    if ARGS.ingest_only:
        return
    sets = {corpus.name: question_set(corpus.name) for corpus in CORPORA}
    if ARGS.floors:
        sweep(client, wanted, sets)
        return
    totals: dict[bool, Counter[str]] = {False: Counter(), True: Counter()}
    for name in wanted:
        tally = evaluate(client, name, sets)
        report(name, tally)
        held_out = BY_NAME[name].held_out
        totals[held_out]["answerable"] += sum(tally.outcomes.values())
        totals[held_out]["refused"] += tally.outcomes["refused"]
        totals[held_out]["unanswerable"] += sum(tally.asked_by_kind[k] for k in UNANSWERABLE)
        totals[held_out]["caught"] += sum(tally.refused_by_kind[k] for k in UNANSWERABLE)
        totals[held_out]["off-topic"] += tally.asked_by_kind["off-topic"]
        totals[held_out]["off-topic caught"] += tally.refused_by_kind["off-topic"]
    for held_out, total in totals.items():
        if total["answerable"]:
            print(
                f"\n{'held out' if held_out else 'calibration'}: answerable refused "
                f"{total['refused']}/{total['answerable']} "
                f"({100 * total['refused'] / total['answerable']:.1f}%); off-topic refused "
                f"{total['off-topic caught']}/{total['off-topic']} "
                f"({100 * total['off-topic caught'] / (total['off-topic'] or 1):.1f}%); "
                f"all unanswerable refused {total['caught']}/{total['unanswerable']}"
            )


if __name__ == "__main__":
    try:
        main()
    finally:
        if ARGS.store == "pgvector" and not ARGS.database_url:
            close_and_stop(PG_SERVER)
