"""Time the vector store (data/vec.json) at 10k and 100k chunks: build, load, search, ingest.

    .venv/bin/python bench/bench_vectors.py [--sizes 10000,100000] [--verbose]

Run from the project root. Everything happens in a temporary directory, never in the
project's data/. It prints numbers and asserts nothing about them. `--verbose` splits load,
search and ingest into their steps.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import gc
import itertools
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("ENV_FILE", "")  # a developer's .env must not change the numbers

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import orjson  # noqa: E402

from common.fileio import file_signature, locked  # noqa: E402
from ingest.embeddings import HashingEmbedder  # noqa: E402
from ingest.vector_store import (  # noqa: E402
    FORMAT,
    StoredChunks,
    VectorStore,
    _decode_vectors,
    _encode_vectors,
    _Snapshot,
    chunk_entries,
)

DIM = 384
SEED = 20240601
WORKSPACES = [f"ws-{i:02d}" for i in range(10)]
CHUNKS_PER_DOCUMENT = 50
INGEST_CHUNKS = 20
QUESTIONS = 200
LOAD_REPEATS = 3
INGEST_REPEATS = 3

COMMON_WORDS = """a about after all also an and any are as at be because been before but by
can could did do does each for from had has have he her his how i if in into is it its just
more most my no not now of on one only or other our out over she should so some such than
that the their them then there these they this those through to under up very was we were
what when where which while who will with would you your account agreement amount annual
application approval audit balance board budget business client committee company contract
cost customer data date deadline department design document employee equipment estimate
expense facility figure finance form fund growth guideline income invoice issue item labour
liability licence loss maintenance manager market meeting member method network notice
office order owner payment period plan policy price procedure process product project
proposal quarter rate record report request requirement resource review revenue risk role
rule safety sale schedule section security service share site staff standard statement
supplier supply system target tax team term test total training transfer unit update user
value vendor version warranty week work year approve assess calculate check confirm deliver
describe ensure estimate include maintain monitor provide receive reduce replace require
review submit support track update verify""".split()
SYLLABLES = """ka lo mi ra te su vo ne pi do ga li ron tal mer vis an el or ul ber cor dan fen
gil hal ist jor kel lum mor nax pol quin rel sam tor ux vel wen yar zel""".split()


# -- synthetic corpus --------------------------------------------------------------------------
class Corpus:
    """Deterministic text of a few thousand words with a Zipf-like frequency."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        made_up: set[str] = set()
        while len(made_up) < 3500:
            n = self.rng.randint(2, 4)
            made_up.add("".join(self.rng.choice(SYLLABLES) for _ in range(n)))
        words = list(dict.fromkeys(COMMON_WORDS + sorted(made_up)))
        self.rng.shuffle(words)
        # Common words keep the top ranks so stopwords are as frequent as in real prose.
        self.vocabulary = list(dict.fromkeys(COMMON_WORDS[:60] + words))
        weights = [1.0 / (rank + 2) for rank in range(len(self.vocabulary))]
        self.cum_weights = list(itertools.accumulate(weights))

    def words(self, k: int) -> list[str]:
        return self.rng.choices(self.vocabulary, cum_weights=self.cum_weights, k=k)

    def chunk(self) -> str:
        """One chunk of 150-200 words in sentences of 8-22 words."""
        target = self.rng.randint(150, 200)
        sentences: list[str] = []
        used = 0
        while used < target:
            n = min(self.rng.randint(8, 22), target - used)
            words = self.words(n)
            sentences.append(" ".join(words).capitalize() + ".")
            used += n
        return " ".join(sentences)

    def question(self) -> str:
        return f"What does the {' '.join(self.words(self.rng.randint(3, 8)))} say?"

    def file_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))


# -- helpers -----------------------------------------------------------------------------------
class Timer:
    """Named step durations, for --verbose splits."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.steps[name] = self.steps.get(name, 0.0) + time.perf_counter() - start

    def show(self, title: str) -> None:
        # Steps named "(for comparison) ..." are alternatives, not part of the total.
        total = sum(v for k, v in self.steps.items() if not k.startswith("("))
        print(f"    {title}: {total:.3f} s")
        for name, seconds in self.steps.items():
            share = 100 * seconds / total if total else 0.0
            print(f"      {name:<42} {seconds * 1000:9.1f} ms  {share:5.1f}%")


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ms_stats(seconds: list[float]) -> tuple[float, float]:
    """Median and p95, in milliseconds."""
    values = np.array(seconds) * 1000
    return float(np.median(values)), float(np.percentile(values, 95))


def peak_rss_mb() -> float:
    # VmHWM, not ru_maxrss: a child spawned with vfork inherits the parent's ru_maxrss.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# -- the steps ---------------------------------------------------------------------------------
def build(path: Path, size: int, corpus: Corpus, embedder: HashingEmbedder) -> dict[str, float]:
    """Write a store of `size` chunks in one go through the store's own writer."""
    meta: list[dict] = []
    matrix = np.empty((size, DIM), dtype=np.float32)
    gen_s = embed_s = 0.0
    for start in range(0, size, CHUNKS_PER_DOCUMENT):
        count = min(CHUNKS_PER_DOCUMENT, size - start)
        file_id = corpus.file_id()
        workspace = WORKSPACES[(start // CHUNKS_PER_DOCUMENT) % len(WORKSPACES)]
        t0 = time.perf_counter()
        texts = [corpus.chunk() for _ in range(count)]
        t1 = time.perf_counter()
        vectors = matrix[start : start + count] = embedder.embed(texts)
        t2 = time.perf_counter()
        gen_s += t1 - t0
        embed_s += t2 - t1
        stored = StoredChunks(file_id, workspace, list(range(count)), texts, vectors)
        meta.extend(chunk_entries(stored))
    # Even VectorStore.replace() of everything would first decode the file it replaces;
    # the snapshot goes to disk once through the store's private writer, the same code
    # path every write ends in.
    store = VectorStore(path, embedder=embedder.name, dim=DIM)
    with locked(path):
        write_s = timed(lambda: store._write(_Snapshot(embedder.name, DIM, meta, matrix)))
    return {"gen_s": gen_s, "embed_s": embed_s, "write_s": write_s}


def load_in_child(path: Path) -> dict[str, float]:
    """Load in a fresh process, where ru_maxrss shows what parsing the file costs."""
    out = subprocess.run(
        [sys.executable, __file__, "--load-child", str(path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def child_load(path: Path) -> None:
    store = VectorStore(path, embedder=HashingEmbedder.name, dim=DIM)
    before = current_rss_mb()
    seconds = timed(store.count)
    after = current_rss_mb()
    peak = peak_rss_mb() - before
    print(json.dumps({"load_s": seconds, "rss_mb": peak, "kept_mb": after - before}))


def load_split(path: Path) -> Timer:
    """VectorStore._parse step by step."""
    timer = Timer()
    with timer.step("read_bytes"):
        data = path.read_bytes()
    with timer.step("orjson.loads (text + metadata + base64 str)"):
        doc = orjson.loads(data)
    with timer.step("pop vectors from chunk dicts"):
        encoded = [c.pop("vector") for c in doc["chunks"]]
    with timer.step("''.join + b64decode(validate=True)"):
        raw = base64.b64decode("".join(encoded), validate=True)
    with timer.step("np.frombuffer"):
        np.frombuffer(raw, dtype="<f4").reshape(len(encoded), DIM)
    del doc, data, raw, encoded
    gc.collect()
    with timer.step("(for comparison) orjson.loads with gc off"):
        data = path.read_bytes()
        gc.disable()
        try:
            doc = orjson.loads(data)
        finally:
            gc.enable()
    with timer.step("(for comparison) _decode_vectors as is"):
        _decode_vectors([c.pop("vector") for c in doc["chunks"]], DIM)
    return timer


def search_split(store: VectorStore, query: np.ndarray, workspace: str) -> Timer:
    """VectorStore.search step by step, 50 runs summed."""
    timer = Timer()
    snapshot = store._snapshot()
    mask = snapshot.workspace_mask(workspace)
    for _ in range(50):
        with timer.step("file_signature (stat) + cache check"):
            store._snapshot()
        with timer.step("matrix @ query"):
            scores = snapshot.matrix @ query
        with timer.step("np.where(workspace mask)"):
            filtered = np.where(mask, scores, -np.inf)
        with timer.step("argpartition + argsort top 5"):
            top = np.argpartition(-filtered, 4)[:5]
            top = top[np.argsort(-filtered[top], kind="stable")]
    fresh = _Snapshot(snapshot.embedder, snapshot.dim, snapshot.meta, snapshot.matrix)
    with timer.step("workspace_mask build (once per snapshot)"):
        fresh.workspace_mask(workspace)
    return timer


def ingest_split(store: VectorStore, corpus: Corpus, embedder: HashingEmbedder) -> Timer:
    """VectorStore.add step by step, writing a scratch file beside the store's."""
    timer = Timer()
    file_id, workspace = corpus.file_id(), WORKSPACES[0]
    texts = [corpus.chunk() for _ in range(INGEST_CHUNKS)]
    vectors = embedder.embed(texts)
    path = store.path
    with timer.step("flock + stale temporaries glob"), locked(path):
        pass
    with timer.step("_snapshot (warm: stat only)"):
        current = store._snapshot()
    with timer.step("_without (scan every chunk's file_id)"):
        base, _ = store._without(current, {file_id})
    with timer.step("meta dicts + np.vstack"):
        meta = [
            {
                "chunk_id": f"{file_id}:{i}",
                "file_id": file_id,
                "workspace": workspace,
                "chunk_index": i,
                "text": t,
            }
            for i, t in enumerate(texts)
        ]
        matrix = np.vstack([base.matrix, vectors])
        snapshot = _Snapshot(store.embedder, store.dim, base.meta + meta, matrix)
    with timer.step("_encode_vectors (b64encode + slice)"):
        encoded = _encode_vectors(snapshot.matrix)
    with timer.step("{**meta, 'vector'} dict copies"):
        chunks = [{**m, "vector": v} for m, v in zip(snapshot.meta, encoded, strict=True)]
    with timer.step("orjson.dumps"):
        payload = orjson.dumps(
            {"format": FORMAT, "embedder": store.embedder, "dim": store.dim, "chunks": chunks}
        )
    scratch = path.with_name(f"{path.name}.scratch")
    with timer.step("write temp file"), scratch.open("wb") as tmp:
        tmp.write(payload)
        tmp.flush()
        with timer.step("fsync file"):
            os.fsync(tmp.fileno())
    timer.steps["write temp file"] -= timer.steps["fsync file"]
    # Replacing the store's own file, as add does: freeing the old inode is part of the cost.
    with timer.step("rename over old file + fsync dir + stat"):
        os.replace(scratch, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        file_signature(path)
    return timer


def bench_size(size: int, workdir: Path, *, verbose: bool) -> dict[str, object]:
    corpus = Corpus(SEED + size)
    embedder = HashingEmbedder(dim=DIM)
    path = workdir / f"vec-{size}.json"
    row: dict[str, object] = {"chunks": size}
    print(f"== {size} chunks ({path})", flush=True)

    # 1. Build.
    parts = build(path, size, corpus, embedder)
    row["build_s"] = sum(parts.values())
    row["file_mb"] = path.stat().st_size / 1e6
    print(
        f"  build {row['build_s']:.1f} s = generate {parts['gen_s']:.1f} + embed "
        f"{parts['embed_s']:.1f} + _write {parts['write_s']:.2f}; file {row['file_mb']:.1f} MB",
        flush=True,
    )
    gc.collect()

    # 2. Load: a new VectorStore each time, so its per-object cache is cold. The OS page
    # cache is warm (the file was just written), as it is for a service on a busy host.
    loads = []
    for _ in range(LOAD_REPEATS):
        fresh = VectorStore(path, embedder=embedder.name, dim=DIM)
        loads.append(timed(fresh.count))
        del fresh
        gc.collect()
    row["load_min"], row["load_med"] = min(loads), statistics.median(loads)
    child = load_in_child(path)
    row["rss_mb"] = child["rss_mb"]
    print(
        f"  load min {row['load_min']:.2f} s, median {row['load_med']:.2f} s; in a fresh "
        f"process {child['load_s']:.2f} s, RSS +{child['rss_mb']:.0f} MB at peak, "
        f"+{child['kept_mb']:.0f} MB kept",
        flush=True,
    )
    if verbose:
        load_split(path).show("load split (VectorStore._parse)")
        gc.collect()

    # 3. Search on the warm store.
    store = VectorStore(path, embedder=embedder.name, dim=DIM)
    store.count()
    questions = [corpus.question() for _ in range(QUESTIONS)]
    embed_times, queries = [], []
    for question in questions:
        start = time.perf_counter()
        queries.append(embedder.embed([question])[0])
        embed_times.append(time.perf_counter() - start)
    first_ws = []
    for i, workspace in enumerate(WORKSPACES):
        # The first filtered query per workspace after each load or write builds its mask.
        first_ws.append(
            timed(lambda q=queries[i], w=workspace: store.search(q, workspace=w, top_k=5))
        )
    plain = [timed(lambda q=q: store.search(q, workspace=None, top_k=5)) for q in queries]
    filtered = [
        timed(lambda q=q, w=WORKSPACES[i % 10]: store.search(q, workspace=w, top_k=5))
        for i, q in enumerate(queries)
    ]
    row["search"], row["search_ws"] = ms_stats(plain), ms_stats(filtered)
    row["ws_first_ms"] = statistics.median(first_ws) * 1000
    row["embed_q_ms"] = statistics.median(embed_times) * 1000
    print(
        "  search med/p95 {:.2f}/{:.2f} ms, with workspace {:.2f}/{:.2f} ms, first query per "
        "workspace {:.2f} ms; embedding a question {:.2f} ms (not included)".format(
            *row["search"], *row["search_ws"], row["ws_first_ms"], row["embed_q_ms"]
        ),
        flush=True,
    )
    if verbose:
        search_split(store, queries[0], WORKSPACES[0]).show("search split, 50 queries")

    # 4. Ingest one document of 20 chunks into the warm store (rewrites the whole file).
    ingests, embeds = [], []
    for _ in range(INGEST_REPEATS):
        texts = [corpus.chunk() for _ in range(INGEST_CHUNKS)]
        start = time.perf_counter()
        vectors = embedder.embed(texts)
        embeds.append(time.perf_counter() - start)
        file_id = corpus.file_id()
        ingests.append(
            timed(
                lambda f=file_id, t=texts, v=vectors: store.add(
                    file_id=f, workspace=WORKSPACES[0], texts=t, vectors=v
                )
            )
        )
    row["ingest_med"] = statistics.median(ingests)
    row["embed_doc_ms"] = statistics.median(embeds) * 1000
    print(
        f"  ingest of {INGEST_CHUNKS} chunks: store.add median {row['ingest_med']:.2f} s "
        f"({', '.join(f'{s:.2f}' for s in ingests)}), embedding {row['embed_doc_ms']:.0f} ms "
        "(not included); the registry write is not included",
        flush=True,
    )
    if verbose:
        ingest_split(store, corpus, embedder).show("ingest split (VectorStore.add)")

    path.unlink()
    return row


def print_table(rows: list[dict[str, object]]) -> None:
    header = (
        f"{'chunks':>7}  {'file_MB':>7}  {'build_s':>7}  {'load_s(min/med)':>15}  "
        f"{'rss_MB':>6}  {'search_ms(med/p95)':>18}  {'search_ws_ms':>12}  "
        f"{'ws_1st_ms':>9}  {'embed_q_ms':>10}  {'ingest_doc_s(med)':>17}  {'embed_doc_ms':>12}"
    )
    print()
    print(header)
    for r in rows:
        load = f"{r['load_min']:.2f}/{r['load_med']:.2f}"
        search = "{:.2f}/{:.2f}".format(*r["search"])
        search_ws = "{:.2f}/{:.2f}".format(*r["search_ws"])
        print(
            f"{r['chunks']:>7}  {r['file_mb']:>7.1f}  {r['build_s']:>7.1f}  {load:>15}  "
            f"{r['rss_mb']:>6.0f}  {search:>18}  {search_ws:>12}  {r['ws_first_ms']:>9.2f}  "
            f"{r['embed_q_ms']:>10.2f}  {r['ingest_med']:>17.2f}  {r['embed_doc_ms']:>12.1f}"
        )
    print(
        "search_ws_ms: med/p95 with a workspace filter, masks warm; ws_1st_ms: first filtered "
        "query per workspace after a load or write. Embedding times are not in search or "
        "ingest; ingest is VectorStore.add only, the registry write is not included."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="comma-separated chunk counts")
    parser.add_argument("--verbose", action="store_true", help="split each phase into steps")
    parser.add_argument("--load-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load_child:
        child_load(args.load_child)
        return
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-vectors-") as tmp:
        rows = [bench_size(size, Path(tmp), verbose=args.verbose) for size in sizes]
    print_table(rows)
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
