"""What the embedding worker and its parent share: the byte framing on the pipe and the worker's OpenMP spin.

The protocol, over the child's stdin/stdout:
- after loading the model the child writes one byte ``R``;
- request: 4-byte little-endian length, then UTF-8 JSON ``{"op": "query" | "passages", "texts": [str, ...]}``;
- reply: one status byte (``0`` ok, ``1`` error), 4-byte length, then float32 rows (``len(texts)`` x dim) or a
  UTF-8 error message.
"""

from __future__ import annotations

from typing import BinaryIO

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
