"""Alignment metrics: pure functions of the gold cases and the levels ``align`` gave (docs/ALIGNMENT.md).

A *pair* is one (proposal, priority). Only labelled pairs count (the priority is in one of the case's three
lists); the others are not judged.

- strong recall: pairs that must be ``strong`` and are;
- partial recall: pairs that must be at least ``partial`` (``must_strong`` or ``must_partial``) and are;
- strong / partial precision: of the labelled pairs that got ``strong`` (at least ``partial``), the share that
  must be at least ``partial``;
- false strong rate: of the pairs that must stay ``none``, the share that got ``strong``
  (false match rate: got at least ``partial``);
- pass: a proposal whose every labelled pair is right.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Mapping, Sequence

from .align_gold import AlignCase

RANK = {"none": 0, "partial": 1, "strong": 2}

Got = Mapping[str, Mapping[str, str]]  # case id -> priority id -> "strong" / "partial" / "none"


def ratio(num: int, den: int) -> float | None:
    return num / den if den else None


@dataclass(frozen=True)
class Counts:
    """Counts of labelled pairs; the rates are properties so the JSON keeps both."""

    must_strong: int = 0
    strong_hit: int = 0  # must be strong, got strong
    must_match: int = 0  # must be at least partial
    match_hit: int = 0  # ... and got at least partial
    got_strong: int = 0  # labelled pairs that got strong
    got_strong_ok: int = 0  # ... and must be at least partial
    got_match: int = 0  # labelled pairs that got at least partial
    got_match_ok: int = 0
    must_none: int = 0
    false_strong: int = 0  # must stay none, got strong
    false_match: int = 0  # must stay none, got at least partial

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def rates(self) -> dict[str, float | None]:
        return {"strong_recall": ratio(self.strong_hit, self.must_strong),
                "partial_recall": ratio(self.match_hit, self.must_match),
                "strong_precision": ratio(self.got_strong_ok, self.got_strong),
                "partial_precision": ratio(self.got_match_ok, self.got_match),
                "false_strong_rate": ratio(self.false_strong, self.must_none),
                "false_match_rate": ratio(self.false_match, self.must_none)}

    def to_json(self) -> dict:
        return {**self.rates(), **asdict(self)}


def pair_counts(expected: str | None, got: str) -> Counts:
    """The counts one (proposal, priority) pair adds; ``expected`` None (not judged) adds nothing."""
    if expected is None:
        return Counts()
    if got not in RANK:
        raise ValueError(f"unknown alignment level {got!r}")
    relevant = expected in ("strong", "partial")
    strong, match = got == "strong", RANK[got] >= RANK["partial"]
    return Counts(must_strong=int(expected == "strong"), strong_hit=int(expected == "strong" and strong),
                  must_match=int(relevant), match_hit=int(relevant and match),
                  got_strong=int(strong), got_strong_ok=int(strong and relevant),
                  got_match=int(match), got_match_ok=int(match and relevant),
                  must_none=int(expected == "none"), false_strong=int(expected == "none" and strong),
                  false_match=int(expected == "none" and match))


def case_failures(case: AlignCase, got: Mapping[str, str]) -> list[str]:
    """What a proposal got wrong, one entry per labelled pair ("health: partial, must be strong")."""
    out = []
    for pid in (*case.must_strong, *case.must_partial, *case.must_none):
        want, have = case.expected(pid), got.get(pid, "none")
        wrong = (have != "none") if want == "none" else RANK[have] < RANK[want]
        if wrong:
            out.append(f"{pid}: {have}, must be {'none' if want == 'none' else 'strong' if want == 'strong' else 'at least partial'}")
    return out


def _sum(counts: Iterable[Counts]) -> Counts:
    total = Counts()
    for c in counts:
        total = total + c
    return total


def _counts(cases: Sequence[AlignCase], got: Got, priority_id: str | None = None) -> Counts:
    return _sum(pair_counts(c.expected(p), got[c.id].get(p, "none"))
                for c in cases for p in _labelled(c) if priority_id in (None, p))


def _labelled(case: AlignCase) -> tuple[str, ...]:
    return (*case.must_strong, *case.must_partial, *case.must_none)


def summary(cases: Sequence[AlignCase], got: Got, langs: Sequence[str] = ("en", "bg")) -> dict[str, dict]:
    """Rates and counts over every case ("all") and per language, with the pass rate."""
    out = {}
    for lang in ("all", *langs):
        part = [c for c in cases if lang in ("all", c.lang)]
        passed = sum(not case_failures(c, got[c.id]) for c in part)
        out[lang] = {"proposals": len(part), "passed": passed, "pass_rate": ratio(passed, len(part)),
                     **_counts(part, got).to_json()}
    return out


def per_priority(cases: Sequence[AlignCase], got: Got, priority_ids: Sequence[str],
                 langs: Sequence[str] = ("en", "bg")) -> dict[str, dict[str, dict]]:
    """priority id -> "all" / language -> rates and counts over the pairs of that priority."""
    return {p: {lang: _counts([c for c in cases if lang in ("all", c.lang)], got, p).to_json()
                for lang in ("all", *langs)} for p in priority_ids}
