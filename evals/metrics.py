"""Pure scoring functions for retrieval, answers, quotes, refusal and aggregation (no models, no I/O)."""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Iterable, Literal, Sequence, get_args

Level = Literal["doc", "fact"]  # relevance by gold source (document, section, page) or by fact id
LEVELS: tuple[Level, ...] = get_args(Level)
# where a question lands at one threshold of the refusal sweep
Outcome = Literal["answered_correct", "answered_wrong", "refused", "answered_unknown"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


# --------------------------------------------------------------------------- text normalisation

_THOUSANDS = re.compile(r"(?<=\d)[,\u00a0\u202f\u2009 ](?=\d{3}(?!\d))")
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")
_DASHES = str.maketrans({"\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2018": "'", "\u2019": "'",
                         "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"'})


def normalize_numbers(text: str) -> str:
    """``40,400``, ``40 400`` and ``40400`` all become ``40400``; ``8 250`` -> ``8250``; decimals kept
    (``3.5`` stays, a decimal comma ``3,5`` becomes ``3.5``)."""
    text = _THOUSANDS.sub("", text)
    return _DECIMAL_COMMA.sub(".", text)


def normalize(text: str) -> str:
    """Case-folded, NFKC, unified dashes and quotes, numbers normalised, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text or "").translate(_DASHES)
    text = normalize_numbers(text)
    return " ".join(text.casefold().split())


def contains(haystack_norm: str, needle: str) -> bool:
    """Substring match on normalised text; a number may not be part of a longer number."""
    n = normalize(needle)
    if not n:
        return False
    pattern = re.escape(n)
    if n[0].isdigit():
        pattern = r"(?<![\d.])" + pattern
    if n[-1].isdigit():
        pattern += r"(?!\d|[.,]\d)"
    return re.search(pattern, haystack_norm) is not None


# --------------------------------------------------------------------------- answer metrics

def fact_present(answer: str, key_fact: str) -> bool:
    """Any ``|``-separated alternative of ``key_fact`` occurs in ``answer`` (case-insensitive)."""
    norm = normalize(answer)
    return any(contains(norm, alt.strip()) for alt in key_fact.split("|") if alt.strip())


def key_fact_recall(answer: str, key_facts: Sequence[str]) -> float | None:
    """Fraction of key facts present in the answer; None when there are no key facts."""
    if not key_facts:
        return None
    return sum(fact_present(answer, f) for f in key_facts) / len(key_facts)


_ARTICLES = {"a", "an", "the"}


def _tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"\w+(?:\.\d+)?", normalize(text)) if t not in _ARTICLES]


def token_f1(answer: str, reference: str) -> float | None:
    """SQuAD-style token F1 (punctuation and English articles dropped); None without a reference."""
    ref = _tokens(reference)
    if not ref:
        return None
    got = _tokens(answer)
    common = sum((Counter(got) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(got), common / len(ref)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------- retrieval relevance
# Two levels of relevance. "doc": a passage is relevant to a gold source when its document matches the
# source's ``doc`` glob and, when given, the page lies in the passage's pages and the section equals or is
# contained in the passage's heading path. "fact" (questions with ``fact_ids``): it carries one of the facts.

@dataclass(frozen=True)
class Ref:
    """What scoring needs to know about a retrieved or cited passage."""

    doc: str
    heading_path: tuple[str, ...] = ()
    page_start: int | None = None
    page_end: int | None = None
    fact_ids: tuple[str, ...] = ()
    text: str = ""
    more_paths: tuple[tuple[str, ...], ...] = ()  # heading paths of further sections a long passage spans

    @classmethod
    def of(cls, passage, pages: dict | None = None) -> "Ref":
        """From an ``assistant.types.Passage`` (duck-typed: nothing is imported).

        A passage merged from neighbouring chunks only carries its first chunk; ``pages`` (chunk id ->
        (page_start, page_end)) lets the page range cover every merged chunk.
        """
        c = passage.chunk
        spans = [(c.page_start, c.page_end if c.page_end is not None else c.page_start)]
        spans += [pages[i] for i in getattr(passage, "chunk_ids", ()) if pages and i in pages]
        starts = [a for a, _ in spans if a is not None]
        ends = [b if b is not None else a for a, b in spans if a is not None]
        return cls(doc=c.doc_id, heading_path=tuple(c.heading_path), page_start=min(starts, default=None),
                   page_end=max(ends, default=None), fact_ids=tuple(passage.fact_ids), text=passage.text)


def doc_matches(pattern: str, doc: str) -> bool:
    """fnmatch glob, case-insensitive, against the doc id or its file name."""
    p, d = pattern.casefold(), doc.casefold()
    return fnmatchcase(d, p) or fnmatchcase(d.rsplit("/", 1)[-1], p)


def section_matches(section: str, heading_path: Sequence[str]) -> bool:
    """The gold section equals a heading, or is contained in the joined heading path."""
    s = normalize(section)
    heads = [normalize(h) for h in heading_path]
    return s in heads or (bool(heads) and s in " > ".join(heads))


def source_matches(source, ref: Ref) -> bool:
    """Is ``ref`` relevant to one gold source (``.doc``, optional ``.section`` and ``.page``)?"""
    if not doc_matches(source.doc, ref.doc):
        return False
    page = getattr(source, "page", None)
    if page is not None:
        if ref.page_start is None:
            return False
        end = ref.page_end if ref.page_end is not None else ref.page_start
        if not ref.page_start <= int(page) <= end:
            return False
    section = getattr(source, "section", None)
    if section and not any(section_matches(section, p) for p in (ref.heading_path, *ref.more_paths)):
        return False
    return True


def covered(ref: Ref, sources: Sequence = (), fact_ids: Sequence[str] = (), level: Level = "doc") -> set:
    """Which gold items ``ref`` covers: source indexes (level "doc") or fact ids (level "fact")."""
    if level == "fact":
        return set(ref.fact_ids) & set(fact_ids)
    return {i for i, s in enumerate(sources) if source_matches(s, ref)}


def is_relevant(ref: Ref, sources: Sequence = (), fact_ids: Sequence[str] = ()) -> bool:
    """Relevant at either level (used for citations)."""
    return bool(covered(ref, sources, level="doc") or covered(ref, fact_ids=fact_ids, level="fact"))


def _gold(sources, fact_ids, level: Level) -> int:
    return len(set(fact_ids)) if level == "fact" else len(sources)


def hit_at_k(refs: Sequence[Ref], k: int, sources=(), fact_ids=(), level: Level = "doc") -> float | None:
    if not _gold(sources, fact_ids, level):
        return None
    return float(any(covered(r, sources, fact_ids, level) for r in refs[:k]))


def recall_at_k(refs: Sequence[Ref], k: int, sources=(), fact_ids=(), level: Level = "doc") -> float | None:
    """Fraction of gold items (sources or facts) covered by the top ``k``."""
    n = _gold(sources, fact_ids, level)
    if not n:
        return None
    got = set().union(*[covered(r, sources, fact_ids, level) for r in refs[:k]]) if refs[:k] else set()
    return len(got) / n


def mrr(refs: Sequence[Ref], sources=(), fact_ids=(), level: Level = "doc") -> float | None:
    if not _gold(sources, fact_ids, level):
        return None
    for rank, r in enumerate(refs, start=1):
        if covered(r, sources, fact_ids, level):
            return 1.0 / rank
    return 0.0


def ndcg_at_k(refs: Sequence[Ref], k: int, sources=(), fact_ids=(), level: Level = "doc") -> float | None:
    """Binary gain for a passage that covers a gold item not covered higher up (so it stays in 0..1);
    the ideal ranking covers one new item per rank."""
    n = _gold(sources, fact_ids, level)
    if not n:
        return None
    seen: set = set()
    dcg = 0.0
    for rank, r in enumerate(refs[:k], start=1):
        new = covered(r, sources, fact_ids, level) - seen
        if new:
            dcg += 1.0 / math.log2(rank + 1)
            seen |= new
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(k, n) + 1))
    return dcg / ideal


def retrieval_scores(refs: Sequence[Ref], sources=(), fact_ids=(), ks=(1, 3, 5)) -> dict[str, float | None]:
    """Every retrieval metric at both levels: ``doc_hit@5``, ``fact_mrr``, ..., and by page (``page_hit@5``)."""
    out: dict[str, float | None] = {}
    for level in LEVELS:
        for k in ks:
            out[f"{level}_hit@{k}"] = hit_at_k(refs, k, sources, fact_ids, level)
            out[f"{level}_recall@{k}"] = recall_at_k(refs, k, sources, fact_ids, level)
            out[f"{level}_ndcg@{k}"] = ndcg_at_k(refs, k, sources, fact_ids, level)
        out[f"{level}_mrr"] = mrr(refs, sources, fact_ids, level)
    return out | page_scores(refs, sources, ks)


# --------------------------------------------------------------------------- pages
# Page level (only where the gold names pages): a passage hits a gold page when its document matches the source's
# glob and its page range covers that page; the section is not asked. PDF pages are the printed numbers.

@dataclass(frozen=True)
class PageGold:
    doc: str
    page: int


def page_gold(sources: Sequence) -> list[PageGold]:
    """The gold sources that name a page, as (doc glob, page)."""
    return [PageGold(s.doc, int(s.page)) for s in sources if getattr(s, "page", None) is not None]


def page_scores(refs: Sequence[Ref], sources=(), ks=(1, 3, 5, 10)) -> dict[str, float | None]:
    """``page_hit@k`` for each k and ``page_ndcg@10``; every value None when no gold source names a page."""
    gold = page_gold(sources)
    out: dict[str, float | None] = {f"page_hit@{k}": hit_at_k(refs, k, gold) for k in ks}
    out["page_ndcg@10"] = ndcg_at_k(refs, 10, gold)
    return out


def _page_range(pages: str) -> tuple[int, int] | None:
    """A citation's shown pages ("7", "7-9") as (first, last); None when it shows none."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[-\u2013]\s*(\d+))?\s*", str(pages or ""))
    return (int(m.group(1)), int(m.group(2) or m.group(1))) if m else None


def citation_page_accuracy(cited: Sequence[tuple[str, str]], sources=()) -> float | None:
    """Share of citations, (doc id, shown pages), whose document and pages cover a page a gold source names;
    None when no gold source names a page or nothing is cited."""
    gold = page_gold(sources)
    if not gold or not cited:
        return None
    refs = [Ref(doc=doc, page_start=r[0], page_end=r[1]) if (r := _page_range(pages)) else Ref(doc=doc)
            for doc, pages in cited]
    return sum(bool(covered(r, gold)) for r in refs) / len(refs)


# --------------------------------------------------------------------------- citations and quotes

def citation_precision(cited: Sequence[Ref], sources=(), fact_ids=()) -> float | None:
    """Fraction of cited passages relevant to a gold source or fact; None without citations or gold."""
    if not cited or not (sources or fact_ids):
        return None
    return sum(is_relevant(r, sources, fact_ids) for r in cited) / len(cited)


def _squash(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text or "").split())


def quote_valid(quote: str, passage_text: str) -> bool:
    """The quote occurs verbatim in the passage (only runs of whitespace are treated as equal)."""
    q = _squash(quote)
    return bool(q) and q in _squash(passage_text)


def quote_validity(pairs: Iterable[tuple[str, str]]) -> float | None:
    """Fraction of (quote, passage text) pairs whose quote is verbatim in its passage."""
    pairs = list(pairs)
    if not pairs:
        return None
    return sum(quote_valid(q, t) for q, t in pairs) / len(pairs)


# --------------------------------------------------------------------------- refusal

def refusal_scores(outcomes: Iterable[tuple[bool, bool]]) -> dict[str, float | None]:
    """From (answerable, refused) pairs. Refusal is the positive class:
    precision = refusals that were right; recall = unanswerable questions refused;
    accuracy = questions where answer-or-refuse was the right decision;
    false_refusal_rate = answerable questions refused."""
    outcomes = list(outcomes)
    refused = [a for a, r in outcomes if r]
    unanswerable = [r for a, r in outcomes if not a]
    answerable = [r for a, r in outcomes if a]
    tp = sum(1 for a, r in outcomes if r and not a)
    return {
        "refusal_precision": tp / len(refused) if refused else None,
        "refusal_recall": tp / len(unanswerable) if unanswerable else None,
        "refusal_accuracy": sum(1 for a, r in outcomes if r != a) / len(outcomes) if outcomes else None,
        "false_refusal_rate": sum(answerable) / len(answerable) if answerable else None,
    }


ANSWER_OUTCOMES = ("answered", "unconfirmed", "not_found")  # assistant.types.Outcome
HELD = 0.5  # shown passages "hold the answer" when they state at least half its key facts


def answer_or_evidence_recall(outcome: str, text: str, quotes: Sequence[str], key_facts: Sequence[str]) -> float | None:
    """Key facts stated by the answer, or for an unconfirmed outcome by its quoted evidence (none for "not in the
    documents"); None when there are no key facts."""
    said = text if outcome == "answered" else " ".join(quotes) if outcome == "unconfirmed" else ""
    return key_fact_recall(said, key_facts)


def false_not_found(outcome: str, shown: Sequence[str], key_facts: Sequence[str]) -> float | None:
    """1.0 when an answerable question was told "not in the documents" although the passages shown under that
    sentence hold at least half its key facts, else 0.0 (its mean: a rate over answerable questions); None
    without key facts."""
    if not key_facts:
        return None
    if outcome != "not_found":
        return 0.0
    return float((key_fact_recall(" ".join(shown), key_facts) or 0.0) >= HELD)


def outcome_counts(items: Iterable[tuple[bool, str]]) -> dict:
    """From (answerable, outcome) pairs: how many of each outcome among answerable and unanswerable questions,
    and the share of unanswerable questions given each (answered ones are the refusal misses)."""
    items = list(items)
    out: dict = {}
    for group, want in (("answerable", True), ("unanswerable", False)):
        got = [o for a, o in items if a == want]
        out[group] = {o: sum(1 for x in got if x == o) for o in ANSWER_OUTCOMES}
        out[f"{group}_share"] = {o: (out[group][o] / len(got) if got else None) for o in ANSWER_OUTCOMES}
    return out


def calibration(items: Sequence[tuple[float, bool, bool | None]], thresholds: Sequence[float]) -> list[dict]:
    """Refusal sweep. ``items``: (gate score, answerable, correct) where ``correct`` is whether the
    real answer was right (None when the assistant actually refused, so its answer is unknown).

    At threshold t a question is refused when gate < t. An answered unanswerable question is wrong;
    an answered answerable one is right or wrong by ``correct``, or "unknown" when it was refused
    in the real run (only thresholds below the operating point can reach those).
    """
    rows = []
    n = len(items) or 1
    for t in thresholds:
        c: Counter[Outcome] = Counter()
        for gate, answerable, correct in items:
            if gate < t:
                c["refused"] += 1
            elif not answerable or correct is False:
                c["answered_wrong"] += 1
            elif correct:
                c["answered_correct"] += 1
            else:
                c["answered_unknown"] += 1
        rows.append({"threshold": round(t, 4), **{k: c[k] / n for k in OUTCOMES}})
    return rows


# --------------------------------------------------------------------------- aggregation

def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolation percentile (q in 0..100)."""
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)


def latency_summary(values: Sequence[float]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    return {"p50": percentile(vals, 50), "p95": percentile(vals, 95),
            "mean": sum(vals) / len(vals) if vals else None, "n": len(vals)}


def mean_scores(rows: Sequence[dict[str, float | None]]) -> dict[str, dict]:
    """Per metric: mean over the rows where it applies (not None) and how many that was."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(k for r in rows for k in r):
        vals = [float(r[name]) for r in rows if r.get(name) is not None]
        out[name] = {"mean": sum(vals) / len(vals) if vals else None, "n": len(vals)}
    return out


def breakdown(rows: Sequence[dict[str, float | None]], groups: Sequence[dict[str, str]],
              by: Sequence[str] = ("persona", "lang")) -> dict[str, dict[str, dict]]:
    """``{"persona": {"member": mean_scores(...), ...}, "lang": {...}}``; rows and groups align."""
    out: dict[str, dict[str, dict]] = {}
    for key in by:
        values = sorted({g.get(key) or "-" for g in groups})
        out[key] = {v: mean_scores([r for r, g in zip(rows, groups) if (g.get(key) or "-") == v]) for v in values}
    return out
