"""The gold set is checked against the corpus it was written from (evals/datasets/README.md, Validation).

A question whose key fact the corpus never states, or whose gold section is not a heading of its document, would
make every figure of the evaluation wrong without any test failing; these checks catch that when questions are added.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from evals.datasets import load_dataset
from evals.metrics import fact_present
from evals.runner import DEFAULT_DATASET

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
QUESTIONS = load_dataset(DEFAULT_DATASET)
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FACT = re.compile(r"<!--\s*([A-Z]{1,2}\d+[a-z]?)\s*-->")


def _corpus() -> tuple[dict[str, list[str]], dict[str, tuple[str, str, str]]]:
    """Headings of each corpus file, and for each fact id: (file, nearest heading above it, the text that states it:
    everything since the previous fact marker or heading)."""
    headings: dict[str, list[str]] = {}
    facts: dict[str, tuple[str, str, str]] = {}
    for path in sorted(CORPUS.glob("*.md")):
        heading, since = "", []
        headings[path.name] = []
        for line in path.read_text(encoding="utf-8").splitlines():
            m = _HEADING.match(line)
            if m:
                heading, since = m.group(2), []
                headings[path.name].append(heading)
                continue
            since.append(line)
            ids = _FACT.findall(line)
            for fid in ids:
                facts[fid] = (path.name, heading, " ".join(since))
            if ids:
                since = []
    return headings, facts


HEADINGS, FACTS = _corpus()


def test_ids_are_unique_and_fields_valid():
    assert len({q.id for q in QUESTIONS}) == len(QUESTIONS)
    for q in QUESTIONS:
        assert q.split in ("dev", "test"), q.id
        assert q.persona in ("member", "committee", "evaluator"), q.id
        assert q.lang in ("en", "bg"), q.id
        if q.lang == "bg":
            assert re.search("[А-Яа-я]", q.question), f"{q.id}: a Bulgarian question without Cyrillic"


def test_counts_the_issue_asks_for():
    n = Counter()
    for q in QUESTIONS:
        n["all"] += 1
        n["unanswerable"] += not q.answerable
        n["bg"] += q.lang == "bg"
        n[q.persona] += 1
    assert n["all"] >= 80 and n["unanswerable"] >= 0.2 * n["all"] and n["bg"] >= 15
    assert min(n["member"], n["committee"], n["evaluator"]) > 0


@pytest.mark.parametrize("q", [q for q in QUESTIONS if q.answerable], ids=lambda q: q.id)
def test_answerable_question_rests_on_the_corpus(q):
    assert q.key_facts and q.gold_sources and q.fact_ids, f"{q.id}: key facts, gold sources and fact ids are needed"
    for src in q.gold_sources:
        assert src.doc in HEADINGS, f"{q.id}: {src.doc} is not a corpus file"
        if src.section:
            assert src.section in HEADINGS[src.doc], f"{q.id}: no heading {src.section!r} in {src.doc}"
    for fid in q.fact_ids:
        assert fid in FACTS, f"{q.id}: fact {fid} is not marked in the corpus"
    # each key fact is stated where the question's facts are (the text before each fact's marker)
    stated = " ".join(FACTS[f][2] for f in q.fact_ids)
    for kf in q.key_facts:
        assert fact_present(stated, kf), f"{q.id}: key fact {kf!r} is not in the corpus text of {q.fact_ids}"
    # and every gold section holds one of the question's facts (the nearest heading above its marker)
    marked = {(FACTS[f][0], FACTS[f][1]) for f in q.fact_ids}
    for src in q.gold_sources:
        if src.section:
            assert (src.doc, src.section) in marked, f"{q.id}: {src} holds none of {q.fact_ids}"


def test_unanswerable_questions_carry_no_answer():
    for q in QUESTIONS:
        if not q.answerable:
            assert not q.key_facts and not q.gold_sources and not q.fact_ids, q.id
