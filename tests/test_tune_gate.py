"""The gate-fitting dev tools in scripts/ (tune_gate, strict_wordings) on synthetic rows: no model is loaded."""

from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))  # scripts/ is not a package

import strict_wordings  # noqa: E402
import tune_gate  # noqa: E402


def test_gate_fit_uses_only_the_chosen_signals_and_keeps_the_refusal_floor():
    """tune_gate.fit on rows where one signal separates right from wrong drafts: the fitted gate reads only the
    signals asked for, weighs that one against answering, and its leave-one-out threshold refuses enough."""
    rng = random.Random(1)
    rows = []
    for i in range(60):
        answerable, right = i % 3 != 0, i % 3 == 1
        nf = rng.uniform(0.0, 0.4) if right else rng.uniform(0.5, 1.0)
        rows.append({"id": str(i), "answerable": answerable, "draft": "An answer [1].", "final_ok": right,
                     "signals": {"p_not_found": nf, "min_logprob": -rng.random(), "top_dense": rng.random()}})
    gate, o = tune_gate.fit(rows, min_refusal=0.85, features=("p_not_found", "top_dense"))
    assert set(gate.weights) == {"p_not_found", "top_dense"} and gate.weights["p_not_found"] < 0
    assert o["refusal_accuracy"] >= 0.85 and o["answered_correctly"] > 0.25
    assert tune_gate.outcome([1.0] * len(rows), rows, 0.5)["refusal_accuracy"] == 0.0  # an open gate refuses nothing


def test_a_fitted_gate_carries_its_provenance():
    rows = [{"answerable": True, "draft": "A [1].", "final_ok": i % 2 == 0,
             "signals": {"p_not_found": 0.1 if i % 2 == 0 else 0.9, "min_logprob": -1.0, "top_dense": 0.8}}
            for i in range(20)]
    from assistant import prompts

    gate, _ = tune_gate.fit(rows, 0.9, passages=3, provenance={"model": "m.gguf", "embedder": "e", "dataset": "d",
                                                               "commit": "abc"})
    assert gate.provenance["prompts"] == prompts.fingerprint() and gate.provenance["split"] == "dev"
    assert gate.provenance["questions"] == 20 and gate.provenance["passages"] == 3
    assert gate.provenance["model"] == "m.gguf" and gate.provenance["date"]


def test_a_draft_the_citation_check_emptied_counts_as_refused_in_the_fit():
    rows = [{"answerable": False, "draft": "It costs EUR 100,000 [1].", "refused": True, "final_ok": False},
            {"answerable": True, "draft": "It costs EUR 8,250 [1].", "refused": False, "final_ok": True}]
    o = tune_gate.outcome([0.9, 0.9], rows, 0.5)  # the gate lets both through; the check had emptied the first
    assert o["refusal_accuracy"] == 1.0 and o["answered_wrongly"] == 0.0 and o["answered_correctly"] == 0.5


def test_strict_wording_study_scores_a_separating_signal_above_a_random_one():
    """strict_wordings.half_splits on rows where one signal separates right from wrong drafts and another is
    noise: the separating one answers more correctly and wrongly less, at the refusal floor."""
    rng = random.Random(2)
    rows = []
    for i in range(80):
        answerable, right = i % 3 != 0, i % 3 == 1
        rows.append({"answerable": answerable, "draft": "An answer [1].", "refused": False, "final_ok": right,
                     "signals": {"good": rng.uniform(0, 0.4) if right else rng.uniform(0.5, 1.0), "noise": rng.random()}})
    ok_good, wrong_good, refused_good = strict_wordings.half_splits(rows, ("good",), 0.85, seeds=40)
    ok_noise, wrong_noise, _ = strict_wordings.half_splits(rows, ("noise",), 0.85, seeds=40)
    assert ok_good > ok_noise + 0.1 and wrong_good <= wrong_noise and refused_good >= 0.8
