"""The one settings object, and the offline switches set before any model library loads.

Every value has a default, can be overridden by an environment variable ``SOFIA_QA_<NAME>``
(``SOFIA_QA_DB=/tmp/idx``) and by CLI flags (``Settings.with_overrides``); ``Settings.help()`` describes each.
Functions elsewhere take a ``Settings`` or explicit values, never their own copy of a default.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

# The only environment this project rewrites: no library may reach a hub or send telemetry. Set on the first
# import of this module, so import it (``from ingestion import config``) before any model or UI library.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
    "ANONYMIZED_TELEMETRY": "False",
    "TOKENIZERS_PARALLELISM": "false",  # else the tokenizers library warns (and may deadlock) in forked children
}


def go_offline() -> None:
    """Force every library we use into offline, no-telemetry mode (idempotent)."""
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value


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


def cache_home() -> Path:
    """This project's cache folder: ``$XDG_CACHE_HOME/sofia-qa``, or ``~/.cache/sofia-qa`` when that is unset."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sofia-qa"


def setting(doc: str, default: Any = MISSING, *, factory: Any = MISSING) -> Any:
    """A ``Settings`` field with its one-line description (``Settings.help()``)."""
    return field(default=default, default_factory=factory, metadata={"doc": doc})


@dataclass(frozen=True)
class Settings:
    """Every setting, each read from ``SOFIA_QA_<NAME>``; the descriptions are ``Settings.help()``."""

    # where things are
    corpus_dir: Path = setting("folder of documents `sofia-qa ingest` reads by default", PROJECT_ROOT / "corpus")
    db: Path = setting("folder of the embedded Chroma index", PROJECT_ROOT / ".sofia-qa" / "index")
    collection: str = setting("name of the Chroma collection", "sofia_qa")
    chroma_url: str | None = setting("a Chroma server (e.g. http://127.0.0.1:8000) instead of the embedded index", None)
    # embedding and chunking
    embed_model: str = setting(f"embedding model: {' or '.join(EMBED_MODELS[::-1])}", "multilingual-e5-small")
    chunk_tokens: int = setting("budget per chunk in the embedder's own tokens (header included)", 220)
    embed_batch: int = setting("chunks embedded per batch while ingesting", 64)
    # a process of its own lets e5's threads spin without slowing the language model (ingestion/embed_worker.py)
    embed_worker: bool = setting("1: multilingual-e5-small embeds in a child process; 0: in this process", True)
    # limits on input
    max_file_mb: float = setting("largest file accepted, in MB", 50.0)
    max_pdf_pages: int = setting("most pages a PDF may have", 3000)
    read_timeout: float = setting("seconds one PDF may take to read (in a child process), then it is skipped", 600.0)
    max_question_chars: int = setting("longest question accepted, in characters", 2000)
    priorities_file: Path | None = setting("an edited copy of the alignment priorities; none: the packaged "
                                           "assistant/align/priorities.toml", None)
    # generation
    model_path: str | None = setting("any GGUF file to answer with; default: the bundled Qwen2.5 model", None)
    llm_url: str | None = setting("any OpenAI-compatible server to answer with, instead of a GGUF file", None)
    model_cache: Path = setting("folder where the bundled model is assembled; default: $XDG_CACHE_HOME/sofia-qa/models",
                                factory=lambda: cache_home() / "models")
    n_ctx: int = setting("the language model's context window, in tokens", 4096)
    threads: int = setting("CPU threads for the models", factory=lambda: os.cpu_count() or 2)
    max_answer_tokens: int = setting("longest answer the model may write, in tokens", 200)
    # the bundled model writes Bulgarian poorly, so English is the default (measured: docs/PERFORMANCE-HISTORY.md)
    answer_language: str = setting('"en": answer in English (a Bulgarian asker gets a note why); "question": '
                                   'in the question\'s language', "en")
    # off: a draft the check declines is never on screen; on: the first word comes sooner (docs/EVALUATION.md)
    stream_drafts: bool = setting(
        "0: only checked text is shown; 1: the draft as the model writes it (withdrawn if not confirmed)", False)
    prefix_cache_mb: int = setting("MB of disk for the model's saved state after a prompt's beginning; 0: off", 2048)
    llm_timeout: float = setting("seconds the model may stay silent (before a token) before the answer fails", 120.0)
    # retrieval
    dense_k: int = setting("passages taken from the embedding search", 10)
    bm25_k: int = setting("passages taken from the BM25 (word) search", 10)
    # three: as many right answers as four, fewer wrong and faster (docs/PERFORMANCE-HISTORY.md)
    top_k: int = setting("passages put in the prompt", 3)
    # the first word waits for the prompt to be read; a long document's passages are cut to fit (assistant/budget.py)
    passage_tokens: int = setting("most passage tokens (labels included) per prompt; longer passages are cut "
                                  "around the question; 0: no limit", 850)
    history_turns: int = setting("earlier chat turns used to understand a follow-up question", 4)
    # app
    host: str = setting("address the app listens on", "127.0.0.1")
    port: int = setting("port the app listens on", 7860)
    auth: str | None = setting('"user:password" the app asks for; none: no login', None)
    upload_dir: Path = setting("folder where the app keeps uploaded documents", PROJECT_ROOT / ".sofia-qa" / "uploads")
    report_dir: Path = setting("folder of the evaluation report the app shows and writes",
                               PROJECT_ROOT / "reports" / "eval")

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
        """Every value as text, the password left out."""
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name != "auth"}

    @classmethod
    def help(cls) -> dict[str, str]:
        """``SOFIA_QA_<NAME>`` -> what it sets, one line each, in the order of the fields."""
        return {ENV_PREFIX + f.name.upper(): f.metadata["doc"] for f in fields(cls)}


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
