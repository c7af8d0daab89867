"""The entry points: a proposal's text or file -> ``AlignmentReport``."""

from __future__ import annotations

import time
from pathlib import Path

from ingestion.config import Settings

from .citations import strategy_citations
from .priorities import Priorities, load_priorities
from .report import AlignmentReport, AlignmentRow, summarize
from .scoring import example_votes, level, score_sentences
from .sentences import MAX_SENTENCES, split_sentences


def align(text: str, retriever, embedder, *, source: str = "pasted text", settings: Settings | None = None,
          priorities: Priorities | None = None) -> AlignmentReport:
    """Score ``text`` against ``priorities`` (default: the file named by ``settings.priorities_file``, else the
    packaged one); raises ``ValueError`` for a text without sentences and ``PrioritiesError`` for a bad file."""
    t0 = time.perf_counter()
    sentences = split_sentences(text)
    if not sentences:
        raise ValueError("the proposal has no sentences to compare (it is empty or only headings)")
    if priorities is None:
        priorities = load_priorities(settings.priorities_file if settings else None)
    best, arg = score_sentences(sentences, embedder, priorities)
    gain, like = example_votes(sentences, embedder, priorities)  # the nearest judged proposals (tenth round)

    cites = strategy_citations(retriever, priorities)

    rows: list[AlignmentRow] = []
    for i, p in enumerate(priorities):
        score, j, via = float(best[i]), int(arg[i]), ""
        subs = priorities.children(p.id)
        if subs:  # an umbrella area is as aligned as its best sub-priority
            k = max(subs, key=lambda k: best[k])
            if best[k] > score:
                score, j, via = float(best[k]), int(arg[k]), priorities.items[k].name
        score += float(gain[i])  # on the row's own score, the umbrella's too (its examples are generic ICT work)
        rows.append(AlignmentRow(priority_id=p.id, priority=p.name, level=p.level, alignment=level(score),
                                 score=score, sentence=sentences[j] if j >= 0 else "", citation=cites[p.id],
                                 via=via if level(score) != "none" else "",
                                 examples=list(like[i]) if gain[i] > 0 else []))
    overall, summary = summarize(rows, priorities.umbrellas)
    notice = "" if any(cites.values()) else \
        "The index holds no strategy document (doc_type 'strategy'), so no strategy passage is cited."
    if len(sentences) == MAX_SENTENCES:
        notice = (notice + f" Only the first {MAX_SENTENCES} sentences were compared.").strip()
    return AlignmentReport(source=source, overall=overall, summary=summary, rows=rows, sentences=len(sentences),
                           seconds=time.perf_counter() - t0, notice=notice)


def align_file(path: Path, retriever, embedder, *, settings: Settings | None = None,
               priorities: Priorities | None = None, max_mb: float | None = None, max_pages: int | None = None,
               read_timeout: float | None = None) -> AlignmentReport:
    """A proposal file (PDF, DOCX, TXT, MD, HTML) -> report; raises ``ReadError`` for unreadable files, including
    files over the size or page limits (``settings`` or the explicit values; default: ``Settings()``)."""
    from ingestion.readers import read_document

    s = settings or Settings()
    path = Path(path)
    doc = read_document(path, path.name, max_mb=s.max_file_mb if max_mb is None else max_mb,
                        max_pages=s.max_pdf_pages if max_pages is None else max_pages,
                        timeout=s.read_timeout if read_timeout is None else read_timeout)
    return align(doc.text, retriever, embedder, source=path.name, settings=s, priorities=priorities)
