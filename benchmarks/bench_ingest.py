"""Ingest benchmark: the pipeline against the bare embedding model, side by side in one run.

    python benchmarks/bench_ingest.py [--model NAME] [--pdfs N] [--repeat R]

1. Chunks/second of the whole pipeline (read, chunk, embed, write to Chroma) over the corpus, and of a
   bare ``embed_passages`` call (for MiniLM: ``SentenceTransformer.encode``) over exactly the same chunk texts.
   The ratio pipeline/bare says what the pipeline adds over the model itself (target >= 0.9).
2. Pages/second reading and chunking the SEC 10-Q PDFs in ../shared/benchmarks/sec-10-q/docs, and, on the
   first N PDFs, pages/second of the full pipeline.
Runs alternate (bare, pipeline, bare, pipeline, ...) so machine load hits both alike; medians are reported.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingestion.chunking import chunk_document  # noqa: E402
from ingestion.config import Settings  # noqa: E402
from ingestion.embedding import load_embedder  # noqa: E402
from ingestion.pipeline import ingest  # noqa: E402
from ingestion.readers import read_document  # noqa: E402
from ingestion.store import Store, connect  # noqa: E402


def corpus_chunks(folder: Path, embedder, budget: int):
    chunks = []
    for f in sorted(folder.glob("*.md")):
        chunks += chunk_document(read_document(f), embedder.count_tokens, budget, embedder.name)
    return chunks


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=Settings().embed_model)
    ap.add_argument("--corpus", type=Path, default=ROOT / "corpus")
    ap.add_argument("--pdfs", type=int, default=2, help="PDFs to run through the full pipeline")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    s = Settings.from_env()
    embedder = load_embedder(args.model, s.threads)
    budget = min(s.chunk_tokens, embedder.max_tokens - embedder.overhead)
    chunks = corpus_chunks(args.corpus, embedder, budget)
    texts = [c.embed_text() for c in chunks]
    print(f"model {embedder.name}; corpus {args.corpus}: {len(chunks)} chunks")

    bare_times, pipe_times = [], []
    for r in range(args.repeat):
        t = time.perf_counter()
        for i in range(0, len(texts), s.embed_batch):
            if embedder.name == "all-MiniLM-L6-v2":  # the sentence-transformers call itself
                embedder.model.encode(texts[i:i + s.embed_batch], batch_size=64, normalize_embeddings=True)
            else:
                embedder.embed_passages(texts[i:i + s.embed_batch])
        bare_times.append(time.perf_counter() - t)
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(connect(Path(tmp)), "bench", embedder.name)
            t = time.perf_counter()
            rep = ingest([args.corpus], store=store, embedder=embedder, chunk_tokens=s.chunk_tokens,
                         progress=False, batch=s.embed_batch)
            pipe_times.append(time.perf_counter() - t)
            assert rep.embedded == len(chunks), (rep.embedded, len(chunks))
        print(f"  run {r + 1}: bare {len(texts) / bare_times[-1]:.2f} chunks/s, "
              f"pipeline {len(texts) / pipe_times[-1]:.2f} chunks/s")
    bare = len(texts) / statistics.median(bare_times)
    pipe = len(texts) / statistics.median(pipe_times)
    print(f"corpus: bare model {bare:.2f} chunks/s | pipeline {pipe:.2f} chunks/s | ratio {pipe / bare:.3f} (target >= 0.9)")

    docs = ROOT.parent / "shared" / "benchmarks" / "sec-10-q" / "docs"
    pdfs = sorted(docs.glob("*.pdf"))
    if not pdfs:
        print(f"no PDFs at {docs}; skipping the pages/second figures")
        return 0
    pages = 0
    t = time.perf_counter()
    n_chunks = 0
    for f in pdfs:
        doc = read_document(f, max_mb=100)
        pages += doc.pages or 0
        n_chunks += len(chunk_document(doc, embedder.count_tokens, budget, embedder.name))
    dt = time.perf_counter() - t
    print(f"sec-10-q: read + chunk {len(pdfs)} PDFs, {pages} pages, {n_chunks} chunks: {pages / dt:.1f} pages/s")
    subset = pdfs[: args.pdfs]
    if subset:
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(connect(Path(tmp)), "bench", embedder.name)
            t = time.perf_counter()
            rep = ingest(subset, store=store, embedder=embedder, max_file_mb=100, progress=True, batch=s.embed_batch)
            dt = time.perf_counter() - t
        sub_pages = sum(read_document(f, max_mb=100).pages or 0 for f in subset)
        print(f"sec-10-q: full pipeline on {len(subset)} PDFs, {sub_pages} pages, {rep.embedded} chunks: "
              f"{sub_pages / dt:.2f} pages/s, {rep.embedded / dt:.2f} chunks/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
