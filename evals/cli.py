"""``sofia-qa eval``: run the evaluation and write report.json / report.md / report.html."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import get_args

from assistant.cli_options import add_common_options, settings_from

from .datasets import SplitChoice
from .schema import EvalConfig

DEFAULT_OUT = EvalConfig.out_dir
LANGS = ("en", "bg")  # the languages of the gold set's questions


def register(subparsers, common=add_common_options) -> None:
    from .baselines import SYSTEMS
    from .datasets import DEFAULT_DATASET

    p = subparsers.add_parser("eval", help="evaluate retrieval and answers against a gold dataset")
    p.add_argument("--task", choices=("qa", "align"), default="qa",
                   help="qa: questions and answers (default); align: proposals vs the Sofia RIS3 priorities "
                        "(evals/datasets/align_gold.jsonl -> reports/align)")
    p.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                   help="gold .jsonl or sec-10-q style .csv (default: %(default)s)")
    p.add_argument("--corpus", type=Path, help="index this folder into its own collection under --out first")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="report folder (default: %(default)s)")
    p.add_argument("--limit", type=int, help="at most N questions, spread evenly over the dataset")
    p.add_argument("--retrieval-only", action="store_true", help="score retrieval only (no language model)")
    p.add_argument("--split", choices=get_args(SplitChoice), default=None, help="default: test")
    p.add_argument("--lang", choices=LANGS, help="only the questions in this language")
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
    from .runner import gate_failures, load_thresholds, run_eval

    if getattr(args, "task", "qa") == "align":
        return cmd_eval_align(args)
    thresholds = load_thresholds()
    split, limit, retrieval_only = args.split, args.limit, args.retrieval_only
    if args.fast:
        fast = thresholds.get("fast", {})
        split = split or fast.get("split")
        limit = limit or fast.get("limit")
        retrieval_only = retrieval_only or bool(fast.get("retrieval_only", False))
    if limit is not None and limit < 1:
        raise ValueError("--limit must be at least 1")
    config = EvalConfig(dataset=args.dataset, corpus_dir=args.corpus, out_dir=args.out, limit=limit,
                        retrieval_only=retrieval_only, split=split or "test", lang=args.lang,
                        systems=tuple(s.strip() for s in args.systems.split(",") if s.strip()),
                        progress=args.progress or sys.stderr.isatty(), resume=args.resume,
                        budget_seconds=None if args.budget_minutes is None else args.budget_minutes * 60)
    result = run_eval(config, settings=settings_from(args))
    meta = result.meta
    failures = gate_failures(result.summary, thresholds.get("gate", {})) if args.check else []
    if args.json:
        print(json.dumps({"meta": meta.to_json(), "summary": result.summary.to_json(), "gate_failures": failures},
                         ensure_ascii=False, indent=2, default=str))
    else:
        ours = result.summary.retrieval.get(meta.ours, {})
        print(f"{meta.questions} questions ({meta.dataset}, split {meta.split}); "
              f"hybrid doc hit@5 {ours.get('doc_hit@5')}; reports: {', '.join(meta.files or [])}")
        if meta.partial:
            print(f"  partial: {meta.partial.scored} of {meta.partial.of} questions scored; "
                  f"run again with --resume to go on")
        for f in failures:
            print(f"  below threshold: {f}")
    return 1 if failures else 0


def cmd_eval_align(args) -> int:
    from .align_eval import DEFAULT_ALIGN_OUT, print_summary, run_align_eval
    from .align_gold import ALIGN_GOLD
    from .datasets import DEFAULT_DATASET

    result = run_align_eval(dataset=ALIGN_GOLD if args.dataset == DEFAULT_DATASET else args.dataset,
                            split=args.split or "test", lang=args.lang,
                            out_dir=DEFAULT_ALIGN_OUT if args.out == DEFAULT_OUT else args.out,
                            settings=settings_from(args))
    print_summary(result, args.json)
    return 0


if __name__ == "__main__":  # standalone: python -m evals.cli eval ...
    parser = argparse.ArgumentParser(prog="sofia-qa")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    a = parser.parse_args()
    sys.exit(a.func(a))
