"""Retrieval latency benchmark: the corpus index against a 5,000-chunk index, side by side in one run.

    python benchmarks/bench_retrieval.py [--chunks 5000] [--questions N] [--out reports/retrieval-bench.json]

Index A holds the corpus (its real e5 chunks and vectors). Index B holds the same corpus chunks plus filler
chunks up to ``--chunks``: real text from the SEC 10-Q PDFs in ../shared/benchmarks/sec-10-q/docs (so BM25
works on real prose and tables; the 18 readable filings give about 3,800 chunks, and a second pass over the same text
under new ids fills the rest), each with a random unit vector instead of an e5 embedding. Embedding 5,000
chunks would take about 20 minutes on 2 cores; the cost of an HNSW search and a BM25 lookup depends on how
many vectors and tokens there are, not on what they mean. Random vectors are, if anything, harder for HNSW.

Every gold question is asked of A and then of B (alternating, so machine load hits both alike); the time
covers the whole ``Retriever.retrieve`` call, query embedding included. B is asked twice: with the question
embedded as the app does it (in the embedding worker process, ``SOFIA_QA_EMBED_WORKER``) and in this process,
where OpenMP threads sleep for the language model's sake, so the worker's effect is measured in the same run. The first questions warm both
indexes (BM25 is built on first use) and are not counted. Target: p95 <= 50 ms on B.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.retrieve import Retriever  # noqa: E402
from evals.datasets import load_dataset  # noqa: E402
from evals.metrics import Ref, hit_at_k, percentile  # noqa: E402
from evals.runner import DEFAULT_DATASET  # noqa: E402
from ingestion.chunking import chunk_document  # noqa: E402
from ingestion.config import Settings  # noqa: E402
from ingestion.embedding import load_embedder  # noqa: E402
from ingestion.pipeline import ingest  # noqa: E402
from ingestion.readers import ReadError, read_document  # noqa: E402
from ingestion.store import Store, connect  # noqa: E402

SEC_DOCS = ROOT.parent / "shared" / "benchmarks" / "sec-10-q" / "docs"


def corpus_index(tmp: Path, embedder, settings: Settings) -> Store:
    """The corpus chunks: copied from the app's index when it holds them (``make ingest``), else ingested."""
    store = Store(connect(tmp / "a"), "bench_a", embedder.name)
    try:
        app_index = Store(connect(settings.db, settings.chroma_url), settings.collection, embedder.name)
        if app_index.count():
            copy_into(app_index, store)
            print(f"index A: copied {store.count()} chunks from {settings.db}")
            return store
    except Exception as exc:  # no usable app index: build one
        print(f"index A: cannot reuse {settings.db} ({exc}); ingesting the corpus")
    rep = ingest([ROOT / "corpus"], store=store, embedder=embedder, chunk_tokens=settings.chunk_tokens,
                 progress=True, batch=settings.embed_batch)
    if rep.failed:
        raise SystemExit(f"corpus ingest failed: {rep.failed}")
    return store


def copy_into(src: Store, dst: Store) -> None:
    got = src.col.get(include=["embeddings", "documents", "metadatas"])
    for i in range(0, len(got["ids"]), 500):
        dst.col.upsert(ids=got["ids"][i:i + 500], embeddings=got["embeddings"][i:i + 500],
                       documents=got["documents"][i:i + 500], metadatas=got["metadatas"][i:i + 500])


def add_filler(store: Store, target: int, embedder, budget: int, seed: int = 0) -> int:
    """SEC 10-Q chunks with random unit vectors until the index holds ``target`` chunks. The readable filings give
    about 3,800 chunks; the rest comes from a second pass over the same text under new document ids (BM25 then
    indexes as many tokens as 5,000 distinct chunks would hold, and HNSW as many vectors)."""
    rng = np.random.default_rng(seed)
    dim = len(embedder.embed_query("dimension probe"))
    added = 0
    docs = []
    for pdf in sorted(SEC_DOCS.glob("*.pdf")):
        try:
            docs.append(read_document(pdf, max_mb=100))
        except ReadError as exc:
            print(f"  skipped {pdf.name}: {exc}")
    for copy in range(3):
        for doc in docs:
            need = target - store.count()
            if need <= 0:
                return added
            if copy:
                doc = dataclasses.replace(doc, doc_id=f"{doc.doc_id}#copy{copy}")
            chunks = chunk_document(doc, embedder.count_tokens, budget, embedder.name)[:need]
            vecs = rng.normal(size=(len(chunks), dim))
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            store.write_document(chunks, vecs, time.time())
            added += len(chunks)
    return added


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=5000)
    ap.add_argument("--questions", type=int, default=0, help="limit the questions (0: all gold questions)")
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "retrieval-bench.json")
    args = ap.parse_args()
    s = Settings.from_env()
    embedder = load_embedder(s.embed_model, s.threads, s.embed_worker)
    local = load_embedder(s.embed_model, s.threads, False)  # the same model, embedding in this process
    budget = min(s.chunk_tokens, embedder.max_tokens - embedder.overhead)
    questions = load_dataset(DEFAULT_DATASET)
    if args.questions:
        questions = questions[: args.questions]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        a = corpus_index(tmp, embedder, s)
        b = Store(connect(tmp / "b"), "bench_b", embedder.name)
        copy_into(a, b)
        t = time.perf_counter()
        added = add_filler(b, args.chunks, embedder, budget)
        counts = {"A": a.count(), "B": b.count()}
        print(f"index A: {a.count()} chunks | index B: {b.count()} chunks ({added} SEC 10-Q filler chunks, "
              f"random vectors, written in {time.perf_counter() - t:.0f} s)")
        systems = {"A": Retriever(a, embedder, s), "B": Retriever(b, embedder, s)}
        if local is not embedder:
            systems["B in-process"] = Retriever(b, local, s)
        times: dict[str, list[float]] = {name: [] for name in systems}
        embed_times: list[float] = []
        hits: dict[str, list[float]] = {name: [] for name in systems}
        for i, q in enumerate(questions):
            for name, r in systems.items():
                t = time.perf_counter()
                passages = r.retrieve(q.question)
                dt = time.perf_counter() - t
                if i >= args.warmup:
                    times[name].append(dt * 1000)
                    if q.answerable and q.gold_sources:
                        hits[name].append(hit_at_k([Ref.of(p) for p in passages], 5, q.gold_sources))
            t = time.perf_counter()
            embedder.embed_query(q.question)
            if i >= args.warmup:
                embed_times.append((time.perf_counter() - t) * 1000)

    result = {"chunks": counts, "questions": len(times["A"]),
              "query_embedding_ms_p50": round(statistics.median(embed_times), 1)}
    print(f"\n{len(times['A'])} questions timed on each index (query embedding p50 "
          f"{result['query_embedding_ms_p50']} ms is inside every figure)")
    print(f"{'index':<14}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'hit@5 (doc)':>13}")
    for name in systems:
        row = {"p50_ms": round(percentile(times[name], 50), 1), "p95_ms": round(percentile(times[name], 95), 1),
               "max_ms": round(max(times[name]), 1),
               "hit_at_5_doc": round(sum(hits[name]) / max(len(hits[name]), 1), 3)}
        result[name] = row
        print(f"{name:<14}{row['p50_ms']:>9}{row['p95_ms']:>9}{row['max_ms']:>9}{row['hit_at_5_doc']:>13}")
    ratio = result["B"]["p95_ms"] / result["A"]["p95_ms"]
    result["p95_ratio_B_over_A"] = round(ratio, 2)
    if "B in-process" in result:
        result["p95_ratio_worker_over_in_process"] = round(result["B"]["p95_ms"] / result["B in-process"]["p95_ms"], 2)
        print(f"p95 ratio B (embedding worker) / B in-process: {result['p95_ratio_worker_over_in_process']:.2f}")
    print(f"p95 ratio B/A: {ratio:.2f}; target p95 <= 50 ms on {counts['B']} chunks: "
          f"{'met' if result['B']['p95_ms'] <= 50 else 'NOT met'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
