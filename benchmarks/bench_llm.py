"""Model speed on this machine: bare llama.cpp against our wrapper, and the settings that matter, side by side.

    python benchmarks/bench_llm.py [--repeats 2] [--gen 48] [--load quiet|busy|both] [--out reports/llm-bench.json]
                                   [--build NAME=DIR ...] [--only SUBSTRING ...]

Every configuration runs in its own child process (the OpenMP wait policy is read once, when the library
loads), on the same real prompt: the passages our retriever gives for a gold question, in the answer
prompt. Configurations alternate within each repeat, so machine load hits them alike.
Printed: prompt tokens/s, generated tokens/s, time to first token, and each ratio to the first configuration.

``--load busy`` runs every configuration while another process embeds passages with multilingual-e5-small on
one thread (what a second user's question or an ingest does to the model in the app); ``both`` measures quiet
and busy in the same run. The OpenMP wait policy is the setting this decides: spinning threads are fastest
alone and slowest beside other work, sleeping ones the reverse; ``GOMP_SPINCOUNT`` bounds the spin.

``--build NAME=DIR`` adds bare runs of another llama-cpp-python build installed in DIR (``pip install --target
DIR``), first on the child's path: two builds side by side in one run (e.g. the native build against the one
``scripts/llama_wheel.sh`` makes without AMX). "no extra buffers" loads the model with
``llama_model_params.use_extra_bufts`` off, what the loader does where the AMX code would run.
``--only`` keeps the configurations whose name contains one of the given strings.

Why it exists: the answer-latency target (median <= 12 s, first token <= 4 s) assumed about 146 prompt and
37 generated tokens/s. This benchmark shows what this machine gives, bare llama.cpp included, so the gap
between our code and the hardware is visible apart from the gap between the hardware and the target.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# "omp" is the OpenMP environment of the child; without GOMP_SPINCOUNT, libgomp spins as its policy says
CONFIGS = [
    {"name": "bare llama.cpp", "wrapper": False, "flash_attn": False, "omp": {"OMP_WAIT_POLICY": "ACTIVE"}},
    {"name": "bare, flash-attn", "wrapper": False, "flash_attn": True, "omp": {"OMP_WAIT_POLICY": "ACTIVE"}},
    {"name": "bare, no extra buffers", "wrapper": False, "flash_attn": False, "extra_bufts": False,
     "omp": {"OMP_WAIT_POLICY": "ACTIVE"}},
    {"name": "ours, PASSIVE (sleep)", "wrapper": True, "flash_attn": False, "omp": {"OMP_WAIT_POLICY": "PASSIVE"}},
    {"name": "ours, spin 30k", "wrapper": True, "flash_attn": False,
     "omp": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "30000"}},
    {"name": "ours, spin 300k", "wrapper": True, "flash_attn": False,
     "omp": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "300000"}},
    {"name": "ours, ACTIVE (spin)", "wrapper": True, "flash_attn": False, "omp": {"OMP_WAIT_POLICY": "ACTIVE"}},
]


def background_load() -> subprocess.Popen:
    """Another process embedding passages with the e5 model on one thread, until it is killed."""
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from ingestion.embedding import E5Embedder\n"
            "e = E5Embedder(threads=1)\n"
            "texts = ['Sofia Municipality supports clusters of ICT and creative firms through its innovation fund. ' * 6] * 4\n"
            "while True: e.embed_passages(texts)\n") % str(ROOT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL)
    time.sleep(3)  # model loaded and busy
    return proc


def build_prompt() -> list[dict[str, str]]:
    sys.path.insert(0, str(ROOT))
    from assistant import prompts
    from assistant.retrieve import Retriever
    from evals.datasets import load_dataset
    from evals.runner import DEFAULT_DATASET
    from ingestion.config import Settings
    from ingestion.embedding import load_embedder
    from ingestion.store import Store

    s = Settings.from_env()
    emb = load_embedder(s.embed_model, s.threads, s.embed_worker)
    store = Store.open(s, emb.name)
    if not store.count():
        raise SystemExit("the index is empty: run `make ingest` first")
    q = next(q for q in load_dataset(DEFAULT_DATASET) if q.split == "test" and q.answerable and q.lang == "en")
    passages = Retriever(store, emb, s).retrieve(q.question)
    return prompts.messages(passages, q.question, prompts.ANSWER.format(language="English"))


def child(cfg: dict, messages: list[dict[str, str]], gen: int) -> dict:
    """Runs in the child process: load, read the prompt once, generate ``gen`` tokens."""
    sys.path.insert(0, str(ROOT))
    import llama_cpp

    from assistant.llm import bundled_model_path
    from assistant.llm.llamacpp import LlamaCppLLM

    path = bundled_model_path()
    threads = os.cpu_count() or 2
    if cfg["wrapper"]:
        llm = LlamaCppLLM(path, n_threads=threads, flash_attn=cfg["flash_attn"])
        t0 = time.perf_counter()
        g = llm.chat(messages, max_tokens=gen)
        total = time.perf_counter() - t0
        n_prompt, n_gen, first = g.prompt_tokens, g.completion_tokens, g.first_token_seconds
    else:
        from contextlib import nullcontext

        from assistant.llm import cpu

        off = cfg.get("extra_bufts", True) is False
        with cpu.without_extra_buffer_types(llama_cpp.llama_cpp) if off else nullcontext():
            llm = llama_cpp.Llama(model_path=str(path), n_ctx=4096, n_threads=threads, n_threads_batch=threads,
                                  flash_attn=cfg["flash_attn"], verbose=False)
        first = None
        t0 = time.perf_counter()
        n_gen = 0
        for chunk in llm.create_chat_completion(messages=messages, max_tokens=gen, temperature=0.0, top_k=1,
                                                stream=True):
            if chunk["choices"][0].get("delta", {}).get("content"):
                n_gen += 1
                if first is None:
                    first = time.perf_counter() - t0
        total = time.perf_counter() - t0
        n_prompt = llm.n_tokens - n_gen  # tokens in the context after the call = prompt + generated
    first = first or total
    return {"llama_cpp_file": llama_cpp.__file__,
            "prompt_tokens": n_prompt, "gen_tokens": n_gen, "first_token_s": first, "total_s": total,
            "prompt_tok_s": n_prompt / first, "gen_tok_s": (n_gen - 1) / max(1e-9, total - first)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--gen", type=int, default=48, help="tokens to generate per run")
    ap.add_argument("--load", choices=("quiet", "busy", "both"), default="quiet",
                    help="run beside a background embedding process (busy), alone (quiet), or both")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "llm-bench.json")
    ap.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                    help="also run bare llama.cpp from another llama-cpp-python installed in DIR")
    ap.add_argument("--only", action="append", default=[], metavar="SUBSTRING",
                    help="run only the configurations whose name contains this (repeatable)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        job = json.loads(args.child)
        print("RESULT " + json.dumps(child(job["cfg"], job["messages"], job["gen"])), flush=True)
        return

    from tqdm import tqdm

    configs = [c for c in CONFIGS if not args.only or any(o in c["name"] for o in args.only)]
    for spec in args.build:
        name, _, folder = spec.partition("=")
        configs.append({**CONFIGS[0], "name": f"bare llama.cpp [{name}]", "path": str(Path(folder).resolve())})
    messages = build_prompt()
    loads = ["quiet", "busy"] if args.load == "both" else [args.load]
    runs: dict[str, list[dict]] = {f"{c['name']} | {load}": [] for load in loads for c in configs}
    with tqdm(total=args.repeats * len(runs), desc="model runs") as bar:
        for _ in range(args.repeats):
            for load in loads:
                other = background_load() if load == "busy" else None
                try:
                    for cfg in configs:
                        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
                        env.update(cfg["omp"])
                        if cfg.get("path"):
                            env["PYTHONPATH"] = os.pathsep.join(p for p in (cfg["path"], env.get("PYTHONPATH")) if p)
                        job = json.dumps({"cfg": cfg, "messages": messages, "gen": args.gen})
                        out = subprocess.run([sys.executable, __file__, "--child", job], env=env, capture_output=True,
                                             text=True, check=True)
                        line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT "))
                        runs[f"{cfg['name']} | {load}"].append(json.loads(line[len("RESULT "):]))
                        bar.update()
                finally:
                    if other:
                        other.kill()
                        other.wait()

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[name])

    base = f"{configs[0]['name']} | {loads[0]}"
    rows = []
    print(f"\nratios to: {base}")
    print(f"{'configuration':36} {'prompt tok':>10} {'prompt tok/s':>12} {'gen tok/s':>10} {'first tok s':>11}"
          f" {'prompt x':>9} {'gen x':>7}")
    for n in runs:
        row = {"name": n, **{k: med(n, k) for k in ("prompt_tokens", "prompt_tok_s", "gen_tok_s", "first_token_s",
                                                     "total_s")},
               "prompt_ratio": med(n, "prompt_tok_s") / med(base, "prompt_tok_s"),
               "gen_ratio": med(n, "gen_tok_s") / med(base, "gen_tok_s")}
        rows.append(row)
        print(f"{n:36} {row['prompt_tokens']:10.0f} {row['prompt_tok_s']:12.1f} {row['gen_tok_s']:10.2f}"
              f" {row['first_token_s']:11.1f} {row['prompt_ratio']:9.2f} {row['gen_ratio']:7.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"configs": rows, "runs": runs, "repeats": args.repeats, "gen": args.gen,
                                    "load": args.load, "cpus": os.cpu_count(),
                                    "llama_cpp": {c["name"]: c.get("path", "installed") for c in configs}}, indent=2))
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
