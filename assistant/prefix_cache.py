"""Saved model states for prompt beginnings, so a prompt that starts like an earlier one is read only from
where it differs.

Reading the prompt sets the wait for the first word on a CPU (about 100 prompt tokens/s here), and an answer
prompt starts with the system text and the first passage, about 230-300 tokens. The same first passage comes
back for many questions (the membership criteria, the strategy's priorities), so the model's state after
reading that beginning (its key/value cache, about 28 KB a token for the bundled model) is kept here and
restored next time instead of being read again.

This module only stores and finds states: ``PrefixCache.best(tokens)`` returns the stored entry sharing the
longest beginning with ``tokens``. What a state means is the model backend's business (``llm.LlamaCppLLM``).
Entries live in memory, bounded in bytes, and optionally in a folder, one file an entry, so they outlast the
process (``sofia-qa warm`` fills it for every chunk of the index). A damaged file is reported, deleted and
treated as missing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

log = logging.getLogger(__name__)

_MAGIC = b"SQAKV1\n"
_HEADER = struct.Struct("<II")  # number of tokens, number of state bytes


@dataclass
class Entry:
    tokens: np.ndarray  # int32, the prompt tokens the state has read
    nbytes: int
    path: Path | None = None  # on disk, when the cache has a folder
    state: bytes | None = None  # in memory (always, when the cache has no folder)


def common_prefix(a: Sequence[int] | np.ndarray, b: Sequence[int] | np.ndarray) -> int:
    """How many leading tokens ``a`` and ``b`` share."""
    x = np.asarray(a, dtype=np.int64)
    y = np.asarray(b, dtype=np.int64)
    n = min(len(x), len(y))
    if n == 0:
        return 0
    diff = np.flatnonzero(x[:n] != y[:n])
    return int(diff[0]) if len(diff) else n


def key_of(tokens: Sequence[int]) -> str:
    return hashlib.sha1(np.asarray(tokens, dtype=np.int32).tobytes()).hexdigest()[:20]


class PrefixCache:
    """States keyed by the tokens they have read; least recently used entries go first.

    ``max_bytes`` bounds the states kept (in memory, or on disk with ``folder``). With a folder only the
    token lists stay in memory; a state is read from its file when it is used.
    """

    def __init__(self, max_bytes: int, folder: Path | None = None) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.folder = Path(folder) if folder is not None else None
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        if self.folder is not None and self.max_bytes:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._scan()

    # -- disk
    def _scan(self) -> None:
        assert self.folder is not None
        found = []
        for path in self.folder.glob("*.kv"):
            try:
                with open(path, "rb") as f:
                    if f.read(len(_MAGIC)) != _MAGIC:
                        raise ValueError("not a sofia-qa state file")
                    n_tok, n_bytes = _HEADER.unpack(f.read(_HEADER.size))
                    tokens = np.frombuffer(f.read(4 * n_tok), dtype=np.int32)
                if len(tokens) != n_tok or path.stat().st_size != len(_MAGIC) + _HEADER.size + 4 * n_tok + n_bytes:
                    raise ValueError("the file is truncated")
            except (OSError, ValueError, struct.error) as e:
                log.warning("prefix cache: %s is damaged (%s); deleting it", path, e)
                path.unlink(missing_ok=True)
                continue
            found.append((path.stat().st_mtime_ns, path.stem, Entry(tokens=tokens.copy(), nbytes=n_bytes, path=path)))
        for _, key, entry in sorted(found, key=lambda t: t[0]):  # oldest first: the LRU order
            self._entries[key] = entry
        self._evict()

    def _read_state(self, entry: Entry) -> bytes | None:
        assert entry.path is not None
        try:
            with open(entry.path, "rb") as f:
                f.seek(len(_MAGIC) + _HEADER.size + 4 * len(entry.tokens))
                data = f.read()
            if len(data) != entry.nbytes:
                raise ValueError(f"{len(data)} state bytes, expected {entry.nbytes}")
            os.utime(entry.path)
            return data
        except (OSError, ValueError) as e:
            log.warning("prefix cache: cannot read %s (%s); dropping it", entry.path, e)
            return None

    def _write(self, key: str, tokens: np.ndarray, state: bytes) -> Path:
        assert self.folder is not None
        path = self.folder / f"{key}.kv"
        tmp = path.with_name(f".{key}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(_MAGIC)
                f.write(_HEADER.pack(len(tokens), len(state)))
                f.write(tokens.astype(np.int32).tobytes())
                f.write(state)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    # -- interface
    @property
    def nbytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    @property
    def largest(self) -> int:
        """Bytes of the largest state kept (0 when empty)."""
        return max((e.nbytes for e in self._entries.values()), default=0)

    def __len__(self) -> int:
        return len(self._entries)

    def best(self, tokens: Sequence[int], more_than: int = 0) -> tuple[np.ndarray, bytes, int] | None:
        """The stored (tokens, state, shared) whose tokens share the longest beginning with ``tokens``, if that
        beginning is longer than ``more_than`` tokens (what the model already holds)."""
        with self._lock:
            best_key, best_n = None, more_than
            for key, entry in self._entries.items():
                n = common_prefix(entry.tokens, tokens)
                if n > best_n:
                    best_key, best_n = key, n
            if best_key is None:
                self.misses += 1
                return None
            entry = self._entries[best_key]
            state = entry.state if entry.state is not None else self._read_state(entry)
            if state is None:
                self._drop(best_key)
                self.misses += 1
                return None
            self._entries.move_to_end(best_key)
            self.hits += 1
            return entry.tokens, state, best_n

    def put(self, tokens: Sequence[int], state: bytes) -> None:
        if not self.max_bytes or len(state) > self.max_bytes:
            return
        toks = np.asarray(tokens, dtype=np.int32).copy()
        key = key_of(toks)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            entry = Entry(tokens=toks, nbytes=len(state))
            if self.folder is None:
                entry.state = bytes(state)
            else:
                try:
                    entry.path = self._write(key, toks, state)
                except OSError as e:  # a full or read-only disk costs speed, never an answer
                    log.warning("prefix cache: cannot write to %s (%s); keeping this state in memory", self.folder, e)
                    entry.state = bytes(state)
            self._entries[key] = entry
            self._evict()

    def has(self, tokens: Sequence[int]) -> bool:
        return key_of(tokens) in self._entries

    def forget(self, tokens: Sequence[int]) -> None:
        """Drop the entry for exactly these tokens (its state could not be used)."""
        with self._lock:
            self._drop(key_of(tokens))

    def clear(self) -> None:
        with self._lock:
            for key in list(self._entries):
                self._drop(key)

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry.path is not None:
            entry.path.unlink(missing_ok=True)

    def _evict(self) -> None:
        total = sum(e.nbytes for e in self._entries.values())
        while total > self.max_bytes and self._entries:
            key, entry = next(iter(self._entries.items()))
            total -= entry.nbytes
            self._drop(key)
