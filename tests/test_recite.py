"""evals.recite: the citation check run again over an earlier run's drafts (real corpus index and embedder)."""

from __future__ import annotations

import pytest

from evals.datasets import load_dataset
from evals.recite import gate_passed, recite
from evals.runner import DEFAULT_DATASET


def record(qid: str, draft: str, gate: float, threshold: float = 0.5) -> dict:
    return {"id": qid, "answer": {"draft": draft, "signals": {"gate": gate, "threshold": threshold}}}


@pytest.mark.parametrize("draft, gate, passed", [
    ("The Management Board decides. [1]", 0.9, True),
    ("The Management Board decides. [1]", 0.2, False),  # the run's gate refused it
    ("NOT_FOUND", 0.9, False),
    ("The amount is not stated in the passages.", 0.9, False),  # declined in words
    ("", 0.9, False),
])
def test_only_drafts_the_runs_gate_let_through_are_recited(draft, gate, passed):
    assert gate_passed(record("x", draft, gate)["answer"]) is passed


def test_recited_drafts_are_scored_like_the_report(corpus_index, embedder):
    from assistant.answer import Assistant

    settings, store = corpus_index
    bot = Assistant(settings, store=store, embedder=embedder)  # no language model is loaded
    questions = {q.id: q for q in load_dataset(DEFAULT_DATASET)}
    q = questions["g002"]  # who decides on a membership application, and how long it takes (cskc-membership.md)
    out = recite([
        record("g002", "The Management Board decides on a written application within one month. "
                       "This is stated in passage [1].", gate=0.9),
        record("g003", "This is stated in passage [2].", gate=0.9),  # says nothing: emptied, no precision
        record("g005", "The General Assembly sets it. [1]", gate=0.1),  # refused by the run's gate: skipped
    ], questions, bot.passages_for, bot._embed_sentences)
    assert set(out["questions"]) == {"g002", "g003"} and out["answers"] == 1
    kept = out["questions"]["g002"]
    assert kept["kept"] and "Management Board" in kept["text"] and "stated in passage" not in kept["text"]
    assert any("says nothing" in r for r in kept["removed"])
    assert kept["citation_precision"] == 1.0, (q.gold_sources, kept)
    assert out["questions"]["g003"]["citation_precision"] is None and not out["questions"]["g003"]["kept"]
    assert out["citation_precision"] == (1.0, 1) and out["by_lang"]["en"] == (1.0, 1)
