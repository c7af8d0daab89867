"""Right, wrong or refused: an answer read against a free-text reference answer (the SEC-10-Q CSV has no key facts).

A reference answer there is a paragraph written by another model: figures, names and a lot of wording. An answer
is judged by what can be checked without a reader:

- figures: every amount, percentage or count in the answer and the reference (years, days of a date, quarter and
  form numbers left out), compared as values, across "billion"/"million"/a bare table figure and within the rounding
  of the less precise one. The answer is right when it gives at least one of the reference's figures and no more
  figures the reference lacks than figures it shares;
- without figures on both sides: the answer's own words (not the question's) must mostly be the reference's
  (at least half of them, and at least three);
- a reference that says the documents do not contain the answer: a refusal, or an answer that says so, is right.

``judge`` is pure; ``python -m evals.reference_match REPORT_DIR`` reads a finished run's report.json and prints the
verdict of every answered question and the counts. The method and its agreement with a human reading:
docs/EVALUATION.md.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Verdict = Literal["right", "wrong", "refused"]

_SCALES = {"thousand": 1e3, "million": 1e6, "mn": 1e6, "billion": 1e9, "bn": 1e9, "trillion": 1e12}
_NUMBER = re.compile(
    r"(?P<cur>[$€£]\s?)?(?<![\w.\-/])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)(?![\w\-]*\.pdf)"
    r"(?:\s?(?P<pct>%|percent\b)|\s?(?P<scale>thousand|million|billion|trillion|mn|bn)\b)?", re.IGNORECASE)
_MONTH = re.compile(r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+$", re.IGNORECASE)
_NOT_A_FIGURE_AFTER = re.compile(r"^(?:-?q\b|\s*(?:years?|quarters?)\b)", re.IGNORECASE)  # "10-Q", "four years"
_ABSENT = re.compile(
    r"\b(?:does|do|did) not (?:contain|provide|include|mention|disclose|specify)\b|\bnot (?:explicitly )?"
    r"(?:stated|mentioned|provided|disclosed|available)\b|\bno (?:specific )?(?:information|mention|data)\b",
    re.IGNORECASE)
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
STOPWORDS = frozenset(
    "a an the and or of to in on at for by with from as is are was were be been being what which who whom whose "
    "when where why how does do did has have had it its this that these those there their they them than then "
    "into over under about after before during per any all each much many more most can could would should will "
    "shall may might must not no yes if so such other also only own same both between up down out off again "
    "i you he she we me my our your his her source sources pdf quarter quarters company".split())
MIN_SHARED_WORDS = 3
MIN_WORD_SUPPORT = 0.5


@dataclass(frozen=True)
class Figure:
    """A number as written: its value in units (scale applied), how far rounding may put it off, and a percent flag."""

    value: float
    tolerance: float
    percent: bool
    text: str


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    why: str
    shared: tuple[str, ...] = ()  # the reference's figures (or words) the answer gives
    extra: tuple[str, ...] = ()  # figures the answer gives that the reference does not
    reference_absent: bool = False  # the reference says the documents do not answer the question
    details: dict = field(default_factory=dict)


def figures(text: str) -> list[Figure]:
    """The amounts, percentages and counts in ``text``. Left out: years (1990-2039 written bare), the day of a date
    ("July 1, 2023"), quarter and form numbers ("Q3", "10-Q"), citation markers ("[2]") and bare whole numbers under
    100 (list numbers, months, ages), which say little about being right."""
    out = []
    for m in _NUMBER.finditer(text):
        num, cur, pct, scale = m.group("num"), m.group("cur"), m.group("pct"), m.group("scale")
        before, after = text[:m.start("num")], text[m.end():]
        whole = re.fullmatch(r"\d+", num) is not None
        if before.endswith(("[", "Q", "q", "FY", "H")) or _NOT_A_FIGURE_AFTER.match(text[m.end("num"):]):
            continue
        if whole and not (cur or pct or scale):
            n = int(num)
            if 1990 <= n <= 2039 or n < 100 or _MONTH.search(before[-12:]):
                continue
        if after.startswith("]"):
            continue
        decimals = len(num.split(".")[1]) if "." in num else 0
        unit = _SCALES.get((scale or "").lower(), 1.0)
        value = float(num.replace(",", "")) * unit
        out.append(Figure(value=value, tolerance=0.5 * 10 ** -decimals * unit, percent=bool(pct),
                          text=m.group(0).strip()))
    return out


def same_figure(a: Figure, b: Figure) -> bool:
    """Equal within the rounding of the less precise, allowing for the other to be in thousands, millions or billions
    (a table's "39,669" in millions is "$39.7 billion" in a sentence)."""
    if a.percent != b.percent:
        return False
    for k in (0, 3, -3, 6, -6, 9, -9) if not a.percent else (0,):
        bv, bt = b.value * 10 ** k, b.tolerance * 10 ** k
        if math.isclose(a.value, bv, rel_tol=1e-9) or abs(a.value - bv) <= max(a.tolerance, bt):
            return True
    return False


def words(text: str) -> set[str]:
    """Content words, lower-cased and cut to five letters (a crude stem: "margins" and "margin" match)."""
    return {w[:5] for w in _WORD.findall(text.lower()) if len(w) > 2 and w not in STOPWORDS}


def says_absent(text: str) -> bool:
    """Does the text say the documents do not contain what was asked?"""
    return bool(_ABSENT.search(text or ""))


def judge(answer: str, reference: str, refused: bool, question: str = "") -> Judgement:
    """The verdict on one answer (``refused``: the assistant gave no answer) against the reference answer."""
    absent = says_absent(reference) and not figures(reference)
    if refused:
        if absent:
            return Judgement("right", "refused, and the reference says the documents do not answer",
                             reference_absent=True)
        return Judgement("refused", "no answer given")
    if absent:
        ok = says_absent(answer)
        return Judgement("right" if ok else "wrong",
                         "says the documents do not answer, as the reference does" if ok
                         else "answers where the reference says the documents do not", reference_absent=True)
    ref_figs, ans_figs = figures(reference), figures(answer)
    if ref_figs and ans_figs:
        shared = [a for a in ans_figs if any(same_figure(a, r) for r in ref_figs)]
        extra = [a for a in ans_figs if not any(same_figure(a, r) for r in ref_figs)]
        shared_texts = tuple(dict.fromkeys(f.text for f in shared))
        extra_texts = tuple(dict.fromkeys(f.text for f in extra))
        ok = bool(shared_texts) and len(shared_texts) >= len(extra_texts)
        return Judgement("right" if ok else "wrong",
                         f"{len(shared_texts)} of its figures in the reference, {len(extra_texts)} not",
                         shared=shared_texts, extra=extra_texts)
    own = words(answer) - words(question)
    shared_words = own & words(reference)
    support = len(shared_words) / len(own) if own else 0.0
    ok = len(shared_words) >= MIN_SHARED_WORDS and support >= MIN_WORD_SUPPORT
    return Judgement("right" if ok else "wrong", f"{len(shared_words)} of its {len(own)} own words in the reference "
                     f"({support:.2f}); figures: answer {len(ans_figs)}, reference {len(ref_figs)}",
                     shared=tuple(sorted(shared_words)), details={"support": round(support, 3)})


def judge_report(report: dict) -> list[tuple[str, Judgement]]:
    """(question id, judgement) for every question of a report.json that has an answer."""
    out = []
    for q in report.get("questions", []):
        a = q.get("answer")
        if a:
            out.append((q["id"], judge(a.get("text", ""), q.get("reference_answer", ""), bool(a.get("refused")),
                                       q.get("question", ""))))
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m evals.reference_match REPORT_DIR (or its report.json)", file=sys.stderr)
        return 2
    path = Path(args[0])
    path = path / "report.json" if path.is_dir() else path
    if not path.is_file():
        print(f"{path}: no such report", file=sys.stderr)
        return 2
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        print(f"{path}: not valid JSON ({exc})", file=sys.stderr)
        return 2
    verdicts = judge_report(report)
    for qid, j in verdicts:
        print(f"{qid}\t{j.verdict}\t{j.why}" + (f"\tshared: {', '.join(j.shared[:6])}" if j.shared else "")
              + (f"\textra: {', '.join(j.extra[:6])}" if j.extra else ""))
    counts = Counter(j.verdict for _, j in verdicts)
    print(f"right {counts['right']}, wrong {counts['wrong']}, refused {counts['refused']} of {len(verdicts)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
