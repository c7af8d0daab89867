"""The local model in a supervised child process: a crash in native code costs one answer, never the app.

llama.cpp is native code: a CPU it was not built for, a damaged GGUF or a lack of memory ends the process that runs
it with a signal. ``WorkerLLM`` runs ``LlamaCppLLM`` (saved prompt states, log-probs, streaming and all) in a child
process; when the child dies mid-call the call raises ``ModelCrashed`` naming the signal (the assistant then shows
the passages), and the next call starts a fresh child.

Parent and child talk over a socket pair with ``multiprocessing.connection`` (pickled tuples):
- parent -> child: ``("load", spec)`` once, then ``(op, kwargs)``; ``("cancel",)`` stops a stream early;
- child -> parent: ``("ready", state)``, then for each call ``("piece", text)``* and ``("done", value, state)`` or
  ``("error", message, reason)`` (``ModelError``'s two parts). The child exits when its end of the pair closes (the parent ended).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Iterator

from .base import Generation, Message, ModelCrashed, ModelError

log = logging.getLogger(__name__)

LOAD_TIMEOUT = 300.0  # seconds a child may take to load the model (a cold disk reads 1.1 GB)
FIX = "run `sofia-qa doctor` to see why"


@dataclass(frozen=True)
class PrefixState:
    """What the child's saved prompt beginnings hold (``prefix_cache.PrefixCache``'s figures, read-only)."""

    folder: Path | None
    nbytes: int
    max_bytes: int
    largest: int
    count: int

    def __len__(self) -> int:
        return self.count


def describe_exit(code: int | None) -> str:
    """``killed by SIGSEGV`` / ``exited with status 3`` / ``stopped``, for a child's return code."""
    if code is None:
        return "stopped"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


class WorkerLLM:
    """``LlamaCppLLM``'s interface, served by a child process that is restarted after it dies.

    ``timeout``: seconds the child may stay silent during a call (before the first token, or between two) before it
    is stopped and the call fails. One call at a time; a stream holds the lock until it is exhausted or closed."""

    def __init__(self, model_path: str | os.PathLike[str], *, n_ctx: int = 4096, n_threads: int | None = None,
                 cache_dir: Path | None = None, prefix_cache_mb: int = 0, timeout: float = 120.0,
                 extra_buffer_types: bool | None = None) -> None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ModelError(f"model file {path} does not exist: pass an existing GGUF file, or leave the model "
                             f"path unset to use the bundled model", f"model file {path} does not exist")
        self.path = path
        self.name = path.name
        self.timeout = float(timeout)
        self._spec = dict(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, prefix_cache_mb=prefix_cache_mb,
                          cache_dir=str(cache_dir) if cache_dir else None, extra_buffer_types=extra_buffer_types)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._conn: Connection | None = None
        self.last_stream: Generation | None = None
        self.prefixes: PrefixState | None = None
        self.prefix_stats = {"restored": 0, "kept": 0, "tokens_restored": 0}
        self.starts = 0
        self.last_failure = ""  # why the last child died ("" while none has)
        atexit.register(self.close)
        with self._lock:
            self._start()

    @property
    def pid(self) -> int | None:
        """The child's process id (None between a death and the next call)."""
        return self._proc.pid if self._proc is not None else None

    # -- the child's life
    def _start(self) -> None:
        parent, child = socket.socketpair()
        env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
        root = str(Path(__file__).resolve().parents[2])  # `python -m` finds the package from here
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen([sys.executable, "-m", __name__, str(child.fileno())],
                                          pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL, env=env, cwd=root)
        except OSError as exc:
            raise ModelError(f"the model process could not be started ({exc}): {FIX}",
                             "the model process could not be started") from exc
        finally:
            child.close()
        self._conn = Connection(parent.detach())
        self.starts += 1
        self._conn.send(("load", self._spec))
        msg = self._recv("loading the model", LOAD_TIMEOUT)
        if msg[0] == "error":
            self._stop()
            raise ModelError(*msg[1:])
        self._take_state(msg[1])

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _ensure(self) -> None:
        if not self._alive():
            self._stop()
            self._start()

    def _stop(self) -> None:
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            conn.close()
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    def close(self) -> None:
        # at exit a stream in another thread may hold the lock: the child is stopped all the same
        locked = self._lock.acquire(timeout=5)
        try:
            self._stop()
        finally:
            if locked:
                self._lock.release()

    def _died(self, doing: str) -> ModelCrashed:
        proc = self._proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        self._stop()
        self.last_failure = f"the model process was {describe_exit(code)} while {doing}"
        log.info("%s; it is started again for the next call", self.last_failure)
        return ModelCrashed(f"{self.last_failure}: it is started again for the next question; if this repeats, {FIX}",
                            self.last_failure)

    def _recv(self, doing: str, timeout: float) -> tuple:
        conn = self._conn
        assert conn is not None
        try:
            if not conn.poll(timeout):
                self._stop()
                self.last_failure = f"the model process sent nothing for {timeout:g} s while {doing}"
                raise ModelError(f"{self.last_failure}: it was stopped and is started again for the next question",
                                 self.last_failure)
            return conn.recv()
        except (EOFError, OSError):
            raise self._died(doing) from None

    def _take_state(self, state: dict) -> None:
        self.prefix_stats = state["prefix_stats"]
        self.prefixes = PrefixState(**state["prefixes"]) if state["prefixes"] else None

    def _call(self, op: str, doing: str, **kwargs: Any) -> Any:
        with self._lock:
            self._ensure()
            try:
                self._conn.send((op, kwargs))
            except OSError:
                raise self._died(doing) from None
            msg = self._recv(doing, self.timeout)
            if msg[0] == "error":
                raise ModelError(*msg[1:])
            self._take_state(msg[2])
            return msg[1]

    # -- the interface (see LlamaCppLLM)
    def chat(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
             prefix: str | None = None) -> Generation:
        return self._call("chat", "writing a reply", messages=messages, max_tokens=max_tokens, stop=stop,
                          prefix=prefix)

    def stream(self, messages: list[Message], max_tokens: int = 256, stop: list[str] | None = None,
               prefix: str | None = None) -> Iterator[str]:
        """Yield text pieces as the child writes them; afterwards ``last_stream`` holds the whole Generation."""
        doing = "writing the answer"
        with self._lock:
            self._ensure()
            try:
                self._conn.send(("stream", dict(messages=messages, max_tokens=max_tokens, stop=stop, prefix=prefix)))
            except OSError:
                raise self._died(doing) from None
            finished = False
            try:
                while True:
                    msg = self._recv(doing, self.timeout)
                    if msg[0] == "piece":
                        yield msg[1]
                        continue
                    finished = True
                    if msg[0] == "error":
                        raise ModelError(*msg[1:])
                    self.last_stream = msg[1]
                    self._take_state(msg[2])
                    return
            finally:
                if not finished and self._alive():  # the caller stopped reading: stop the child writing too
                    self._cancel(doing)

    def _cancel(self, doing: str) -> None:
        try:
            self._conn.send(("cancel",))
            while True:
                msg = self._recv(doing, self.timeout)
                if msg[0] != "piece":
                    if msg[0] == "done":
                        self.last_stream = msg[1]
                        self._take_state(msg[2])
                    return
        except ModelError as exc:  # it died or hung on the way out: the next call starts a new one
            log.warning("%s", exc)
        except OSError:
            self._died(doing)

    def next_token_probs(self, messages: list[Message], candidates: list[str]) -> dict[str, float]:
        return self._call("next_token_probs", "weighing the answer", messages=messages, candidates=candidates)

    def keep_prefix(self, messages: list[Message], prefix: str) -> bool:
        return self._call("keep_prefix", "reading a passage", messages=messages, prefix=prefix)

    def count_tokens(self, text: str) -> int:
        return self._call("count_tokens", "counting tokens", text=text)

    def reset(self) -> None:
        self._call("reset", "forgetting what it read")


# --------------------------------------------------------------------------------------------- the child


def _state(llm) -> dict:
    p = llm.prefixes
    return {"prefix_stats": dict(llm.prefix_stats),
            "prefixes": None if p is None else dict(folder=p.folder, nbytes=p.nbytes, max_bytes=p.max_bytes,
                                                     largest=p.largest, count=len(p))}


def _load(spec: dict):
    from .llamacpp import LlamaCppLLM, prefix_cache_for

    path = Path(spec["model_path"])
    prefixes = (prefix_cache_for(path, Path(spec["cache_dir"]), spec["prefix_cache_mb"])
                if spec["cache_dir"] else None)
    return LlamaCppLLM(path, n_ctx=spec["n_ctx"], n_threads=spec["n_threads"], prefix_cache=prefixes,
                       extra_buffer_types=spec["extra_buffer_types"])


def _stream(llm, conn: Connection, kwargs: dict) -> Generation | None:
    pieces = llm.stream(**kwargs)
    try:
        for piece in pieces:
            conn.send(("piece", piece))
            if conn.poll() and conn.recv()[0] == "cancel":
                break
    finally:
        pieces.close()
    return llm.last_stream


def serve(conn: Connection) -> None:
    """Load the model the first message names, then answer calls until the parent goes away."""
    try:
        kind, spec = conn.recv()
        llm = _load(spec)
    except EOFError:
        return
    except ModelError as exc:
        conn.send(("error", str(exc), exc.reason))
        return
    conn.send(("ready", _state(llm)))
    calls = {"chat": llm.chat, "next_token_probs": llm.next_token_probs, "keep_prefix": llm.keep_prefix,
             "count_tokens": llm.count_tokens, "reset": llm.reset}
    while True:
        try:
            op, *rest = conn.recv()
        except EOFError:
            return
        if op == "cancel":  # it came after the stream had ended
            continue
        kwargs = rest[0] if rest else {}
        try:
            value = _stream(llm, conn, kwargs) if op == "stream" else calls[op](**kwargs)
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides; the child goes on
            if isinstance(exc, ModelError):
                conn.send(("error", str(exc), exc.reason))
            else:
                what = f"the model failed ({type(exc).__name__})"
                conn.send(("error", f"{what}: {exc}", what))
            continue
        conn.send(("done", value, _state(llm)))


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING, format="model worker: %(message)s")
    conn = Connection(int(argv[0]))
    try:
        serve(conn)
    finally:
        conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
