"""CI gate: the fast evaluation subset against the thresholds in evals/thresholds.toml.

Retrieval is gated on the whole test split (cheap, no model). A failure prints the questions that
missed and why. Answer metrics are measured by the full run (`sofia-qa eval`), not gated here:
one answer takes several seconds on this CPU.
"""

from __future__ import annotations

from evals.runner import DEFAULT_DATASET, gate_failures, load_thresholds, run_eval


def test_retrieval_meets_the_thresholds(corpus_index, tmp_path):
    settings, _ = corpus_index
    result = run_eval(DEFAULT_DATASET, out_dir=tmp_path / "report", retrieval_only=True, split="test",
                      systems=["bm25", "dense", "hybrid"], settings=settings, progress=False)
    failures = gate_failures(result, load_thresholds()["gate"])
    missed = [f"{q['id']}: {q['question']}" for q in result["questions"]
              if q.get("answerable") and not (q.get("retrieval", {}).get("hybrid", {}) or {}).get("doc_hit@5", 1)]
    assert not failures, "below threshold: " + "; ".join(failures) + "\nmissed at 5:\n" + "\n".join(missed)
    ours = result["summary"]["retrieval"]["hybrid"]
    for baseline in ("bm25", "dense"):
        assert ours["doc_ndcg@10"] >= result["summary"]["retrieval"][baseline]["doc_ndcg@10"], baseline
    assert (tmp_path / "report" / "report.html").exists()
