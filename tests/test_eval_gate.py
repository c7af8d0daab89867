"""CI gate: the fast evaluation subset against the thresholds in evals/thresholds.toml.

Retrieval is gated on the whole test split (cheap, no model). A failure prints the questions that
missed and why. Answer metrics are measured by the full run (`sofia-qa eval`), not gated here:
one answer takes several seconds on this CPU.
"""

from __future__ import annotations

from evals.runner import DEFAULT_DATASET, EvalConfig, gate_failures, load_thresholds, run_eval


def test_retrieval_meets_the_thresholds(corpus_index, tmp_path):
    settings, _ = corpus_index
    config = EvalConfig(DEFAULT_DATASET, out_dir=tmp_path / "report", retrieval_only=True, split="test",
                        systems=("bm25", "dense", "hybrid"), progress=False)
    result = run_eval(config, settings=settings)
    failures = gate_failures(result.summary, load_thresholds()["gate"])
    missed = [f"{q['id']}: {q['question']}" for q in result.questions
              if q["retrieval"]["hybrid"]["scores"].get("doc_hit@5") == 0.0]
    assert not failures, "below threshold: " + "; ".join(failures) + "\nmissed at 5:\n" + "\n".join(missed)
    ours = result.summary.retrieval["hybrid"]
    for baseline in ("bm25", "dense"):
        assert ours["doc_ndcg@10"] >= result.summary.retrieval[baseline]["doc_ndcg@10"], baseline
    assert (tmp_path / "report" / "report.html").exists()
