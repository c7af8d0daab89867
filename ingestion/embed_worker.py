"""multilingual-e5-small in a process of its own, whose OpenMP threads may spin between steps.

Why a process: the language model needs sleeping OpenMP threads (``OMP_WAIT_POLICY=PASSIVE``; spinning ones write
2x slower whenever anything else runs, ``benchmarks/bench_llm.py --load both``), and the wait policy is read once
per process. Sleeping threads are woken for every step of a short e5 call: a question took 30 ms to embed in-process and
18 ms here with ``GOMP_SPINCOUNT=300000`` (p95 44 against 31 ms, the same vectors; 2026-11-27). The spin is bounded
(libgomp counts about 100,000 spins a millisecond: some 3 ms after each call), so the model beside it keeps
its speed.

Started by ``ingestion.embedding.WorkerEmbedder``; speaks over stdin/stdout:
- after loading the model it writes one byte ``R``;
- request: 4-byte little-endian length, then UTF-8 JSON ``{"op": "query" | "passages", "texts": [str, ...]}``;
- reply: one status byte (``0`` ok, ``1`` error), 4-byte length, then float32 rows (``len(texts)`` x dim) or a
  UTF-8 error message.
It exits when its stdin closes (the parent ended).
"""

from __future__ import annotations

import json
import struct
import sys
from typing import BinaryIO

import numpy as np

SPINCOUNT = "300000"  # libgomp's own default spin, bounded; set by the parent in the child's environment


def read_exact(stream: BinaryIO, n: int) -> bytes:
    """``n`` bytes, or fewer only at the end of the stream."""
    parts, got = [], 0
    while got < n:
        part = stream.read(n - got)
        if not part:
            break
        parts.append(part)
        got += len(part)
    return b"".join(parts)


def serve(embedder, inp: BinaryIO, out: BinaryIO) -> None:
    """Answer requests until ``inp`` ends. A bad request gets an error reply; the loop goes on."""
    while True:
        head = read_exact(inp, 4)
        if len(head) < 4:
            return
        (size,) = struct.unpack("<I", head)
        body = read_exact(inp, size)
        try:
            req = json.loads(body.decode("utf-8"))
            texts = req["texts"]
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("texts must be a list of strings")
            if req["op"] == "query":
                rows = np.stack([embedder.embed_query(t) for t in texts]) if texts else np.zeros((0, embedder.dim))
            elif req["op"] == "passages":
                rows = embedder.embed_passages(texts) if texts else np.zeros((0, embedder.dim))
            else:
                raise ValueError(f"unknown op {req['op']!r}")
            payload, status = np.ascontiguousarray(rows, dtype=np.float32).tobytes(), 0
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            payload, status = f"{type(exc).__name__}: {exc}".encode("utf-8"), 1
        out.write(bytes([status]) + struct.pack("<I", len(payload)) + payload)
        out.flush()


def main(argv: list[str]) -> int:
    threads = int(argv[0]) if argv and argv[0] != "None" else None
    from .embedding import E5Embedder

    embedder = E5Embedder(threads=threads)
    out = sys.stdout.buffer
    out.write(b"R")
    out.flush()
    serve(embedder, sys.stdin.buffer, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
