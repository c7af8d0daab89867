"""What the ingest state machine writes and expects: file contents, injected faults, the versions an index may hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from unittest import mock

import numpy as np
from hypothesis import strategies as st

from conftest import make_pdf
from ingestion.types import Chunk

CHUNK_TOKENS = 64  # small budget: a few short paragraphs give 1-4 chunks, each cheap to embed
VOCAB = ("sofia", "cluster", "innovation", "strategy", "digital", "health", "creative", "mobility", "energy",
         "label", "gold", "silver", "partner", "member", "budget", "fund", "call", "project", "startup",
         "university", "research", "region", "smart", "policy", "council", "network", "export", "training",
         "data", "platform", "pilot", "green", "city", "knowledge", "software", "biotech", "иновации", "клъстер")
STEMS = ("alpha", "beta", "gamma", "sub/delta", "sub/deep/epsilon")


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
