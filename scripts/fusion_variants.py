"""Fusions tried against the product's ``assistant.retrieve.fuse`` when it was chosen (docs/PERFORMANCE-HISTORY.md):
relative-score fusion (the earlier default) and reciprocal-rank fusion. Kept here, outside the installed packages, so
the comparison can be run again; the product does not use them."""

from __future__ import annotations

from typing import Sequence

from ingestion.types import Chunk


def rsf(dense: Sequence[tuple[Chunk, float]], lexical: Sequence[tuple[Chunk, float]],
        dense_weight: float = 0.6) -> list[tuple[Chunk, float, float, float]]:
    """Relative-score fusion (the earlier default). Each list is scaled by its own best score, then mixed.

    Returns (chunk, fused, dense_cosine, bm25_relative) sorted by fused score, one row per chunk.
    """
    rows: dict[str, list] = {}
    top_d = max((s for _, s in dense), default=0.0)
    top_b = max((s for _, s in lexical), default=0.0)
    w_d = dense_weight if lexical else 1.0
    w_b = (1.0 - dense_weight) if dense else 1.0
    for chunk, s in dense:
        row = rows.setdefault(chunk.chunk_id, [chunk, 0.0, 0.0])
        row[1] = max(row[1], s)
    for chunk, s in lexical:
        row = rows.setdefault(chunk.chunk_id, [chunk, 0.0, 0.0])
        row[2] = max(row[2], s / top_b if top_b > 0 else 0.0)
    out = []
    for chunk, d, b in rows.values():
        rel_d = d / top_d if top_d > 0 else 0.0
        out.append((chunk, w_d * rel_d + w_b * b, d, b))
    out.sort(key=lambda r: (-r[1], r[0].chunk_id))
    return out


def rrf(dense: Sequence[tuple[Chunk, float]], lexical: Sequence[tuple[Chunk, float]], k: float = 60.0,
        dense_weight: float = 0.5) -> list[tuple[Chunk, float, float, float]]:
    """Reciprocal-rank fusion: a chunk scores ``w / (k + rank)`` in each list that holds it (rank from 1).

    Ranks, not scores, so neither retriever's scale decides. The fused score is divided by the best a chunk
    could reach (first in both lists), so it stays in 0..1. Returns (chunk, fused, dense_cosine, bm25_relative)
    sorted by fused score, one row per chunk; an empty list gives the other all the weight.
    """
    w_d = dense_weight if lexical else 1.0
    w_b = (1.0 - dense_weight) if dense else 1.0
    top_b = max((s for _, s in lexical), default=0.0)
    rows: dict[str, list] = {}
    for weight, hits, col in ((w_d, dense, 2), (w_b, lexical, 3)):
        seen: set[str] = set()
        for rank, (chunk, s) in enumerate(hits, start=1):
            if chunk.chunk_id in seen:  # a chunk found twice (glossary terms) counts at its best rank
                continue
            seen.add(chunk.chunk_id)
            row = rows.setdefault(chunk.chunk_id, [chunk, 0.0, 0.0, 0.0])
            row[1] += weight / (k + rank)
            row[col] = s if col == 2 else (s / top_b if top_b > 0 else 0.0)
    best = ((w_d if dense else 0.0) + (w_b if lexical else 0.0)) / (k + 1) or 1.0
    out = [(c, f / best, d, b) for c, f, d, b in rows.values()]
    out.sort(key=lambda r: (-r[1], r[0].chunk_id))
    return out
