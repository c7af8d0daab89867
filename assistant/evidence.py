"""Evidence for a declined answer: the passage sentences most likely to answer the question, and whether any exist.

When the gate cannot confirm the model's draft, the documents' own words are shown instead of the draft: a sentence
copied from a passage asserts nothing the documents do not say. Each passage sentence is scored by how well it
supports the declined draft (the citation check's matching: e5 cosine between draft and passage sentences) and by
how close it is to the question (e5 query-passage cosine); the best one or two are quoted. A sentence that announces
a list (it ends with ":") is quoted together with the list's items, which hold what it announces.

``nothing_close`` decides the "not in the documents" outcome from signals the model cannot talk its way around:
P(NOT_FOUND) under the strict prompt and the best passage's dense cosine (never the fused score).

The constants are chosen on the development split (``scripts/tune_outcomes.py``; docs/PERFORMANCE-HISTORY.md).
Every function here except ``choose_evidence`` is pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .cite import split_sentences, strip_markers
from .types import Citation, Passage

DRAFT_WEIGHT = 0.75  # weight of draft support against question similarity in a sentence's score
MAX_SENTENCES = 2  # sentences quoted at most
SECOND_MARGIN = 0.1  # a second sentence is quoted only when it scores this close to the first
MIN_WORDS = 4  # shorter pieces (list labels) say too little to quote; a Markdown heading is never quoted
MAX_CHARS = 400  # a longer "sentence" is a table or a run-on list, not a quotable sentence
# "not in the documents" only when the strict prompt is this sure the passages lack the answer ...
NOT_FOUND_P = 0.9
# ... and the best passage is no closer to the question than this (e5 cosine)
NOT_FOUND_DENSE = 0.886
_WORD = re.compile(r"[^\W_]+")
_ITEM = re.compile(r"^\s*(?:[-*•]|\d{1,2}[.)])\s+\S")  # a list item line: "- ...", "* ...", "1. ...", "2) ..."


@dataclass(frozen=True)
class Candidate:
    """One passage sentence and how likely it is to answer the question."""

    passage_n: int
    sentence: str
    draft_support: float  # best cosine with a sentence of the declined draft (0 when there is no usable draft)
    question_sim: float  # cosine with the question
    score: float


def quotable(sentence: str, max_chars: int = MAX_CHARS) -> bool:
    """Long enough to say something, short enough to be one sentence (not a table row run together)."""
    return (not sentence.startswith("#") and len(_WORD.findall(sentence)) >= MIN_WORDS
            and len(sentence) <= max_chars)


def list_quotes(text: str) -> dict[str, str]:
    """A sentence that ends with ":" and is followed by list items, mapped to itself joined with those items (the
    passage's own words, whitespace collapsed): the introduction alone names the list without saying what is in it."""
    lines = text.split("\n")
    out: dict[str, str] = {}
    for i, line in enumerate(lines):
        if not line.rstrip().endswith(":") or line.lstrip().startswith("#"):
            continue
        items = []
        for later in lines[i + 1:]:
            if _ITEM.match(later):
                items.append(later.strip())
            elif later.strip():
                break
        intro = (split_sentences(line) or [""])[-1]
        if items and intro:
            out[intro] = " ".join(" ".join([intro] + items).split())
    return out


def passage_sentences(passages: Sequence[Passage], max_chars: int = MAX_CHARS) -> list[tuple[int, str]]:
    """(passage number, sentence) for every quotable sentence of the passages, in passage order; a sentence that
    introduces a list comes with the list's items when the whole still fits ``max_chars``."""
    out = []
    for p in passages:
        lists = list_quotes(p.text)
        for s in split_sentences(p.text):
            joined = lists.get(s)
            if joined and quotable(joined, max_chars):
                out.append((p.n, joined))
            elif quotable(s, max_chars):
                out.append((p.n, s))
    return out


def draft_sentences(draft: str) -> list[str]:
    """The sentences of a declined draft, without their citation markers (none for a NOT_FOUND draft)."""
    return [t for t in (strip_markers(s) for s in split_sentences(draft or "")) if t and "NOT_FOUND" not in t]


def score_candidates(sentences: Sequence[tuple[int, str]], draft_sims: np.ndarray | None, question_sims: np.ndarray,
                     draft_weight: float = DRAFT_WEIGHT) -> list[Candidate]:
    """Candidates best first. ``draft_sims``: draft sentence x passage sentence cosines (None or empty: no draft,
    so the question alone decides); ``question_sims``: the question's cosine with each passage sentence."""
    has_draft = draft_sims is not None and draft_sims.size > 0
    support = draft_sims.max(axis=0) if has_draft else np.zeros(len(sentences))
    w = draft_weight if has_draft else 0.0
    out = [Candidate(n, s, float(support[i]), float(question_sims[i]),
                     float(w * support[i] + (1.0 - w) * question_sims[i]))
           for i, (n, s) in enumerate(sentences)]
    return sorted(out, key=lambda c: -c.score)


def pick(ranked: Sequence[Candidate], max_sentences: int = MAX_SENTENCES,
         margin: float = SECOND_MARGIN) -> list[Candidate]:
    """The best candidate, and the next ones (up to ``max_sentences``) that score within ``margin`` of it."""
    if not ranked:
        return []
    chosen = [ranked[0]]
    for c in ranked[1:]:
        if len(chosen) >= max_sentences or c.score < ranked[0].score - margin:
            break
        if c.sentence != chosen[-1].sentence:
            chosen.append(c)
    return chosen


def nothing_close(p_not_found: float, top_dense: float, p_min: float = NOT_FOUND_P,
                  dense_max: float = NOT_FOUND_DENSE) -> bool:
    """Are the documents silent on the question (the "not in the documents" outcome)? Both signals must agree:
    the strict prompt expects NOT_FOUND and no passage is close to the question."""
    return p_not_found >= p_min and top_dense <= dense_max


def as_citations(chosen: Sequence[Candidate], passages: Sequence[Passage]) -> list[Citation]:
    """The chosen sentences as citations numbered 1, 2, ... (one per sentence), each naming its passage."""
    by_n = {p.n: p for p in passages}
    out = []
    for i, c in enumerate(chosen, 1):
        p = by_n[c.passage_n]
        out.append(Citation(n=i, doc=p.doc_id, title=p.chunk.title, page=p.chunk.pages, section=p.chunk.section,
                            quote=c.sentence, source_url=(p.chunk.source_urls or ("",))[0], score=round(c.score, 4),
                            passage_n=p.n))
    return out


def choose_evidence(question: str, draft: str, passages: Sequence[Passage],
                    embed_passages: Callable[[list[str]], np.ndarray],
                    embed_query: Callable[[str], np.ndarray]) -> list[Citation]:
    """The one or two passage sentences most likely to answer ``question``, as citations (empty: none quotable)."""
    sentences = passage_sentences(passages)
    if not sentences:
        return []
    drafted = draft_sentences(draft)
    vecs = np.asarray(embed_passages(drafted + [s for _, s in sentences]))
    d_vec, s_vec = vecs[: len(drafted)], vecs[len(drafted):]
    q_vec = np.asarray(embed_query(question)).reshape(-1)
    ranked = score_candidates(sentences, d_vec @ s_vec.T if drafted else None, s_vec @ q_vec)
    return as_citations(pick(ranked), passages)
