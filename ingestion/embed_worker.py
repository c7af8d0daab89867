"""multilingual-e5-small in a process of its own, whose OpenMP threads may spin between steps.

Why a process: the language model needs sleeping OpenMP threads, and the wait policy is read once per process;
sleeping threads are woken for every step of a short e5 call, so a question embeds faster where they spin. The spin
is bounded (``GOMP_SPINCOUNT``, a few milliseconds after each call), so the model beside it keeps its speed.
Measurements: docs/PERFORMANCE-HISTORY.md.

Started by ``ingestion.embedding.WorkerEmbedder``; speaks the protocol in ``ingestion.embed_protocol``.
It exits when its stdin closes (the parent ended).
"""

from __future__ import annotations

import json
import struct
import sys
from typing import BinaryIO

import numpy as np

from .embed_protocol import read_exact
from .embedding import E5Embedder


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
    embedder = E5Embedder(threads=threads)
    out = sys.stdout.buffer
    out.write(b"R")
    out.flush()
    serve(embedder, sys.stdin.buffer, out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
