"""Incremental, interruption-safe ingest: paths -> ``IngestReport``.

Unchanged files (same bytes, all chunks present) are skipped without parsing. Changed and new
files are read, chunked and embedded in one batched pass, then written document by document.
A bad file is reported and skipped; what the index already holds for it is kept.
"""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from .chunking import READ_VERSION, chunk_document
from .config import Settings
from .embedding import Embedder
from .errors import ReadError
from .readers import SUPPORTED, read_document
from .store import Store
from .types import Chunk, FileFailure, IngestReport

SIDECAR_SUFFIXES = (".yml", ".yaml")


@dataclass(frozen=True)
class Candidate:
    path: Path
    doc_id: str


def discover(paths: Iterable[Path]) -> tuple[list[Candidate], list[Path], list[FileFailure]]:
    """Files to ingest (directories walked), the directory roots, and paths that do not exist."""
    found: dict[str, Candidate] = {}
    roots: list[Path] = []
    missing: list[FileFailure] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            roots.append(p.resolve())
            for f in sorted(p.rglob("*")):
                rel = f.relative_to(p)
                if not f.is_file() or any(part.startswith(".") for part in rel.parts):
                    continue
                if f.suffix.lower() in SIDECAR_SUFFIXES or f.name.lower() in ("readme.md", "readme.txt"):
                    continue
                found.setdefault(rel.as_posix(), Candidate(f, rel.as_posix()))
        elif p.is_file():
            found.setdefault(p.name, Candidate(p, p.name))
        else:
            missing.append(FileFailure(str(p), "no such file or directory"))
    return list(found.values()), roots, missing


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ingest(paths: Iterable[Path], *, store: Store, embedder: Embedder, chunk_tokens: int = Settings.chunk_tokens,
           max_file_mb: float = Settings.max_file_mb, max_pdf_pages: int = Settings.max_pdf_pages,
           read_timeout: float = Settings.read_timeout, rebuild: bool = False, progress: bool = True,
           batch: int = Settings.embed_batch, log=None) -> IngestReport:
    """Bring the index up to date with ``paths`` (files, or folders walked): add, update, skip and remove documents.

    The limits and sizes are the ``Settings`` fields of the same names (``batch``: ``embed_batch``); ``log`` gets a
    line per skipped file (default: stderr)."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    t0 = time.perf_counter()
    report = IngestReport()
    if rebuild:
        store.reset()
    states = store.doc_states()
    candidates, roots, missing = discover(paths)
    report.failed.extend(missing)
    budget = min(chunk_tokens, embedder.max_tokens - embedder.overhead)

    pending: list[tuple[Candidate, list[Chunk]]] = []
    unreadable: list[str] = []
    for cand in candidates:
        try:
            if cand.path.suffix.lower() in SUPPORTED and cand.doc_id in states:
                size_ok = cand.path.stat().st_size <= max_file_mb * 1024 * 1024
                if size_ok and states[cand.doc_id].complete(file_hash(cand.path), READ_VERSION):
                    report.unchanged.append(cand.doc_id)
                    continue
            doc = read_document(cand.path, cand.doc_id, max_mb=max_file_mb, max_pages=max_pdf_pages,
                                timeout=read_timeout)
            chunks = chunk_document(doc, embedder.count_tokens, budget, embedder.name)
        except ReadError as exc:
            report.failed.append(FileFailure(str(cand.path), f"{exc.kind}: {exc.reason}"))
            log(f"skipped {exc}")
            unreadable.append(cand.doc_id)
            continue
        except Exception as exc:  # a reader bug must not cost the other files
            report.failed.append(FileFailure(str(cand.path), f"unexpected {type(exc).__name__}: {exc}"))
            log(f"skipped {cand.path}: unexpected {type(exc).__name__}: {exc}")
            unreadable.append(cand.doc_id)
            continue
        pending.append((cand, chunks))

    total = sum(len(chunks) for _, chunks in pending)
    with _bar(total, progress) as bar:
        for cand, chunks, vectors in _embedded_documents(pending, embedder, batch, bar):
            store.write_document(chunks, vectors, time.time())
            (report.updated if cand.doc_id in states else report.added).append(cand.doc_id)
    report.embedded = total

    for doc_id in unreadable:  # a write killed half-way cannot be redone from this file: keep its newest version
        if doc_id in states and len(states[doc_id].hashes) > 1:
            store.settle_document(doc_id)

    seen = {c.doc_id for c in candidates}
    for doc_id, st in states.items():
        if doc_id in seen or not st.path:
            continue
        try:
            under_root = any(Path(st.path).resolve().is_relative_to(r) for r in roots)
        except OSError:
            under_root = False
        if under_root and not Path(st.path).exists():
            store.delete_document(doc_id)
            report.removed.append(doc_id)
    report.chunks = store.count()
    report.seconds = time.perf_counter() - t0
    return report


def _bar(total: int, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="embedding", unit="chunk", disable=not progress or not total, file=sys.stderr)


def _embedded_documents(pending, embedder: Embedder, batch: int, bar):
    """Embed chunks in batches across documents; yield (candidate, chunks, vectors) for each document
    as soon as all its chunks have vectors.

    Writing document by document while embedding means a long ingest that is interrupted keeps
    every document it finished, and the next run only embeds the rest.
    """
    vectors: dict[str, object] = {}
    waiting: list[tuple[Candidate, list[Chunk]]] = []
    buffer: list[Chunk] = []

    def embed(part: list[Chunk]) -> None:
        for c, v in zip(part, embedder.embed_passages([c.embed_text() for c in part])):
            vectors[c.chunk_id] = v
        bar.update(len(part))

    def ready():
        while waiting and all(c.chunk_id in vectors for c in waiting[0][1]):
            cand, chunks = waiting.pop(0)
            yield cand, chunks, [vectors.pop(c.chunk_id) for c in chunks]

    for cand, chunks in pending:
        waiting.append((cand, chunks))
        buffer.extend(chunks)
        while len(buffer) >= batch:
            embed(buffer[:batch])
            buffer = buffer[batch:]
            yield from ready()
    if buffer:
        embed(buffer)
    yield from ready()
