"""Choose the evidence rule and the "not in the documents" thresholds on the DEVELOPMENT split: a dev tool.

    python scripts/tune_outcomes.py RUN_FOLDER [--dataset FILE]

RUN_FOLDER is the --out folder of a `sofia-qa eval --split dev` run (its records.jsonl keeps each question's
draft, signals and whether the gate declined). No language model is loaded: each question's passages are retrieved
again (deterministic) and embedded, and

1. every evidence rule of the grid (draft weight, one or two sentences, second-sentence margin) is scored by the key-fact
   recall of its quotes over the answerable questions (all of them, and those the gate declined), with the mean
   length of what it quotes;
2. every (P(NOT_FOUND) minimum, dense-cosine maximum) pair is scored over the declined questions: unanswerable
   questions sent to "not in the documents", and answerable ones sent there although their shown passages hold at
   least half the key facts (false "not in the documents", over all answerable questions).

It prints both tables; the chosen constants go to ``assistant/evidence.py`` by hand, with the figures in
docs/PERFORMANCE-HISTORY.md. Never run it on the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from assistant import evidence as E
from assistant.prompts import says_not_found
from evals.datasets import DEFAULT_DATASET, load_dataset
from evals.metrics import key_fact_recall

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)
SHAPES = ((1, 0.0), (2, 0.0), (2, 0.02), (2, 0.05), (2, 0.1), (2, 1.0))  # (max sentences, second margin)
CHAR_LIMITS = (300, 400, 600, 800)  # the longest "sentence" that may be quoted (a table row run together is long)
P_GRID = tuple(round(i / 20, 2) for i in range(21))
HALF = 0.5  # shown passages "hold the answer" with at least half the key facts


def declined(answer: dict) -> bool:
    return bool(answer.get("refused"))


def prepare(records: list[dict], questions: dict, bot, evidence: bool = True, records_only: bool = False) -> list[dict]:
    """Per question: passages' sentences, their cosines with draft and question (``evidence``), signals, key facts."""
    rows = []
    by_id = {r["id"]: r for r in records}
    for q in questions.values():  # a question the run has not reached yet still measures question-only evidence
        a = (by_id.get(q.id) or {}).get("answer") or {}
        if (not evidence or records_only) and not a:
            continue
        passages = bot.passages_for(q.question)
        sentences = E.passage_sentences(passages, max(CHAR_LIMITS)) if evidence else []
        drafted = [] if says_not_found(a.get("draft") or "") else E.draft_sentences(a.get("draft") or "")
        vecs = bot.embedder.embed_passages(drafted + [s for _, s in sentences]) if sentences else np.zeros((0, 1))
        d_vec, s_vec = vecs[: len(drafted)], vecs[len(drafted):]
        q_vec = np.asarray(bot.embedder.embed_query(q.question)).reshape(-1)
        sig = a.get("signals") or {}
        rows.append({"id": q.id, "answerable": q.answerable, "recorded": bool(a), "key_facts": list(q.key_facts), "persona": q.persona,
                     "declined": declined(a), "sentences": sentences,
                     "draft_sims": d_vec @ s_vec.T if drafted and sentences else None,
                     "question_sims": s_vec @ q_vec if sentences else np.zeros(0),
                     "p_not_found": float(sig.get("p_not_found", 0.0)),
                     "top_dense": max((p.dense for p in passages), default=0.0),
                     "shown_recall": key_fact_recall(" ".join(p.text for p in passages), q.key_facts)})
    return rows


def evidence_table(rows: list[dict]) -> list[dict]:
    """Over the questions the run answered; plus the question-only rules over every answerable dev question."""
    out = []
    everyone = [r for r in rows if r["answerable"] and r["key_facts"] and r["sentences"]]  # with --records-only: run's
    for most, margin in SHAPES:
        quotes = [(" ".join(c.sentence for c in E.pick(
            [c for c in E.score_candidates(r["sentences"], None, r["question_sims"]) if len(c.sentence) <= E.MAX_CHARS],
            most, margin)), r["key_facts"]) for r in everyone]
        kfr = [key_fact_recall(quote, facts) or 0.0 for quote, facts in quotes]
        out.append({"draft_weight": "question only, every dev question", "max_sentences": most, "margin": margin,
                    "recall_answerable": round(float(np.mean(kfr)), 3), "n": len(kfr),
                    "mean_chars": round(float(np.mean([len(q) for q, _ in quotes])))})
    rows = [r for r in rows if r["recorded"]]
    for w, limit in ((w, limit) for w in WEIGHTS for limit in CHAR_LIMITS):
        for most, margin in SHAPES:
            rec_all, rec_declined, chars = [], [], []
            for r in rows:
                if not r["answerable"] or not r["key_facts"] or not r["sentences"]:
                    continue
                ranked = [c for c in E.score_candidates(r["sentences"], r["draft_sims"], r["question_sims"], w)
                          if len(c.sentence) <= limit]
                quote = " ".join(c.sentence for c in E.pick(ranked, most, margin))
                kfr = key_fact_recall(quote, r["key_facts"]) or 0.0
                rec_all.append(kfr)
                chars.append(len(quote))
                if r["declined"]:
                    rec_declined.append(kfr)
            out.append({"draft_weight": w, "max_chars": limit, "max_sentences": most, "margin": margin,
                        "recall_answerable": round(float(np.mean(rec_all)), 3), "n": len(rec_all),
                        "recall_declined": round(float(np.mean(rec_declined)), 3) if rec_declined else None,
                        "n_declined": len(rec_declined), "mean_chars": round(float(np.mean(chars)))})
    return out


def not_found_table(rows: list[dict]) -> list[dict]:
    rows = [r for r in rows if r["recorded"]]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    dense_grid = sorted({round(r["top_dense"], 3) for r in rows} | {0.0, 1.0})
    out = []
    for p_min in P_GRID:
        for d_max in dense_grid:
            nf = [r for r in rows if r["declined"] and E.nothing_close(r["p_not_found"], r["top_dense"], p_min, d_max)]
            false_nf = [r for r in nf if r["answerable"] and (r["shown_recall"] or 0.0) >= HALF]
            out.append({"p_min": p_min, "dense_max": d_max,
                        "unanswerable_not_found": round(sum(not r["answerable"] for r in nf) / max(1, len(unanswerable)), 3),
                        "answerable_not_found": sum(r["answerable"] for r in nf),
                        "false_not_found": len(false_nf), "false_not_found_rate": round(len(false_nf) / max(1, len(answerable)), 3)})
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="the --out folder of a `sofia-qa eval --split dev` run")
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    ap.add_argument("--json", type=Path, help="also write both tables to this file")
    ap.add_argument("--records-only", action="store_true", help="only the questions the run answered")
    ap.add_argument("--not-found-only", action="store_true", help="only the not-found table (no sentence embedding)")
    args = ap.parse_args()
    path = args.run / "records.jsonl"
    if not path.is_file():
        ap.error(f"{path}: no such file (give the --out folder of a `sofia-qa eval --split dev` run)")
    records = [json.loads(line)["record"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if any(r.get("split") not in ("dev", None, "") for r in records):
        ap.error(f"{path}: holds questions outside the development split; tune on dev only")
    questions = {q.id: q for q in load_dataset(args.dataset, split="dev")}
    from assistant.answer import Assistant

    bot = Assistant()  # the model is loaded lazily and never used here
    rows = prepare(records, questions, bot, evidence=not args.not_found_only, records_only=args.records_only)
    ev = [] if args.not_found_only else evidence_table(rows)
    nf = not_found_table(rows)
    done = [r for r in rows if r["recorded"]]
    print(f"{len(done)} dev questions in the run ({sum(r['answerable'] for r in done)} answerable, "
          f"{sum(r['declined'] for r in done)} declined by the gate) of {len(rows)}")
    print("evidence rules (key-fact recall of the quotes):")
    for e in sorted(ev, key=lambda e: (str(e["draft_weight"]), -e["recall_answerable"], e["mean_chars"])):
        print("  " + json.dumps(e))
    print("not-found rules with no false 'not in the documents', most unanswerable first:")
    safe = sorted((r for r in nf if r["false_not_found"] == 0),
                  key=lambda r: (-r["unanswerable_not_found"], -r["p_min"], r["dense_max"]))
    for r in safe[:15]:
        print("  " + json.dumps(r))
    if args.json:
        args.json.write_text(json.dumps({"evidence": ev, "not_found": nf}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
