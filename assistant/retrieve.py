"""Hybrid retrieval: dense (Chroma) + BM25 (LlamaIndex), fused (calibrated scores, confidence weights),
deduplicated, neighbours merged.

BM25 is lexical, so it only compares a question with passages in the same script: a Bulgarian
question is matched lexically against Bulgarian chunks only, and finds English passages through
the multilingual embedding (BM25 of Cyrillic queries over English text only adds noise).
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import replace
from typing import Literal, Sequence, get_args

from ingestion.context import period_order, quarters, series_name
from ingestion.language import detect_language
from ingestion.store import Store
from ingestion.types import Chunk

from .types import Passage, is_glossary

Mode = Literal["hybrid", "dense", "bm25"]  # which retrievers a ``Retriever`` runs
RRF_K = 60  # reciprocal-rank constant of Cormack et al. (2009): neighbouring ranks count nearly alike
# the fusion's weights, chosen on the development questions of our gold set and of SEC-10-Q
# (docs/PERFORMANCE-HISTORY.md, "Fusion that holds across corpora")
DENSE_BASE = 0.7  # the dense list's weight when both lists are equally confident
CONFIDENCE_SWING = 0.25  # how far the more confident list pulls the weight (0.45..0.95)

BG_STOPWORDS = ["и", "на", "за", "в", "във", "от", "да", "се", "е", "с", "със", "по", "че", "са", "не", "как",
                "какво", "кои", "кой", "коя", "кога", "къде", "колко", "ли", "ще", "има", "ги", "го", "я", "а"]
STATE_RECHECK_SECONDS = 10.0
_CYR = re.compile(r"[\u0400-\u04FF]")


_GLOSS = re.compile(r"^\s*[-*]\s*\*\*(?P<bg>[^*]+)\*\*(?:\s*\([^)]*\))?\s*[\u2014\u2013-]\s*(?P<en>[^;,(\n]+)",
                    re.MULTILINE)
_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)


def _stem(word: str) -> str:
    """A crude Bulgarian stem: the first four letters survive most inflections (златен / златния)."""
    w = word.lower()
    return w[:4] if len(w) >= 5 else w


def glossary_pairs(chunks: Sequence[Chunk]) -> list[tuple[tuple[str, ...], str]]:
    """(Bulgarian stems, English term) pairs from glossary entries like ``**клъстер** — cluster, ...``."""
    pairs = []
    for c in chunks:
        if not is_glossary(c):
            continue
        for m in _GLOSS.finditer(c.text):
            english = m.group("en").strip().rstrip(".")
            for variant in re.split(r"\s*[;/]\s*", m.group("bg")):
                stems = tuple(_stem(w) for w in _WORDS.findall(variant) if len(w) > 2 and _CYR.search(w))
                if stems and english:
                    pairs.append((stems, english))
    return pairs


def translate_terms(question: str, pairs: Sequence[tuple[tuple[str, ...], str]]) -> str:
    """English terms for the glossary entries a Bulgarian question mentions (all stems present)."""
    stems = {_stem(w) for w in _WORDS.findall(question)}
    found = [en for st, en in pairs if all(s in stems for s in st)]
    return " ".join(dict.fromkeys(found))


def fuse(dense: Sequence[tuple[Chunk, float]], lexical: Sequence[tuple[Chunk, float]]
         ) -> list[tuple[Chunk, float, float, float]]:
    """The product's fusion: calibrated scores (``zfuse``), each list weighted by its confidence (``dense_share``).

    Returns (chunk, fused 0..1, dense_cosine, bm25_relative) sorted by fused score, one row per chunk.
    """
    return zfuse(dense, lexical, dense_share(dense, lexical))


def _mean_sd(scores: Sequence[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation of one retriever's scores."""
    mean = sum(scores) / len(scores)
    return mean, (sum((s - mean) ** 2 for s in scores) / len(scores)) ** 0.5


def _z(hits: Sequence[tuple[Chunk, float]]) -> tuple[dict[str, float], float]:
    """Each chunk's score as a z-score within its own list (the best when a chunk is listed twice), and the
    lowest z, which a chunk missing from the list gets."""
    scores = [s for _, s in hits]
    mean, sd = _mean_sd(scores)
    sd = sd or 1.0
    z: dict[str, float] = {}
    for chunk, s in hits:
        z[chunk.chunk_id] = max(z.get(chunk.chunk_id, -math.inf), (s - mean) / sd)
    return z, (min(scores) - mean) / sd


def zfuse(dense: Sequence[tuple[Chunk, float]], lexical: Sequence[tuple[Chunk, float]],
          dense_weight: float = 0.6) -> list[tuple[Chunk, float, float, float]]:
    """Score fusion after per-retriever calibration: each list's scores become z-scores within that list, so a
    cosine (spread over a few hundredths) and a BM25 score (over tens) weigh alike; then mixed by weight.

    Returns (chunk, fused, dense_cosine, bm25_relative) sorted by fused score, one row per chunk; the fused score
    is rescaled to 0..1 over the rows (the best 1). An empty list gives the other all the weight.
    """
    if not dense and not lexical:
        return []
    w_d = dense_weight if lexical else 1.0
    w_b = (1.0 - dense_weight) if dense else 1.0
    z_d, floor_d = _z(dense) if dense else ({}, 0.0)
    z_b, floor_b = _z(lexical) if lexical else ({}, 0.0)
    top_b = max((s for _, s in lexical), default=0.0)
    chunks: dict[str, Chunk] = {}
    cosine: dict[str, float] = {}
    bm25: dict[str, float] = {}
    for c, s in dense:
        chunks.setdefault(c.chunk_id, c)
        cosine[c.chunk_id] = max(cosine.get(c.chunk_id, 0.0), s)
    for c, s in lexical:
        chunks.setdefault(c.chunk_id, c)
        bm25[c.chunk_id] = max(bm25.get(c.chunk_id, 0.0), s / top_b if top_b > 0 else 0.0)
    raw = {i: w_d * z_d.get(i, floor_d) + w_b * z_b.get(i, floor_b) for i in chunks}
    low, high = min(raw.values()), max(raw.values())
    out = [(c, (raw[i] - low) / (high - low) if high > low else 1.0, cosine.get(i, 0.0), bm25.get(i, 0.0))
           for i, c in chunks.items()]
    out.sort(key=lambda r: (-r[1], r[0].chunk_id))
    return out


def list_confidence(hits: Sequence[tuple[Chunk, float]]) -> float:
    """How far a list's best score stands above the list, in the list's own standard deviations (0 for fewer
    than two hits or equal scores). Scale-free, so a cosine list and a BM25 list compare."""
    scores = [s for _, s in hits]
    if len(scores) < 2:
        return 0.0
    mean, sd = _mean_sd(scores)
    return max(0.0, (scores[0] - mean) / sd) if sd > 0 else 0.0


def dense_share(dense: Sequence[tuple[Chunk, float]], lexical: Sequence[tuple[Chunk, float]]) -> float:
    """The dense list's weight: ``DENSE_BASE``, moved by up to ``CONFIDENCE_SWING`` toward the list whose best
    hit stands out more from its own list (``list_confidence``): that retriever is trusted on this question."""
    c_d, c_b = list_confidence(dense), list_confidence(lexical)
    lean = 0.0 if c_d + c_b == 0 else (c_d - c_b) / (c_d + c_b)
    return DENSE_BASE + CONFIDENCE_SWING * lean




def merge_neighbours(rows: Sequence[tuple[Chunk, float, float, float]], full_text_gap: int = 4) -> list[Passage]:
    """Chunks of one document that touch each other become one passage, in document order."""
    passages: list[Passage] = []
    for chunk, fused, d, b in rows:
        for i, p in enumerate(passages):
            if p.doc_id != chunk.doc_id or p.chunk.heading_path != chunk.heading_path:
                continue
            span_start, span_end = p.chunk.start, p.chunk.start + len(p.text)
            if 0 <= chunk.start - span_end <= full_text_gap:  # chunk follows the passage
                text = p.text + "\n\n" + chunk.text
                merged = replace(p.chunk, page_end=chunk.page_end) if chunk.page_end is not None else p.chunk
                passages[i] = replace(p, chunk=merged, text=text, chunk_ids=p.chunk_ids + (chunk.chunk_id,),
                                      facts=tuple(dict.fromkeys(p.facts + chunk.fact_ids)))
                break
            if 0 <= span_start - chunk.end <= full_text_gap:  # chunk precedes the passage
                text = chunk.text + "\n\n" + p.text
                merged = replace(chunk, page_end=p.chunk.page_end) if p.chunk.page_end is not None else chunk
                passages[i] = replace(p, chunk=merged, text=text, chunk_ids=(chunk.chunk_id,) + p.chunk_ids,
                                      facts=tuple(dict.fromkeys(chunk.fact_ids + p.facts)),
                                      score=max(p.score, fused), dense=max(p.dense, d), bm25=max(p.bm25, b))
                break
        else:
            passages.append(Passage(chunk=chunk, text=chunk.text, score=fused, dense=d, bm25=b,
                                    chunk_ids=(chunk.chunk_id,), facts=chunk.fact_ids))
    return passages


def one_glossary_chunk(rows: Sequence[tuple[Chunk, float, float, float]]) -> list[tuple[Chunk, float, float, float]]:
    """Fused rows with at most one glossary chunk, the best. A glossary shares every Bulgarian word with a
    Bulgarian question, so it would outrank the passages that answer it and fill the prompt
    (docs/PERFORMANCE-HISTORY.md). It stays the translation aid for BM25 (``translate_terms``) and can still be
    shown once; when every row is glossary (a filter on that document), all stay."""
    if all(is_glossary(row[0]) for row in rows):
        return list(rows)
    seen = False
    out = []
    for row in rows:
        if is_glossary(row[0]):
            if seen:
                continue
            seen = True
        out.append(row)
    return out


def chroma_where(filters: dict | None) -> dict | None:
    if not filters:
        return None
    clauses = []
    for key, field in (("doc_type", "doc_type"), ("docs", "doc_id")):
        value = filters.get(key)
        if value:
            values = [value] if isinstance(value, str) else list(value)
            clauses.append({field: {"$in": values}})
    if not clauses:
        return None
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _passes(chunk: Chunk, filters: dict | None) -> bool:
    if not filters:
        return True
    for key, attr in (("doc_type", "doc_type"), ("docs", "doc_id")):
        value = filters.get(key)
        if value and getattr(chunk, attr) not in ([value] if isinstance(value, str) else value):
            return False
    return True


class Retriever:
    """Finds the passages for a question in one store; the BM25 indexes are built lazily and rebuilt on change."""

    def __init__(self, store: Store, embedder, settings, mode: Mode = "hybrid"):
        if mode not in get_args(Mode):
            raise ValueError(f"retrieval mode must be hybrid, dense or bm25, not {mode!r}")
        self.store, self.embedder, self.settings, self.mode = store, embedder, settings, mode
        self._lock = threading.Lock()
        self._bm25_state: tuple | None = None
        self._bm25 = {}
        self._chunks: dict[str, Chunk] = {}
        self._glossary: list = []
        self._state_checked = 0.0

    # ------------------------------------------------------------------ BM25
    def _lexical_index(self, language: str):
        """BM25 over the chunks of one script; rebuilt when the collection changes."""
        state = self._collection_state()
        with self._lock:
            if state != self._bm25_state:
                self._chunks = {c.chunk_id: c for c in self.store.all_chunks()}
                self._glossary = glossary_pairs(list(self._chunks.values()))
                self._bm25 = {}
                self._bm25_state = state
            if language not in self._bm25:
                self._bm25[language] = self._build_bm25([c for c in self._chunks.values()
                                                         if detect_language(c.text) == language])
            return self._bm25[language]

    def _collection_state(self) -> tuple:
        """What identifies the collection's content. A change of chunk count is seen at once; an edit that
        keeps the count (same number of chunks, new hashes) within ``STATE_RECHECK_SECONDS``. The full
        scan of chunk metadata is too slow to repeat on every question."""
        count = self.store.count()
        now = time.monotonic()
        if (self._bm25_state is not None and self._bm25_state[0] == count
                and now - self._state_checked < STATE_RECHECK_SECONDS):
            return self._bm25_state
        self._state_checked = now
        return (count, tuple(sorted((d, tuple(sorted(st.hashes))) for d, st in self.store.doc_states().items())))

    def _build_bm25(self, chunks: list[Chunk]):
        if not chunks:
            return None
        import Stemmer
        from llama_index.core.schema import TextNode
        from llama_index.retrievers.bm25 import BM25Retriever

        nodes = [TextNode(id_=c.chunk_id, text=c.embed_text()) for c in chunks]
        english = detect_language(" ".join(c.text for c in chunks[:50])) == "en"
        top_k = min(len(nodes), max(self.settings.bm25_k * 3, 30))
        if english:
            return BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=top_k,
                                               stemmer=Stemmer.Stemmer("english"), language="en")
        # no stemming for Cyrillic: the English stemmer would mangle it and bm25s has no Bulgarian one
        return BM25Retriever.from_defaults(nodes=nodes, similarity_top_k=top_k, skip_stemming=True,
                                           language=BG_STOPWORDS)

    def _lexical(self, question: str, language: str, k: int, filters: dict | None) -> list[tuple[Chunk, float]]:
        index = self._lexical_index(language)
        if index is None:
            return []
        hits = index.retrieve(question)
        out = []
        for h in hits:
            chunk = self._chunks.get(h.node.node_id)
            if chunk is not None and (h.score or 0) > 0 and _passes(chunk, filters):
                out.append((chunk, float(h.score)))
        return out[:k]

    # ------------------------------------------------------------------ public
    def retrieve(self, question: str, k: int | None = None, filters: dict | None = None) -> list[Passage]:
        k = k or self.settings.top_k
        dense, lexical = self.candidates(question, filters)
        return rank(question, dense, lexical, k)

    def candidates(self, question: str, filters: dict | None = None) -> tuple[list, list]:
        """(dense hits, BM25 hits) for ``question``, each [(chunk, score)] best first; empty for a mode's absent
        retriever."""
        language = detect_language(question)
        dense = []
        if self.mode in ("hybrid", "dense"):
            dense = self.store.query(self.embedder.embed_query(question), self.settings.dense_k, chroma_where(filters))
        lexical = []
        if self.mode in ("hybrid", "bm25"):
            lexical = self._lexical(question, language, self.settings.bm25_k, filters)
            if language == "bg":  # the glossary turns Bulgarian terms into English ones for BM25 over English text
                english = translate_terms(question, self._glossary)
                if english:
                    lexical += self._lexical(english, "en", self.settings.bm25_k, filters)
        return dense, lexical


# "the latest 10-Q", "the most recent report", "последния отчет": the newest of a series of reports is meant
_ASKS_LATEST = re.compile(r"\b(?:latest|most recent|newest)\b|(?<!\w)(?:последн|най-нов)", re.IGNORECASE)


def _series_first(rows: Sequence[tuple[Chunk, float, float, float]], wanted: Sequence) -> list:
    """Within each series of reports (the same file name but for its period: "2022 Q3 AAPL", "2023 Q3 AAPL"), the
    chunks with the highest ``wanted`` value (None: not a dated report) take the first of the places that series'
    chunks hold, so other documents keep their ranks; ties keep the fused order (sorted is stable)."""
    places: dict[str, list[int]] = {}  # series -> the ranks its dated chunks hold
    for i, (chunk, *_) in enumerate(rows):
        if wanted[i] is not None:
            places.setdefault(series_name(chunk.doc_id), []).append(i)
    out = list(rows)
    for ranks in places.values():
        for i, j in zip(ranks, sorted(ranks, key=lambda r: wanted[r], reverse=True)):
            out[i] = rows[j]
    return out


def prefer_latest(question: str, rows: Sequence[tuple[Chunk, float, float, float]]) -> list:
    """For a question about the latest report, each series of reports puts its newest report's chunks first in the
    places its chunks hold; the question's words cannot say which quarter is newest, the periods can. Other
    questions: ``rows`` unchanged."""
    if not _ASKS_LATEST.search(question):
        return list(rows)
    return _series_first(rows, [period_order(chunk.period) for chunk, *_ in rows])


def prefer_named_quarter(question: str, rows: Sequence[tuple[Chunk, float, float, float]]) -> list:
    """For a question that names a quarter ("in Microsoft's Q2 2023 10-Q"), each series of reports puts the chunks of
    the report whose file name or title names that quarter first in the places its chunks hold: the embedding barely
    tells "Q1" from "Q3", and the report's own pages rarely say which quarter its file is. Other questions: ``rows``
    unchanged."""
    asked = quarters(question)
    if not asked:
        return list(rows)
    wanted = []
    for chunk, *_ in rows:
        has = quarters(f"{chunk.doc_id} {chunk.title}")
        wanted.append((1 if asked & has else 0) if has else None)  # None: not a report of a quarter
    return _series_first(rows, wanted)


def rank(question: str, dense: Sequence[tuple[Chunk, float]], lexical: Sequence[tuple[Chunk, float]],
         k: int) -> list[Passage]:
    """The first ``k`` passages: both lists fused (the latest report of a series first when the question asks for
    it), one glossary chunk at most, neighbours merged, numbered."""
    rows = prefer_latest(question, prefer_named_quarter(question, fuse(dense, lexical)))
    passages = merge_neighbours(one_glossary_chunk(rows)[: max(k, 1) * 2])[:k]
    for n, p in enumerate(passages, start=1):
        p.n = n
    return passages
