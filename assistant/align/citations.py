"""The strategy passage that states each priority, found in the index and cached until the index changes."""

from __future__ import annotations

import re
import threading

from ..types import Citation
from .priorities import Priorities, Priority
from .sentences import BULLET, SENT_END


def _quote(text: str, name: str) -> str:
    """The sentence of a passage that names the priority best (with its lead-in when it is a list item)."""
    words = set(re.findall(r"\w{3,}", name.lower()))
    units: list[tuple[str, str]] = []  # (sentence, the raw line it came from)
    for raw in text.splitlines():
        if raw.strip():
            units += [(s.strip(), raw) for s in SENT_END.split(raw.strip()) if s.strip()]
    if not units:
        return ""
    scores = [len(words & set(re.findall(r"\w{3,}", u.lower()))) / max(1, len(words)) for u, _ in units]
    i = max(range(len(units)), key=lambda k: (scores[k], -k))
    sentence, raw = units[i]
    if BULLET.match(raw) and BULLET.match(raw).group(0).strip():
        sentence = BULLET.sub("", sentence).strip()
        lead = next((u for u, r in reversed(units[:i]) if u.endswith(":")), "")
        if lead:
            sentence = f"{lead} … {sentence}"
    return sentence[:400]


def strategy_citation(priority: Priority, retriever, strategy_doc: str) -> Citation | None:
    """The best strategy passage for ``priority.strategy_query``, from ``strategy_doc`` when it is among the first."""
    passages = retriever.retrieve(priority.strategy_query, 4, {"doc_type": ["strategy"]})
    if not passages:
        return None
    p = next((p for p in passages if p.doc_id == strategy_doc), passages[0])
    return Citation(n=0, doc=p.doc_id, title=p.chunk.title, page=p.chunk.pages, section=p.chunk.section,
                    quote=_quote(p.text, priority.name), source_url=(p.chunk.source_urls or ("",))[0],
                    score=round(float(p.score), 4))


_CITES: dict[tuple[int, Priorities], tuple[object, dict[str, Citation | None]]] = {}
_CITES_LOCK = threading.Lock()


def strategy_citations(retriever, priorities: Priorities) -> dict[str, Citation | None]:
    """The strategy passage of every priority (they do not depend on the proposal, so they are
    cached per retriever and priorities until the index changes). ``n`` numbers distinct passages from 1."""
    try:
        state = (retriever.store.count(), tuple(sorted(retriever.store.doc_states())))
    except Exception:  # a retriever without a store (tests): no caching
        state = None
    key = (id(retriever), priorities)
    with _CITES_LOCK:
        hit = _CITES.get(key)
        if hit is not None and state is not None and hit[0] == state:
            return hit[1]
    cites: dict[str, Citation | None] = {}
    numbers: dict[tuple, int] = {}
    for p in priorities:
        c = strategy_citation(p, retriever, priorities.strategy_doc)
        if c is not None:
            c.n = numbers.setdefault((c.doc, c.section, c.page), len(numbers) + 1)
        cites[p.id] = c
    with _CITES_LOCK:
        if len(_CITES) >= 8 and key not in _CITES:  # edited priorities files: drop the oldest entry
            del _CITES[next(iter(_CITES))]
        _CITES[key] = (state, cites)
    return cites
