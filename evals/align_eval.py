"""``sofia-qa eval --task align``: every gold proposal through ``assistant.align.align`` with the real embedder and
retriever, scored by ``align_metrics`` and written to ``reports/align/report.{json,md,html}``."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .align_gold import ALIGN_GOLD, LANGS, AlignCase, load_align_gold
from .align_metrics import case_failures, per_priority, summary

DEFAULT_ALIGN_OUT = Path("reports/align")


@dataclass
class AlignEvalResult:
    meta: dict
    summary: dict  # "all" / language -> rates and counts (align_metrics.summary)
    priorities: dict  # priority id -> "all" / language -> rates and counts
    cases: list[dict]  # per proposal: expected, got, scores, pass, failures
    files: list[str]

    def to_json(self) -> dict:
        return {"meta": self.meta, "summary": self.summary, "per_priority": self.priorities, "cases": self.cases}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def score_cases(cases: list[AlignCase], retriever, embedder, priorities) -> tuple[dict, dict, dict]:
    """Run ``align`` on each case: (case id -> levels, case id -> scores, case id -> evidence sentence)."""
    from assistant.align import align

    got, scores, evidence = {}, {}, {}
    for case in cases:
        rep = align(case.text, retriever, embedder, source=case.id, priorities=priorities)
        got[case.id] = {r.priority_id: r.alignment for r in rep.rows}
        scores[case.id] = {r.priority_id: round(r.score, 3) for r in rep.rows}
        evidence[case.id] = {r.priority_id: r.sentence for r in rep.rows}
    return got, scores, evidence


def evaluate(cases: list[AlignCase], got: dict, scores: dict, evidence: dict, priority_ids: list[str],
             meta: dict) -> AlignEvalResult:
    """The result document from the levels already computed (pure: no model, no files)."""
    rows = []
    for c in cases:
        fails = case_failures(c, got[c.id])
        rows.append({"id": c.id, "lang": c.lang, "kind": c.kind, "length": c.length, "split": c.split,
                     "text": c.text, "expected": {p: c.expected(p) for p in priority_ids if c.expected(p)},
                     "got": got[c.id], "scores": scores[c.id],
                     "evidence": {p: evidence[c.id][p] for p in (*c.must_strong, *c.must_partial)
                                  if p in evidence[c.id]},
                     "pass": not fails, "failures": fails})
    return AlignEvalResult(meta=meta, summary=summary(cases, got, LANGS),
                           priorities=per_priority(cases, got, priority_ids, LANGS), cases=rows, files=[])


def run_align_eval(*, dataset: Path = ALIGN_GOLD, split: str = "dev", lang: str | None = None,
                   out_dir: Path = DEFAULT_ALIGN_OUT, settings=None) -> AlignEvalResult:
    """Score the gold proposals of ``split`` and write the three reports into ``out_dir``."""
    from assistant.align import PARTIAL_Z, STRONG_Z, load_priorities
    from assistant.retrieve import Retriever
    from ingestion.config import Settings
    from ingestion.embedding import load_embedder
    from ingestion.store import Store

    from .align_report import write_align_reports

    s = settings or Settings.from_env()
    priorities = load_priorities(s.priorities_file)
    ids = [p.id for p in priorities]
    cases = load_align_gold(dataset, split=split, lang=lang, priority_ids=ids)
    if not cases:
        raise ValueError(f"{dataset}: no proposals in split {split!r}" + (f" and language {lang!r}" if lang else ""))
    t0 = time.perf_counter()
    embedder = load_embedder(s.embed_model, s.threads, s.embed_worker)
    retriever = Retriever(Store.open(s, embedder.name), embedder, s)
    got, scores, evidence = score_cases(cases, retriever, embedder, priorities)
    meta = {"dataset": str(dataset), "split": split, "lang": lang or "all", "proposals": len(cases),
            "priorities_file": priorities.path, "priorities": ids, "embed_model": embedder.name,
            "thresholds": {"strong": STRONG_Z, "partial": PARTIAL_Z}, "commit": _commit(),
            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.perf_counter() - t0, 1)}
    result = evaluate(cases, got, scores, evidence, ids, meta)
    result.files = [str(p) for p in write_align_reports(result.to_json(), out_dir)]
    return result


def print_summary(result: AlignEvalResult, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"meta": result.meta, "summary": result.summary}, ensure_ascii=False, indent=2))
        return
    m = result.meta
    print(f"{m['proposals']} proposals (split {m['split']}); reports: {', '.join(result.files)}")
    for lang, s in result.summary.items():
        print(f"  {lang}: strong recall {_f(s['strong_recall'])} ({s['strong_hit']}/{s['must_strong']}), "
              f"partial recall {_f(s['partial_recall'])}, strong precision {_f(s['strong_precision'])}, "
              f"false strong {_f(s['false_strong_rate'])} ({s['false_strong']}/{s['must_none']}), "
              f"passed {s['passed']}/{s['proposals']}")


def _f(v) -> str:
    return "–" if v is None else f"{v:.3f}"
