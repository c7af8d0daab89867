"""Pure scoring functions: no models, no I/O. Everything here is unit-tested on hand-made cases.

Retrieval relevance has two variants:
- doc level: a passage is relevant to a gold source when its document matches the source's ``doc``
  glob and, when given, the page lies in the passage's pages and the section equals or is contained
  in the passage's heading path;
- fact level (questions with ``fact_ids``): a passage is relevant when it carries one of the facts.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Iterable, Sequence


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


def _contains(haystack_norm: str, needle: str) -> bool:
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
    return any(_contains(norm, alt.strip()) for alt in key_fact.split("|") if alt.strip())


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


def covered(ref: Ref, sources: Sequence = (), fact_ids: Sequence[str] = (), level: str = "doc") -> set:
    """Which gold items ``ref`` covers: source indexes (level "doc") or fact ids (level "fact")."""
    if level == "fact":
        return set(ref.fact_ids) & set(fact_ids)
    return {i for i, s in enumerate(sources) if source_matches(s, ref)}


def is_relevant(ref: Ref, sources: Sequence = (), fact_ids: Sequence[str] = ()) -> bool:
    """Relevant at either level (used for citations)."""
    return bool(covered(ref, sources, level="doc") or covered(ref, fact_ids=fact_ids, level="fact"))


def _gold(sources, fact_ids, level) -> int:
    return len(set(fact_ids)) if level == "fact" else len(sources)


def hit_at_k(refs: Sequence[Ref], k: int, sources=(), fact_ids=(), level="doc") -> float | None:
    if not _gold(sources, fact_ids, level):
        return None
    return float(any(covered(r, sources, fact_ids, level) for r in refs[:k]))


def recall_at_k(refs: Sequence[Ref], k: int, sources=(), fact_ids=(), level="doc") -> float | None:
    """Fraction of gold items (sources or facts) covered by the top ``k``."""
    n = _gold(sources, fact_ids, level)
    if not n:
        return None
    got = set().union(*[covered(r, sources, fact_ids, level) for r in refs[:k]]) if refs[:k] else set()
    return len(got) / n


def mrr(refs: Sequence[Ref], sources=(), fact_ids=(), level="doc") -> float | None:
    if not _gold(sources, fact_ids, level):
        return None
    for rank, r in enumerate(refs, start=1):
        if covered(r, sources, fact_ids, level):
            return 1.0 / rank
    return 0.0


def ndcg_at_k(refs: Sequence[Ref], k: int, sources=(), fact_ids=(), level="doc") -> float | None:
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
    """Every retrieval metric at both levels: ``doc_hit@5``, ``fact_mrr``, ..."""
    out: dict[str, float | None] = {}
    for level in ("doc", "fact"):
        for k in ks:
            out[f"{level}_hit@{k}"] = hit_at_k(refs, k, sources, fact_ids, level)
            out[f"{level}_recall@{k}"] = recall_at_k(refs, k, sources, fact_ids, level)
            out[f"{level}_ndcg@{k}"] = ndcg_at_k(refs, k, sources, fact_ids, level)
        out[f"{level}_mrr"] = mrr(refs, sources, fact_ids, level)
    return out


# --------------------------------------------------------------------------- citations and grounding

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


_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "януари|февруари|март|април|май|юни|юли|август|септември|октомври|ноември|декември")
_DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}[./]\d{1,2}[./]\d{4}\b"
    rf"|\b(?:\d{{1,2}}\s+)?(?:{_MONTHS})\s+\d{{4}}\b|\b(?:{_MONTHS})\s+\d{{1,2}},?\s+\d{{4}}\b",
    re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?%?")
_WORD = re.compile(r"[^\W\d_][\w'\-]*")
_CITE = re.compile(r"\[\d+(?:\s*[,\-]\s*\d+)*\]")
_SENTENCE_END = re.compile(r"[.!?:;\n]\s*$")


def claims(answer: str) -> list[tuple[str, str]]:
    """(kind, text) of the checkable items in an answer: dates, numbers, capitalised names.

    A capitalised word that starts a sentence is not taken as a name on its own (it is dropped from
    the front of a longer run) unless it is an acronym like ``CSKC`` or ``RIS3``. Citation markers like ``[2]`` are ignored.
    """
    text = _CITE.sub(" ", unicodedata.normalize("NFKC", answer or ""))
    items: list[tuple[str, str]] = []
    for m in _DATE.finditer(text):
        items.append(("date", m.group(0)))
    text = _DATE.sub(" ", text)
    text = normalize_numbers(text)
    for m in _NUMBER.finditer(text):
        items.append(("number", m.group(0).rstrip("%")))
    run: list[str] = []
    run_start = prev_end = 0

    def flush():
        acronym = run and (run[0].isupper() and len(run[0]) > 1 or any(ch.isdigit() for ch in run[0]))
        words = run[1:] if run and not acronym and _sentence_start(text, run_start) else run
        if words:
            items.append(("name", " ".join(words)))

    for m in _WORD.finditer(text):
        word = m.group(0)
        if word[0].isupper():
            if run and text[prev_end:m.start()].strip():  # punctuation between words breaks the run
                flush()
                run = []
            if not run:
                run_start = m.start()
            run.append(word)
        elif run:
            flush()
            run = []
        prev_end = m.end()
    if run:
        flush()
    return list(dict.fromkeys(items))


def _sentence_start(text: str, pos: int) -> bool:
    before = text[:pos]
    return not before.strip() or _SENTENCE_END.search(before) is not None


# Small numbers a passage may spell out (en, bg). The metric keeps its own table on purpose: it must not
# import the system's citation check, which it is there to measure.
SPELLED = {
    "1": ("one", "един", "една", "едно"), "2": ("two", "два", "две"), "3": ("three", "три"),
    "4": ("four", "четири"), "5": ("five", "пет"), "6": ("six", "шест"), "7": ("seven", "седем"),
    "8": ("eight", "осем"), "9": ("nine", "девет"), "10": ("ten", "десет"), "11": ("eleven", "единадесет"),
    "12": ("twelve", "дванадесет"), "15": ("fifteen", "петнадесет"), "20": ("twenty", "двадесет"),
}


# A Bulgarian answer to a question about English passages translates what it cites: its months and a few names
# are grounded by their English form. The metric keeps this table itself (the corpus glossary adds the rest).
BG_MONTHS = dict(zip("януари февруари март април май юни юли август септември октомври ноември декември".split(),
                     "january february march april may june july august september october november december".split()))
# (inflected forms match as in the glossary: "българските" is "български", see ``_same_word``)
BG_NAMES = {"българия": ("Bulgaria",), "български": ("Bulgarian",), "българска": ("Bulgarian",), "софия": ("Sofia",),
            "мсп": ("SME", "SMEs"), "ес": ("EU",), "европейски": ("European",), "европейска": ("European",)}
# words an acronym's letters may step over in its spelled-out form ("ISSS": Innovation Strategy for Smart Specialisation)
_LINKERS = frozenset("and of for the in on to за на и в".split())
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_ALPHA_RUN = re.compile(r"[^\W\d_]+")


def spelled_out(acronym: str, text: str) -> bool:
    """Is an acronym of three or more letters (``CSKC``) written out in ``text`` (as written, not normalised) as
    the capital initials of consecutive words ("Cluster Sofia – Knowledge City"), small lower-case linking words
    allowed between them ("Innovation Strategy for Smart Specialisation")? Capitals only, so that three
    ordinary words do not spell an acronym by chance."""
    letters = acronym.upper()
    if len(letters) < 3 or not letters.isalpha():
        return False
    words = _ALPHA_RUN.findall(unicodedata.normalize("NFKC", text))
    for i, first in enumerate(words):
        if first[0] != letters[0]:
            continue
        k, j = 0, i
        while k < len(letters) and j < len(words):
            if words[j][0] == letters[k]:
                k, j = k + 1, j + 1
            elif k and words[j] in _LINKERS:
                j += 1
            else:
                break
        if k == len(letters):
            return True
    return False


def parse_glossary(text: str) -> list[tuple[frozenset[str], tuple[str, ...]]]:
    """Entries of a Bulgarian–English glossary in the corpus's format, as (Bulgarian words, English names):
    ``- **Клъстер София град на знанието (КСГЗ)** — Cluster Sofia – Knowledge City (CSKC), the ...`` gives the
    Bulgarian words of the bold term and its bracket, and the English names before the first comma or "see",
    split at ";" and "/", with any acronym in brackets, and the leading capitalised words of each, as names of
    their own."""
    entries = []
    for m in re.finditer(r"^\s*-\s+\*\*(?P<bg>.+?)\*\*(?P<rest>.*?)\s+—\s+(?P<en>.+)$", text, re.MULTILINE):
        bg = m.group("bg") + " " + m.group("rest")
        lead = re.split(r",|;\s*see\b|\s\(\[", m.group("en"), maxsplit=1)[0]
        names: list[str] = []
        for alt in re.split(r"[;/]", lead):
            names += [a.strip(" .\"'“”„") for a in re.findall(r"\(([^)]*)\)", alt)]
            names.append(re.sub(r"\([^)]*\)", "", alt).strip(" .\"'“”„"))
        words = frozenset(w.casefold() for w in _ALPHA_RUN.findall(bg)
                          if _CYRILLIC.search(w) and w.casefold() not in _LINKERS)
        # "General Assembly of the members" is found as "General Assembly": its leading capitalised words (two or more)
        names += [caps.group(0) for n in names if (caps := re.match(r"[A-Z][\w&-]*(?:\s+[A-Z][\w&-]*)+", n))]
        names = [n for n in dict.fromkeys(names) if n]
        if words and names:
            entries.append((words, tuple(names)))
    return entries


def _same_word(a: str, b: str) -> bool:
    """Bulgarian inflects names ("Общинският" of "Общински", "Общото" of "Общо"): a word of four letters or more
    matches a longer one that starts with it; shorter ones (acronyms like "ЕС") must be equal."""
    short, long_ = sorted((a, b), key=len)
    return short == long_ or (len(short) >= 4 and long_.startswith(short))


def _name_found(name: str, norm_sources: str, raw: str) -> bool:
    return _contains(norm_sources, name) or (name.isupper() and spelled_out(name, raw))


def _translated(words: list[str], norm_sources: str, raw: str, glossary) -> bool:
    """Cyrillic words of a name grounded by their English form: each through ``BG_NAMES``, or all of them
    through one glossary entry whose English name is in the sources."""
    folded = [w.casefold() for w in words]
    if all(any(_same_word(w, word) and _name_found(n, norm_sources, raw) for word, names in BG_NAMES.items()
               for n in names) for w in folded):
        return True
    return any(all(any(_same_word(w, b) for b in bg) for w in folded) and any(_name_found(n, norm_sources, raw) for n in names)
               for bg, names in glossary)


def _claim_found(kind: str, item: str, norm_sources: str, raw: str = "", glossary=()) -> bool:
    """Is one claim of the answer in the sources? (``norm_sources``: ``normalize`` of ``raw``, the cited text.)"""
    if kind == "name":  # a possessive is the name itself: "OPIC's budget" is grounded by "OPIC"
        words = [re.sub(r"'s$", "", w) for w in _WORD.findall(item.replace("\u2019", "'"))]
        left = [w for w in words if not re.search(rf"(?<!\w){re.escape(w.casefold())}(?!\w)", norm_sources)
                and not (w.isupper() and spelled_out(w, raw))]  # "CSKC" spelled out counts
        return not left or (all(_CYRILLIC.search(w) for w in left) and _translated(left, norm_sources, raw, glossary))
    if kind == "date":
        english = " ".join(BG_MONTHS.get(p.casefold(), p) for p in item.split())
        if _contains(norm_sources, item) or _contains(norm_sources, english):
            return True
        parts = re.findall(r"\d+|[^\W\d_]+", english)  # every component (day, month, year) is there
        return all(_contains(norm_sources, p.lstrip("0") or p) for p in parts)
    # "5 members" is grounded by a passage that says "five members"
    return _contains(norm_sources, item) or any(
        re.search(rf"(?<!\w){w}(?!\w)", norm_sources) for w in SPELLED.get(item, ()))


def grounding(answer: str, cited_texts: Sequence[str], glossary=()) -> tuple[float | None, list[str]]:
    """Fraction of the answer's numbers, dates and names found in the cited passages' text, and
    the missing ones. None when the answer has nothing checkable. A name also counts as found when it is an
    acronym the passage spells out ("CSKC" for "Cluster Sofia – Knowledge City"), and a Bulgarian month or name
    when its English form is there (``glossary``: ``parse_glossary`` of the corpus's glossary, if it has one)."""
    items = claims(answer)
    if not items:
        return None, []
    raw = "\n".join(cited_texts)
    norm_sources = normalize(raw)
    missing = [item for kind, item in items if not _claim_found(kind, item, norm_sources, raw, glossary)]
    return 1.0 - len(missing) / len(items), missing


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
        c = Counter()
        for gate, answerable, correct in items:
            if gate < t:
                c["refused"] += 1
            elif not answerable or correct is False:
                c["answered_wrong"] += 1
            elif correct:
                c["answered_correct"] += 1
            else:
                c["answered_unknown"] += 1
        rows.append({"threshold": round(t, 4), **{k: c[k] / n for k in
                     ("answered_correct", "answered_wrong", "refused", "answered_unknown")}})
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
