"""``sofia-qa eval``: run the evaluation and write report.json / report.md / report.html."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_OUT = Path("reports/eval")


def register(subparsers, common) -> None:
    from .baselines import SYSTEMS
    from .runner import DEFAULT_DATASET

    p = subparsers.add_parser("eval", help="evaluate retrieval and answers against a gold dataset")
    p.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                   help="gold .jsonl or sec-10-q style .csv (default: %(default)s)")
    p.add_argument("--corpus", type=Path, help="index this folder into its own collection under --out first")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (default: %(default)s)")
    p.add_argument("--limit", type=int, help="at most N questions, spread evenly over the dataset")
    p.add_argument("--retrieval-only", action="store_true", help="score retrieval only (no language model)")
    p.add_argument("--split", choices=("dev", "test", "all"), default=None, help="default: test")
    p.add_argument("--lang", choices=("en", "bg"), help="only the questions in this language")
    p.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated (default: %(default)s)")
    p.add_argument("--fast", action="store_true", help="the fast subset defined in evals/thresholds.toml")
    p.add_argument("--check", action="store_true", help="exit 1 when a metric is below evals/thresholds.toml")
    p.add_argument("--resume", action="store_true",
                   help="reuse the questions already scored in --out by the same code and settings")
    p.add_argument("--budget-minutes", type=float,
                   help="stop asking new questions after this long; the report says how many are left")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--progress", action="store_true", help="show progress bars even when not on a terminal")
    common(p)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args) -> int:
    from ingestion.config import Settings

    from .runner import gate_failures, load_thresholds, run_eval

    thresholds = load_thresholds()
    split, limit, retrieval_only = args.split, args.limit, args.retrieval_only
    if args.fast:
        fast = thresholds.get("fast", {})
        split = split or fast.get("split")
        limit = limit or fast.get("limit")
        retrieval_only = retrieval_only or bool(fast.get("retrieval_only", False))
    if limit is not None and limit < 1:
        raise ValueError("--limit must be at least 1")
    settings = Settings.from_env(db=args.db, chroma_url=args.chroma_url, collection=args.collection,
                                 embed_model=args.embed_model)
    result = run_eval(args.dataset, corpus_dir=args.corpus, out_dir=args.out, limit=limit,
                      retrieval_only=retrieval_only, split=split or "test",
                      systems=[s.strip() for s in args.systems.split(",") if s.strip()],
                      settings=settings, progress=args.progress or sys.stderr.isatty(), resume=args.resume,
                      budget_seconds=None if args.budget_minutes is None else args.budget_minutes * 60,
                      lang=args.lang)
    failures = gate_failures(result, thresholds.get("gate", {})) if args.check else []
    if args.json:
        print(json.dumps({"meta": result["meta"], "summary": result["summary"], "gate_failures": failures},
                         ensure_ascii=False, indent=2, default=str))
    else:
        ours = result["summary"]["retrieval"].get(result["meta"]["ours"], {})
        print(f"{result['meta']['questions']} questions ({result['meta']['dataset']}, split {result['meta']['split']}); "
              f"hybrid doc hit@5 {ours.get('doc_hit@5')}; reports: {', '.join(result['meta']['files'])}")
        if result["meta"].get("partial"):
            part = result["meta"]["partial"]
            print(f"  partial: {part['scored']} of {part['of']} questions scored; run again with --resume to go on")
        for f in failures:
            print(f"  below threshold: {f}")
    return 1 if failures else 0


if __name__ == "__main__":  # standalone: python -m evals.cli eval ...
    parser = argparse.ArgumentParser(prog="sofia-qa")
    sub = parser.add_subparsers(dest="command", required=True)

    def _common(p):
        p.add_argument("--db", type=Path)
        p.add_argument("--chroma-url")
        p.add_argument("--collection")
        p.add_argument("--embed-model")

    register(sub, _common)
    a = parser.parse_args()
    sys.exit(a.func(a))
