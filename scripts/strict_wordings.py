"""A one-off study: compare wordings of the gate's strict instruction on the DEVELOPMENT split (never the test split).

    python scripts/strict_wordings.py [--cache reports/gate-dev-signals.jsonl] [--limit N] [--out FILE]

For each development question cached by ``python scripts/tune_gate.py`` (its draft, the citation check's verdict and
the other gate signals), P(first reply token = NOT_FOUND) is read under each wording below, over the same passages
(they are read once; each further wording costs only its own tokens, the prefix being cached). Printed per wording:
the area under the curve for "the draft is correct" on its own, and the gate refitted with it in place of
``p_not_found``, scored over 200 random half splits (fitted and thresholded on one half, scored on the other).
This is how the wording in ``assistant/prompts.py`` was chosen (docs/PERFORMANCE-HISTORY.md, "The strict
prompt's wording").
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import numpy as np

from assistant import prompts
from assistant.gate import FEATURES
from evals.datasets import DEFAULT_DATASET, load_dataset
from tune_gate import final_ok, outcome, pick_threshold  # beside this file in scripts/

WORDINGS = {
    "state": "Instruction: do the passages above state the answer to the question? If they do not, reply only "
             "NOT_FOUND. If they do, reply with the answer.",
    "combine": "Instruction: can the question be answered from the passages above, directly or by combining them? "
               "If it cannot, reply only NOT_FOUND. If it can, reply with the answer.",
    "needed": "Instruction: answer the question from the passages above. If the passages do not contain the "
              "information needed, reply only NOT_FOUND.",
    "facts": "Instruction: if the passages above contain the facts needed to answer the question, reply with the "
             "answer; otherwise reply only NOT_FOUND.",
    "asks-for": "Instruction: if the passages above do not say what the question asks for, reply only NOT_FOUND. "
                "Otherwise reply with the answer.",
    # for questions that first describe the asker ("We are a consultancy in Vienna. Would CSKC accept ...?")
    "situation": "Instruction: answer the question from the passages above. The question may describe the asker's "
                 "own situation, which the passages need not mention. If the passages do not contain the information "
                 "needed, reply only NOT_FOUND.",
    "any-part": "Instruction: answer the question from the passages above. Reply only NOT_FOUND if the passages "
                "contain nothing that answers any part of it.",
}


def read_probabilities(questions, out: Path) -> dict[str, dict[str, float]]:
    """P(NOT_FOUND) per question and wording; kept in ``out`` so an interrupted run goes on where it stopped."""
    from tqdm import tqdm

    from assistant.answer import Assistant
    from assistant.gate import Gate

    done = {r["id"]: r for r in map(json.loads, out.read_text().splitlines())} if out.exists() else {}
    todo = [q for q in questions if q.id not in done or any(w not in done[q.id] for w in WORDINGS)]
    if todo:
        bot = Assistant(gate=Gate(weights={}, bias=50.0, threshold=0.0))
        with out.open("a") as fh:
            for q in tqdm(todo, desc="dev questions", file=sys.stderr):
                passages = bot.passages_for(q.question)
                row = dict(done.get(q.id, {"id": q.id}))
                for name, wording in WORDINGS.items():
                    if name in row:  # read before: only the new wordings are asked
                        continue
                    row[name] = bot.llm.next_token_probs(prompts.messages(passages, q.question, wording),
                                                         [prompts.NOT_FOUND])[prompts.NOT_FOUND]
                done[q.id] = row
                fh.write(json.dumps(row) + "\n")
                fh.flush()
    return done


def half_splits(rows: list[dict], features: tuple[str, ...], min_refusal: float, seeds: int = 200) -> tuple:
    """Mean (answered correctly, answered wrongly, unanswerable refused) over random half splits."""
    from sklearn.linear_model import LogisticRegression

    X = np.array([[r["signals"][f] for f in features] for r in rows])
    y = np.array([1 if r["final_ok"] else 0 for r in rows])
    scores = []
    for seed in range(seeds):
        idx = list(range(len(rows)))
        random.Random(seed).shuffle(idx)
        a, b = idx[: len(idx) // 2], idx[len(idx) // 2:]
        if len(set(y[a])) < 2:
            continue
        model = LogisticRegression().fit(X[a], y[a])
        threshold, _ = pick_threshold(model.predict_proba(X[a])[:, 1], [rows[i] for i in a], min_refusal)
        o = outcome(model.predict_proba(X[b])[:, 1], [rows[i] for i in b], threshold)
        scores.append((o["answered_correctly"], o["answered_wrongly"], o["refusal_accuracy"]))
    return tuple(np.mean(scores, axis=0)) if scores else (float("nan"),) * 3


def main() -> int:
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--cache", type=Path, default=Path("reports/gate-dev-signals.jsonl"),
                    help="development rows written by python scripts/tune_gate.py")
    ap.add_argument("--out", type=Path, default=Path("reports/strict-wordings.jsonl"))
    ap.add_argument("--limit", type=int)
    ap.add_argument("--min-refusal", type=float, default=0.9)
    args = ap.parse_args()
    if not args.cache.exists():
        ap.error(f"--cache {args.cache} does not exist: run `python scripts/tune_gate.py` first")
    questions = {q.id: q for q in load_dataset(args.dataset, split="dev")}
    rows = [r for r in {r["id"]: r for r in map(json.loads, args.cache.read_text().splitlines())}.values()
            if r["id"] in questions][: args.limit]
    probs = read_probabilities([questions[r["id"]] for r in rows], args.out)
    for r in rows:
        r["final_ok"] = final_ok(r, questions[r["id"]].key_facts)
    y = [1 if r["final_ok"] else 0 for r in rows]
    print(f"{len(rows)} development questions, {sum(y)} correct drafts")
    print(f"{'wording':10} {'AUC':>6} {'correct':>8} {'wrong':>7} {'refused (unanswerable)':>23}")
    for name in WORDINGS:
        variant = [dict(r, signals={**r["signals"], "p_not_found": probs[r["id"]][name]}) for r in rows]
        auc = roc_auc_score(y, [-probs[r["id"]][name] for r in rows]) if 0 < sum(y) < len(y) else float("nan")
        ok, wrong, refused = half_splits(variant, FEATURES, args.min_refusal)
        mark = "  (in use)" if WORDINGS[name] == prompts.STRICT else ""
        print(f"{name:10} {auc:6.3f} {ok:8.3f} {wrong:7.3f} {refused:23.3f}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
