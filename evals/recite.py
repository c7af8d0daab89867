"""Run the citation check again over the drafts of an earlier evaluation run, with no language model.

    python -m evals.recite RUN_FOLDER [--dataset FILE]

A change to ``assistant/cite.py`` (which sentence cites which passage, what is removed) can be measured in
seconds this way instead of a full answer run: each question's passages are retrieved again (deterministic),
the run's draft goes through ``assign_citations`` as it is now, and citation precision is scored as the report
scores it. Only the questions the run's gate let through are re-cited (the run's own gate score and threshold,
from its records), so the figures are comparable with that run's report. Use it on the development split to
choose a change; a test-split run is for reporting, never for tuning.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

from assistant.cite import assign_citations
from assistant.prompts import says_not_found

from . import metrics as M
from .baselines import chunk_pages
from .datasets import DEFAULT_DATASET, GoldQuestion, load_dataset
from .runner import cited_passage


def gate_passed(answer: dict) -> bool:
    """Did the run's gate let this draft through? (Its score and threshold are in the record's signals.)"""
    sig = answer.get("signals") or {}
    return not says_not_found(answer.get("draft") or "") and "gate" in sig and sig["gate"] >= sig.get("threshold", 0.0)


def recite(records: Iterable[dict], questions: dict[str, GoldQuestion], passages_for: Callable[[str], Sequence],
           embed: Callable, pages: dict | None = None) -> dict:
    """Citation precision of the drafts re-cited now, overall and by language, with each question's result
    (``pages``: chunk id -> page range, as the report uses it for merged passages of paged documents)."""
    per: dict[str, dict] = {}
    for rec in records:
        q = questions.get(rec["id"])
        if q is None or not gate_passed(rec["answer"]):
            continue
        passages = passages_for(q.question)
        text, citations, checks = assign_citations(rec["answer"]["draft"], passages, q.question, embed,
                                                   cut_off=rec["answer"].get("draft_cut_off", False))
        refs = [M.Ref.of(p, pages) for p in (cited_passage(c, passages) for c in citations) if p is not None]
        per[q.id] = {"lang": q.lang, "text": text, "kept": bool(text),
                     "citation_precision": M.citation_precision(refs, q.gold_sources, q.fact_ids) if text else None,
                     "removed": [f"{c.sentence} ({c.problem})" for c in checks if c.problem]}

    def mean(lang: str | None) -> tuple[float | None, int]:
        xs = [r["citation_precision"] for r in per.values()
              if r["citation_precision"] is not None and (lang is None or r["lang"] == lang)]
        return (sum(xs) / len(xs) if xs else None), len(xs)

    return {"answers": sum(r["kept"] for r in per.values()), "citation_precision": mean(None),
            "by_lang": {lang: mean(lang) for lang in sorted({r["lang"] for r in per.values()})}, "questions": per}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="an evaluation output folder (with records.jsonl)")
    ap.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    args = ap.parse_args()
    path = args.run / "records.jsonl"
    if not path.is_file():
        ap.error(f"{path}: no such file (give the --out folder of a `sofia-qa eval` run with answers)")
    from assistant.answer import Assistant

    records = [json.loads(line)["record"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    questions = {q.id: q for q in load_dataset(args.dataset)}
    bot = Assistant()
    out = recite(records, questions, bot.passages_for, bot._embed_sentences, chunk_pages(bot.store))
    before = {r["id"]: r["answer"] for r in records}
    for qid, r in out["questions"].items():
        old = before[qid]
        old_cp = None if old.get("refused") else (old.get("scores") or {}).get("citation_precision")
        if old.get("text") != r["text"] and (r["text"] or not old.get("refused")):
            print(f"{qid}: citation precision {old_cp} -> {r['citation_precision']}\n  now: {r['text'] or '(refused)'}")
    cp, n = out["citation_precision"]
    langs = ", ".join(f"{k} {v:.3f} (n = {m})" for k, (v, m) in out["by_lang"].items() if v is not None)
    print(f"{out['answers']} answers; citation precision {cp:.3f} (n = {n}; {langs})" if cp is not None
          else f"{out['answers']} answers; no citation to score")
    return 0


if __name__ == "__main__":
    sys.exit(main())
