"""The model in its own process against the model in the app's process: first word and answer time, side by side.

    python benchmarks/bench_worker.py [--questions 12] [--out reports/worker-bench.json]

Two assistants over the same index and model file: one runs llama.cpp in this process (``LlamaCppLLM``, how answers
were made before the worker), the other in a supervised child process (``WorkerLLM``, the default). Each keeps saved
prompt beginnings in a fresh folder of its own, so both start cold and save alike. They answer the same development
questions, alternating which goes first, so machine load hits both alike. Printed: first-word and answer-time
medians and their ratios, and how many answers came out word for word the same.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# the in-process model as the app ran it: sleeping OpenMP threads (the worker sets the same in its child); read
# once when the library loads, so set before anything imports it
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=12, help="development questions to ask (spread evenly)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "worker-bench.json")
    args = ap.parse_args()

    from assistant.answer import Assistant
    from assistant.llm import bundled_model_path
    from assistant.llm.llamacpp import LlamaCppLLM, prefix_cache_for
    from assistant.llm.worker import WorkerLLM
    from evals.datasets import load_dataset
    from ingestion.config import Settings

    s = Settings.from_env()
    path = Path(s.model_path) if s.model_path else bundled_model_path(s.model_cache)
    tmp = Path(tempfile.mkdtemp(prefix="bench-worker-"))
    here_llm = LlamaCppLLM(path, n_ctx=s.n_ctx, n_threads=s.threads,
                           prefix_cache=prefix_cache_for(path, tmp / "here", s.prefix_cache_mb or 2048))
    child_llm = WorkerLLM(path, n_ctx=s.n_ctx, n_threads=s.threads, cache_dir=tmp / "child",
                          prefix_cache_mb=s.prefix_cache_mb or 2048, timeout=s.llm_timeout)
    here = Assistant(s, llm=here_llm)
    child = Assistant(s, store=here.store, embedder=here.embedder, llm=child_llm)

    questions = load_dataset(ROOT / "evals" / "datasets" / "sofia_gold.jsonl", "dev")
    step = max(1, len(questions) // args.questions)
    questions = questions[::step][: args.questions]
    rows = []
    for i, q in enumerate(questions):
        order = (("here", here), ("child", child)) if i % 2 == 0 else (("child", child), ("here", here))
        row = {"id": q.id}
        for name, bot in order:
            a = bot.ask(q.question)
            row[name] = {"first_token": a.timings.get("first_token"), "total": a.timings["total"], "text": a.text,
                         "refused": a.refused, "failure": a.model_failure}
        rows.append(row)
        print(f"{q.id}: first word in process {row['here']['first_token']:.2f} s, "
              f"in a child process {row['child']['first_token']:.2f} s", flush=True)
    child_llm.close()

    def med(name, key):
        return statistics.median(r[name][key] for r in rows if r[name][key] is not None)

    summary = {"questions": len(rows),
               "same_text": sum(r["here"]["text"] == r["child"]["text"] for r in rows),
               "same_decision": sum(r["here"]["refused"] == r["child"]["refused"] for r in rows),
               "failures": sum(bool(r["child"]["failure"]) for r in rows),
               "first_token_p50": {"here": med("here", "first_token"), "child": med("child", "first_token")},
               "answer_p50": {"here": med("here", "total"), "child": med("child", "total")}}
    ft, tot = summary["first_token_p50"], summary["answer_p50"]
    print(f"\n{len(rows)} development questions")
    print(f"first word p50: in process {ft['here']:.2f} s, child process {ft['child']:.2f} s "
          f"(ratio {ft['child'] / ft['here']:.2f})")
    print(f"answer p50:     in process {tot['here']:.2f} s, child process {tot['child']:.2f} s "
          f"(ratio {tot['child'] / tot['here']:.2f})")
    print(f"same answer text {summary['same_text']} of {len(rows)}, same answer-or-refuse {summary['same_decision']}, "
          f"model failures {summary['failures']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
