"""The gold set is checked against the corpus it was written from (evals/datasets/README.md, Validation).

A question whose key fact the corpus never states, or whose gold section is not a heading of its document, would
make every figure of the evaluation wrong without any test failing; these checks catch that when questions are added.
"""

from __future__ import annotations

import re
from collections import Counter

import pytest

from conftest import CORPUS
from evals.datasets import load_dataset
from evals.metrics import fact_present
from evals.runner import DEFAULT_DATASET
from ingestion.readers import read_document

QUESTIONS = load_dataset(DEFAULT_DATASET)


def _corpus() -> tuple[dict[str, set[str]], dict[str, tuple[str, str, str]]]:
    """Headings of each corpus file as the project's reader sees them, and for each fact id: (file, heading of the
    section it stands in, the text that states it: everything since the previous fact or the section's start)."""
    headings: dict[str, set[str]] = {}
    facts: dict[str, tuple[str, str, str]] = {}
    for path in sorted(CORPUS.glob("*.md")):
        doc = read_document(path)
        headings[doc.doc_id] = {s.heading_path[-1] for s in doc.sections if s.heading_path}
        previous = 0
        for offset, fid in sorted(doc.fact_ids.items()):
            section = max((s for s in doc.sections if s.start <= offset), key=lambda s: s.start)
            facts[fid] = (doc.doc_id, section.heading_path[-1] if section.heading_path else "",
                          doc.text[max(previous, section.start):offset])
            previous = offset
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
