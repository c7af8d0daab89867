"""The in-process llama.cpp backend: a GGUF run by llama-cpp-python, greedy, with log-probs and saved prompt states.

``create_chat_completion`` applies the GGUF's own chat template. Per-token log-probs are captured by a cheap
``logits_processor`` (log-sum-exp of the full distribution at each step; the chosen token is the arg-max because
decoding is greedy), so the model need not be loaded with the slow ``logits_all=True``.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..prefix_cache import PrefixCache, common_prefix
from . import cpu
from .base import Generation, Message, ModelError, repeats_itself

log = logging.getLogger(__name__)

# Restoring a saved state takes a few milliseconds; below this many tokens, reading them is as quick.
MIN_PREFIX_GAIN = 32


class _LogprobRecorder:
    """A llama-cpp-python logits processor: records log p(arg-max token) at each step, leaves logits alone.

    Decoding is greedy (temperature 0, no penalties), so the sampled token is the arg-max of these logits.
    Optionally records the probabilities of a few token ids at the first step (``watch``).
    """

    def __init__(self, watch: list[int] | None = None) -> None:
        self.logprobs: list[float] = []
        self.first_time: float | None = None
        self.watch = watch
        self.watched: dict[int, float] = {}

    def __call__(self, input_ids: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.first_time is None:
            self.first_time = time.perf_counter()
        x = np.asarray(scores, dtype=np.float32)  # a strided view of llama_token_data.logit -> contiguous copy
        m = float(x.max())
        lse = m + math.log(float(np.exp(x - m).sum()))
        self.logprobs.append(m - lse)
        if self.watch is not None and not self.watched:
            self.watched = {t: math.exp(float(x[t]) - lse) for t in self.watch}
        return scores


class LlamaCppLLM:
    """A GGUF model run in-process by llama-cpp-python; one generation at a time (CPU-bound)."""

    def __init__(self, model_path: str | os.PathLike[str], n_ctx: int = 4096, n_threads: int | None = None,
                 seed: int = 0, n_batch: int = 512, flash_attn: bool = False,
                 prefix_cache: PrefixCache | None = None, extra_buffer_types: bool | None = None) -> None:
        """``extra_buffer_types``: None decides by the CPU and the build (``cpu.extra_buffer_types_allowed``)."""
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist: pass an existing GGUF file, or leave the model "
                             f"path unset to use the bundled model", f"model file {path} does not exist")
        try:
            import llama_cpp
        except ImportError as e:
            raise ModelError(f"llama-cpp-python is not installed ({e}): run `pip install llama-cpp-python==0.3.36` "
                             f"(or `make install`)", "llama-cpp-python is not installed") from e
        self._llama_cpp = llama_cpp
        self.path = path
        self.name = path.name
        self.n_ctx = n_ctx
        threads = n_threads or os.cpu_count() or 1
        if extra_buffer_types is None:
            extra_buffer_types = cpu.extra_buffer_types_allowed(cpu.cpu_flags(), cpu.build_features())
        self.extra_buffer_types = extra_buffer_types
        t0 = time.perf_counter()
        try:
            with nullcontext() if extra_buffer_types else cpu.without_extra_buffer_types(llama_cpp.llama_cpp):
                self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                                            n_threads_batch=threads, n_batch=n_batch, seed=seed,
                                            flash_attn=flash_attn, verbose=False)
        except Exception as e:  # llama.cpp reports a bad file as ValueError / RuntimeError
            raise ModelError(f"could not load {path} ({e}): check it is a complete GGUF file; delete it and rerun "
                             f"if it is the bundled model", f"could not load {path}") from e
        self.load_seconds = time.perf_counter() - t0
        self._lock = threading.Lock()
        self.last_stream: Generation | None = None
        self.prefixes = prefix_cache
        self._format = self._chat_formatter() if prefix_cache is not None else None
        self.prefix_stats = {"restored": 0, "kept": 0, "tokens_restored": 0}

    # -- saved prompt beginnings (prefix_cache.py): the wait for the first word is the prompt's reading
    def _chat_formatter(self):
        """The GGUF's chat template as llama-cpp-python applies it, so a prompt's tokens are known before the
        call; None (no prefix reuse) when the model uses another chat handler."""
        llm = self._llm
        template = (llm.metadata or {}).get("tokenizer.chat_template")
        if llm.chat_handler is not None or llm.chat_format != "chat_template.default" or not template:
            return None
        from llama_cpp import llama_chat_format

        eos, bos = llm.token_eos(), llm.token_bos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=llm._model.token_get_text(eos) if eos != -1 else "",
            bos_token=llm._model.token_get_text(bos) if bos != -1 else "", stop_token_ids=[eos])

    def _prompt(self, messages: list[Message]) -> tuple[list[int], str, bool]:
        r = self._format(messages=messages)
        add_bos = not r.added_special
        return self._llm.tokenize(r.prompt.encode("utf-8"), add_bos=add_bos, special=True), r.prompt, add_bos

    def _save_state(self) -> bytes:
        ctx = self._llm._ctx.ctx
        size = self._llama_cpp.llama_state_seq_get_size(ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = self._llama_cpp.llama_state_seq_get_data(ctx, buf, size, 0)
        return ctypes.string_at(buf, n)

    def _restore_state(self, tokens: np.ndarray, state: bytes) -> bool:
        llm = self._llm
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = 0
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if self._llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, buf, len(state), 0) != len(state):
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            return False
        llm.input_ids[: len(tokens)] = tokens
        llm.n_tokens = len(tokens)
        llm._requires_eval = True
        return True

    def _reuse(self, messages: list[Message], prefix: str | None) -> list[int] | None:
        """Before a call (model lock held): restore the saved state sharing the longest beginning with this
        prompt, if it shares more than the model already holds; then, if ``prefix`` (a leading part of the
        last message) is given and not yet read, read the prompt up to its end and save that state.
        Returns the prompt's tokens, or None when prompts cannot be tokenised ahead (no reuse).
        A failure here costs speed, never an answer: the model then reads the whole prompt."""
        if self.prefixes is None or self._format is None:
            return None
        llm = self._llm
        try:
            tokens, text, add_bos = self._prompt(messages)
            held = common_prefix(llm.input_ids[: llm.n_tokens], tokens)
            found = self.prefixes.best(tokens, more_than=held + MIN_PREFIX_GAIN)
            if found is not None:
                saved, state, shared = found
                if self._restore_state(saved, state):
                    held = shared
                    self.prefix_stats["restored"] += 1
                    self.prefix_stats["tokens_restored"] += shared
                else:
                    log.warning("prefix cache: a saved state did not fit this model; dropped")
                    self.prefixes.forget(saved)
                    held = 0
            at = text.find(prefix) if prefix else -1
            if at >= 0:
                head = llm.tokenize(text[: at + len(prefix)].encode("utf-8"), add_bos=add_bos, special=True)
                end = common_prefix(head, tokens)
                # read up to the end of the prefix (the call reads on from there: no extra work) and keep the state
                if held < end < len(tokens):
                    llm.n_tokens = held
                    llm.eval(tokens[held:end])
                    if not self.prefixes.has(tokens[:end]):
                        self.prefixes.put(tokens[:end], self._save_state())
                        self.prefix_stats["kept"] += 1
            return tokens
        except Exception as e:  # noqa: BLE001 - any llama.cpp or disk trouble: read the prompt in full
            log.warning("prefix cache: %s: %s; reading the whole prompt", type(e).__name__, e)
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            llm.n_tokens = 0
            return None

    def _check_tokens(self, tokens: list[int] | None) -> None:
        """The tokens predicted by ``_prompt`` must be those llama-cpp-python read; if not, stop reusing."""
        if tokens is not None and list(self._llm.input_ids[: len(tokens)]) != list(tokens):
            log.warning("prefix cache: prompts are tokenised differently from the chat handler; reuse is off")
            self._format = None

    def keep_prefix(self, messages: list[Message], prefix: str) -> bool:
        """Read ``messages`` up to the end of ``prefix`` and save that state (``sofia-qa warm``); no reply.
        True when the state is saved (or was already)."""
        if self.prefixes is None or self._format is None:
            return False
        with self._lock:
            return self._reuse(messages, prefix) is not None

    def reset(self) -> None:
        """Forget what was read: the model's context and every saved prompt beginning. Two calls after a
        reset do the same arithmetic (tests that compare answers start here)."""
        with self._lock:
            self._llm.reset()
            self._llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            if self.prefixes is not None:
                self.prefixes.clear()

    # -- helpers
    def _kwargs(self, messages: list[Message], max_tokens: int, stop: list[str] | None, rec: _LogprobRecorder,
                stream: bool) -> dict[str, Any]:
        return dict(messages=messages, max_tokens=max_tokens, stop=list(stop or []), temperature=0.0,
                    top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, stream=stream,
                    logits_processor=self._llama_cpp.LogitsProcessorList([rec]))

    def count_tokens(self, text: str) -> int:
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    # -- interface
    def chat(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
             prefix: str | None = None) -> Generation:
        rec = _LogprobRecorder()
        with self._lock:
            t0 = time.perf_counter()
            tokens = self._reuse(messages, prefix)
            out = self._llm.create_chat_completion(**self._kwargs(messages, max_tokens, stop, rec, False))
            self._check_tokens(tokens)
            seconds = time.perf_counter() - t0
        usage = out.get("usage") or {}
        n_out = int(usage.get("completion_tokens", len(rec.logprobs)))
        return Generation(
            text=out["choices"][0]["message"].get("content") or "",
            token_logprobs=rec.logprobs[:n_out],  # the last step may have chosen the end-of-turn token
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=n_out,
            seconds=seconds,
            first_token_seconds=None if rec.first_time is None else rec.first_time - t0,
        )

    def stream(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
               prefix: str | None = None) -> Iterator[str]:
        """Yield text pieces as they are generated; afterwards ``last_stream`` holds the whole Generation.

        ``prefix``: a leading part of the last message worth keeping (see ``_reuse``).
        The model lock is held until the iterator is exhausted or closed: consume it fully or ``close()`` it.
        """
        rec = _LogprobRecorder()
        with self._lock:
            t0 = time.perf_counter()
            tokens = self._reuse(messages, prefix)
            pieces: list[str] = []
            finish = ""
            chunks = self._llm.create_chat_completion(**self._kwargs(messages, max_tokens, stop, rec, True))
            try:
                for chunk in chunks:
                    finish = chunk["choices"][0].get("finish_reason") or finish
                    piece = chunk["choices"][0].get("delta", {}).get("content")
                    if piece:
                        pieces.append(piece)
                        yield piece
                        if repeats_itself("".join(pieces)):
                            finish = "repeat"
                            break
            finally:
                chunks.close()
            self._check_tokens(tokens)
            text = "".join(pieces)
            n_out = self.count_tokens(text) if text else 0
            self.last_stream = Generation(text=text, token_logprobs=rec.logprobs[:n_out], prompt_tokens=0,
                                          completion_tokens=n_out, seconds=time.perf_counter() - t0,
                                          first_token_seconds=None if rec.first_time is None else rec.first_time - t0,
                                          finish_reason=finish)

    def first_token_id(self, candidate: str) -> int:
        ids = self._llm.tokenize(candidate.encode("utf-8"), add_bos=False, special=False)
        if not ids:
            raise ModelError(f"candidate {candidate!r} has no tokens: pass a non-empty string")
        return ids[0]

    def next_token_probs(self, messages: list[Message], candidates: list[str]) -> dict[str, float]:
        """P(the reply's first token is the first token of each candidate), from one forward pass."""
        ids = {c: self.first_token_id(c) for c in candidates}
        rec = _LogprobRecorder(watch=sorted(set(ids.values())))
        with self._lock:
            tokens = self._reuse(messages, None)
            self._llm.create_chat_completion(**self._kwargs(messages, 1, None, rec, False))
            self._check_tokens(tokens)
        return {c: float(min(1.0, max(0.0, rec.watched.get(t, 0.0)))) for c, t in ids.items()}


def prefix_cache_for(model_path: Path, cache_dir: Path, max_mb: int) -> PrefixCache | None:
    """Saved prompt beginnings for this model file, in ``cache_dir/prefix-states/`` (None when ``max_mb`` is 0).
    States belong to one model file and one llama.cpp build, so both name the folder."""
    if max_mb <= 0:
        return None
    import llama_cpp

    path = Path(model_path)
    folder = Path(cache_dir) / "prefix-states" / f"{path.stem}-{path.stat().st_size}-llama.cpp{llama_cpp.__version__}"
    return PrefixCache(max_mb * 2**20, folder)

