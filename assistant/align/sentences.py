"""Proposal text -> the sentences that are compared with the priorities."""

from __future__ import annotations

import re

MAX_SENTENCES = 400  # a long proposal is cut here (embedding 400 sentences takes a few seconds)
MAX_SENTENCE_CHARS = 500
MIN_WORDS = 5  # shorter pieces are titles and headings ("Smart Mobility Sofia"), not evidence

SENT_END = re.compile(r"(?<=[.!?;])\s+(?=[\"'(«„A-ZА-Я0-9])")
BULLET = re.compile(r"^\s*(?:[#>*\-+•]+|\d+[.)])\s*")


def split_sentences(text: str) -> list[str]:
    """Proposal text -> sentences: lines first (headings, list items), then sentence ends.

    A paragraph wrapped over several lines is joined back; headings and list items stay separate.
    Markdown headings and pieces under ``MIN_WORDS`` words (titles, page numbers) are dropped;
    duplicates are kept once."""
    blocks: list[str] = []
    joinable = False
    for raw in (text or "").splitlines():
        if not raw.strip():
            joinable = False
            continue
        if raw.lstrip().startswith("#"):  # a Markdown heading is a title, not a sentence
            joinable = False
            continue
        marker = BULLET.match(raw)
        is_item = bool(marker and marker.group(0).strip())
        line = BULLET.sub("", raw).strip() if is_item else raw.strip()
        if joinable and not is_item and not blocks[-1].endswith((".", "!", "?", ":", ";")):
            blocks[-1] += " " + line
        else:
            blocks.append(line)
        joinable = True
    out: list[str] = []
    for block in blocks:
        for s in SENT_END.split(block):
            s = " ".join(s.split()).strip(" ;")
            if len(s.split()) >= MIN_WORDS:
                out.append(s[:MAX_SENTENCE_CHARS])
    return list(dict.fromkeys(out))[:MAX_SENTENCES]
