"""Chunking: structure first (sections, pages, paragraphs), then size in the embedder's own tokens.

A section is split at paragraph breaks and paragraphs are packed greedily up to the budget. A
paragraph that alone exceeds the budget is cut by LlamaIndex's ``SentenceSplitter`` using the same
tokenizer, so no chunk is ever silently truncated by the embedding model.
"""

from __future__ import annotations

import hashlib
import re
from typing import Callable

from .context import chunk_header, document_label, document_period
from .types import Chunk, Document, Section

CountTokens = Callable[[str], int]

_PARA = re.compile(r"\n\s*\n")
MIN_TEXT_TOKENS = 48
# Raise when reading or chunking changes what a document's chunks hold (PDF cleaning, headers, packing): an index
# made by an older version then reads its documents again on the next ingest instead of keeping the old chunks.
READ_VERSION = 2


def chunk_document(doc: Document, count: CountTokens, budget: int, embed_model: str) -> list[Chunk]:
    """Split ``doc`` into chunks whose ``embed_text()`` fits in ``budget`` tokens."""
    spans: list[tuple[Section, int, int]] = []
    label, period = document_label(doc), document_period(doc)
    for section in doc.sections:
        header = chunk_header(label, period, section.heading_path)
        room = max(MIN_TEXT_TOKENS, budget - count(header) - 1)
        for start, end in _pack(section.text, count, room):
            spans.append((section, section.start + start, section.start + end))
    chunks = []
    for section, start, end in spans:
        text = doc.text[start:end]
        links = [url for pos, url in section.links if start <= pos < end] or [u for _, u in section.links]
        facts = tuple(fid for pos, fid in sorted(doc.fact_ids.items()) if start <= pos <= end + 1)
        chunks.append((section, start, end, text, tuple(dict.fromkeys(links)) or doc.sources, facts))
    out = []
    for section, start, end, text, urls, facts in chunks:
        content_hash = hashlib.sha256(text.encode()).hexdigest()
        chunk_id = hashlib.sha1(f"{doc.doc_id}\0{start}\0{content_hash}".encode()).hexdigest()[:20]
        out.append(Chunk(
            chunk_id=f"{doc.doc_id}::{chunk_id}", doc_id=doc.doc_id, title=doc.title, path=str(doc.path),
            doc_type=doc.doc_type, language=doc.language, text=text, start=start, end=end,
            heading_path=section.heading_path, page_start=section.page, page_end=section.page,
            source_urls=tuple(urls), content_hash=content_hash, doc_hash=doc.content_hash,
            doc_chunks=len(chunks), embed_model=embed_model, fact_ids=facts, period=period,
            read_version=READ_VERSION,
        ))
    return out


def _pack(text: str, count: CountTokens, room: int) -> list[tuple[int, int]]:
    """(start, end) spans of ``text``: whole paragraphs packed up to ``room`` tokens."""
    paras: list[tuple[int, int, int]] = []  # start, end, tokens
    pos = 0
    for m in list(_PARA.finditer(text)) + [None]:
        end = m.start() if m else len(text)
        if text[pos:end].strip():
            n = count(text[pos:end])
            if n <= room:
                paras.append((pos, end, n))
            else:
                paras.extend(_split_long(text, pos, end, count, room))
        pos = m.end() if m else len(text)
    spans: list[tuple[int, int]] = []
    cur_start, cur_end, cur_tokens = None, None, 0
    for start, end, n in paras:
        if cur_start is not None and cur_tokens + n <= room:
            cur_end, cur_tokens = end, cur_tokens + n
            continue
        if cur_start is not None:
            spans.append((cur_start, cur_end))
        cur_start, cur_end, cur_tokens = start, end, n
    if cur_start is not None:
        spans.append((cur_start, cur_end))
    return spans


def _split_long(text: str, start: int, end: int, count: CountTokens, room: int) -> list[tuple[int, int, int]]:
    from llama_index.core.node_parser import SentenceSplitter

    para = text[start:end]
    size = room
    while True:
        splitter = SentenceSplitter(chunk_size=size, chunk_overlap=min(24, size // 8),
                                    tokenizer=lambda s: range(count(s)), paragraph_separator="\n\n\n")
        pieces = splitter.split_text(para)
        located, cursor = [], 0
        for piece in pieces:
            i = para.find(piece, max(0, cursor - len(piece)))
            if i < 0:  # the splitter normalised whitespace: fall back to its first words
                i = para.find(piece[:40], cursor) if piece[:40] else -1
            i = cursor if i < 0 else i
            j = min(len(para), i + len(piece))
            located.append((start + i, start + j, count(para[i:j])))
            cursor = j
        if all(n <= room for _, _, n in located) or size <= 16:
            return located
        size = int(size * 0.85)
