"""Saved prompt beginnings: the wait for the first word with and without them, side by side in one run.

    python benchmarks/bench_prefix.py [--questions 24] [--out reports/prefix-bench.json]

Two assistants over the same index and the same model file, each with its own llama.cpp context: one reads every
prompt as before (only the live context's shared beginning is reused), the other also restores the state saved
after the first passage (``assistant/prefix_cache.py``; the folder ``sofia-qa warm`` fills, warmed here first if
needed). They answer the same development questions, alternating question by question so machine load hits
both alike. Printed: first-token and answer-time medians, their ratios, how many answers restored a state, and
how many answers came out word for word the same (the prompt is read in two steps when a state is kept, which
may move the model's arithmetic in the last digits).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=24, help="development questions to ask (spread evenly)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "prefix-bench.json")
    args = ap.parse_args()

    from assistant.answer import Assistant
    from assistant.llm import bundled_model_path
    from assistant.llm.llamacpp import LlamaCppLLM, prefix_cache_for
    from evals.datasets import load_dataset
    from ingestion.config import Settings

    s = Settings.from_env()
    path = Path(s.model_path) if s.model_path else bundled_model_path(s.model_cache)
    plain_llm = LlamaCppLLM(path, n_ctx=s.n_ctx, n_threads=s.threads)
    kept_llm = LlamaCppLLM(path, n_ctx=s.n_ctx, n_threads=s.threads,
                           prefix_cache=prefix_cache_for(path, s.model_cache, s.prefix_cache_mb or 2048))
    plain = Assistant(s, llm=plain_llm)
    kept = Assistant(s, store=plain.store, embedder=plain.embedder, llm=kept_llm)
    t = time.perf_counter()
    warmed = kept.warm()
    print(f"states: {warmed['states']} ({warmed['read']} chunks read now, {time.perf_counter() - t:.0f} s)")

    questions = load_dataset(ROOT / "evals" / "datasets" / "sofia_gold.jsonl", "dev")
    step = max(1, len(questions) // args.questions)
    questions = questions[::step][: args.questions]
    rows = []
    for i, q in enumerate(questions):
        order = (("plain", plain), ("kept", kept)) if i % 2 == 0 else (("kept", kept), ("plain", plain))
        row = {"id": q.id}
        for name, bot in order:
            before = kept_llm.prefix_stats["restored"]
            a = bot.ask(q.question)
            row[name] = {"first_token": a.timings.get("first_token"), "total": a.timings["total"], "text": a.text,
                         "refused": a.refused}
            if name == "kept":
                row["restored"] = kept_llm.prefix_stats["restored"] > before
        rows.append(row)
        print(f"{q.id}: first word {row['plain']['first_token']:.2f} s -> {row['kept']['first_token']:.2f} s"
              f"{'' if row['restored'] else ' (no saved state)'}", flush=True)

    def med(name, key):
        return statistics.median(r[name][key] for r in rows if r[name][key] is not None)

    summary = {
        "questions": len(rows),
        "restored": sum(r["restored"] for r in rows),
        "same_text": sum(r["plain"]["text"] == r["kept"]["text"] for r in rows),
        "same_decision": sum(r["plain"]["refused"] == r["kept"]["refused"] for r in rows),
        "first_token_p50": {"plain": med("plain", "first_token"), "kept": med("kept", "first_token")},
        "answer_p50": {"plain": med("plain", "total"), "kept": med("kept", "total")},
    }
    ft, tot = summary["first_token_p50"], summary["answer_p50"]
    print(f"\n{len(rows)} development questions; a saved state restored for {summary['restored']}")
    print(f"first word p50: {ft['plain']:.2f} s -> {ft['kept']:.2f} s (ratio {ft['kept'] / ft['plain']:.2f})")
    print(f"answer p50:     {tot['plain']:.2f} s -> {tot['kept']:.2f} s (ratio {tot['kept'] / tot['plain']:.2f})")
    print(f"same answer text {summary['same_text']} of {len(rows)}, same answer-or-refuse {summary['same_decision']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
