"""The one settings object.

Every value has a default, can be overridden by an environment variable ``SOFIA_QA_<NAME>``
(``SOFIA_QA_DB=/tmp/idx``) and by CLI flags (``Settings.with_overrides``). The offline switches
are set here, in code, before any model library is imported.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",
}


def go_offline() -> None:
    """Force every library we use into offline, no-telemetry mode (idempotent)."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    # OpenMP threads that spin while waiting slow llama.cpp 3-5x when anything else uses a core
    # (measured here); must be set before torch or llama_cpp loads libgomp.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


go_offline()

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "SOFIA_QA_"
ANSWER_LANGUAGES = ("question", "en")  # Settings.answer_language


def check_answer_language(value: str, what: str) -> str:
    """``value`` if it is one of ``ANSWER_LANGUAGES``; else a ValueError that opens with ``what`` (naming the setting
    or the parameter) and the value."""
    if value not in ANSWER_LANGUAGES:
        raise ValueError(f"{what}{value!r}: say one of {', '.join(ANSWER_LANGUAGES)}")
    return value

EMBED_MODELS = ("all-MiniLM-L6-v2", "multilingual-e5-small")


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sofia-qa"


@dataclass(frozen=True)
class Settings:
    # where things are
    corpus_dir: Path = PROJECT_ROOT / "corpus"
    db: Path = PROJECT_ROOT / ".sofia-qa" / "index"
    collection: str = "sofia_qa"
    chroma_url: str | None = None  # e.g. http://127.0.0.1:8000 -> Chroma HttpClient
    # embedding and chunking
    embed_model: str = "multilingual-e5-small"
    chunk_tokens: int = 220  # budget per chunk in the embedder's own tokens (header included)
    embed_batch: int = 64
    # multilingual-e5-small embeds in a child process whose OpenMP threads may spin (ingestion/embed_worker.py):
    # a question in 18 ms instead of 30; SOFIA_QA_EMBED_WORKER=0 embeds in this process
    embed_worker: bool = True
    # limits on input
    max_file_mb: float = 50.0
    max_pdf_pages: int = 3000
    read_timeout: float = 600.0  # seconds one PDF may take to read (in a child process), then it is skipped
    max_question_chars: int = 2000
    # generation
    model_path: str | None = None  # any GGUF file; default: the bundled Qwen2.5 model
    llm_url: str | None = None  # any OpenAI-compatible server
    model_cache: Path = field(default_factory=lambda: _cache_home() / "models")
    n_ctx: int = 4096
    threads: int = field(default_factory=lambda: os.cpu_count() or 2)
    max_answer_tokens: int = 200
    # "question": answer in the question's language (English or Bulgarian); "en": write every answer in English (the
    # documents' language), with a note to a Bulgarian asker. The bundled 1.5B model writes Bulgarian poorly: on the
    # development split its English drafts for Bulgarian questions were right for 10 of 15, its Bulgarian ones for 7
    answer_language: str = "question"
    # the model's state after reading a prompt's beginning (system text and first passage) is saved, so the next
    # prompt that starts the same way is read from there (assistant/prefix_cache.py): MB of disk; 0 turns it off
    prefix_cache_mb: int = 2048
    llm_timeout: float = 120.0
    # retrieval
    dense_k: int = 10
    bm25_k: int = 10
    top_k: int = 3  # passages in the prompt; dev split: fact hit@3 0.94, hit@5 0.95; 3 vs 4 with the gate refitted: same share correct, fewer wrong, 1.6 s faster
    history_turns: int = 4
    # app
    host: str = "127.0.0.1"
    port: int = 7860
    auth: str | None = None  # "user:password"
    upload_dir: Path = PROJECT_ROOT / ".sofia-qa" / "uploads"

    def __post_init__(self) -> None:
        check_answer_language(self.answer_language, f"setting {ENV_PREFIX}ANSWER_LANGUAGE=")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides) -> "Settings":
        """Defaults, then ``SOFIA_QA_*`` variables, then explicit overrides (None = not given)."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                values[f.name] = _parse(f, raw)
        settings = cls(**values)
        return settings.with_overrides(**overrides)

    def with_overrides(self, **overrides) -> "Settings":
        known = {f.name: f for f in fields(self)}
        clean = {}
        for key, value in overrides.items():
            if key not in known:
                raise ValueError(f"unknown setting {key!r}; known: {', '.join(sorted(known))}")
            if value is None:
                continue
            clean[key] = _parse(known[key], value) if isinstance(value, str) else value
        return dataclasses.replace(self, **clean)

    def describe(self) -> dict[str, str]:
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name != "auth"}


def _parse(f: dataclasses.Field, raw: str):
    kind = str(f.type)
    if kind.startswith("bool"):
        word = raw.strip().lower()
        if word in ("1", "true", "yes", "on"):
            return True
        if word in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"setting {ENV_PREFIX}{f.name.upper()}={raw!r}: say 1 or 0 (true/false, yes/no, on/off)")
    try:
        if "Path" in kind:
            return Path(raw).expanduser()
        if kind.startswith("int"):
            return int(raw)
        if kind.startswith("float"):
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"setting {ENV_PREFIX}{f.name.upper()}={raw!r}: {exc}") from None
    return raw
