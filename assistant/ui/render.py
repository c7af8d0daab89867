"""HTML for the Gradio app: answers with citation cards, alignment tables, the document library.

Pure functions (no Gradio import), so they are easy to test. Every piece of document or user text
goes through ``esc`` (``html.escape``); links are kept only when they are http(s) URLs.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from html import escape
from typing import Iterable, Sequence
from urllib.parse import urlparse

from ..types import Answer, Citation, Passage

CSS = """
.sqa-answer{line-height:1.55}
.sqa-answer .sqa-text{margin:0 0 .6em 0}
.sqa-answer .sqa-notice{font-size:.85em;color:#8a5a00;background:#fff7e0;border-radius:6px;padding:.3em .6em;margin:.4em 0}
.sqa-refused .sqa-text{color:#7a1f1f}
.sqa-unconfirmed .sqa-text{color:#6b4a00}
.sqa-card.sqa-evidence{border-left-color:#e0a800}
.sqa-cards{display:flex;flex-direction:column;gap:.5em;margin-top:.4em}
.sqa-cards-title{font-size:.8em;font-weight:600;text-transform:uppercase;letter-spacing:.04em;color:#667;margin:.6em 0 .1em}
.sqa-card{border:1px solid #d9dee7;border-left:4px solid #2f6fdd;border-radius:8px;padding:.5em .75em;background:#fbfcfe;color:#1d2433}
.sqa-card.sqa-closest{border-left-color:#9aa3b2}
.sqa-card-head{margin:0;line-height:1.35}
.sqa-card-n{font-weight:700;color:#2f6fdd;margin-right:.2em}
.sqa-card-title{font-weight:600}
.sqa-card-where{font-size:.85em;color:#556;margin-top:.1em}
.sqa-card-body{font-size:.9em;margin:.35em 0;color:#2a3142}
.sqa-card-body mark{background:#fff1a8;padding:0 .1em;border-radius:2px;color:inherit}
.sqa-card-foot{display:flex;flex-wrap:wrap;gap:1em;font-size:.8em;color:#667;align-items:center}
.sqa-card-foot a{color:#2f6fdd}
.sqa-ref{font-size:.75em;vertical-align:super;color:#2f6fdd;font-weight:600}
.sqa-meta{font-size:.75em;color:#778;margin-top:.5em}
.sqa-summary{border:1px solid #d9dee7;border-radius:8px;padding:.7em .9em;margin-bottom:.8em;background:#fbfcfe;color:#1d2433}
.sqa-table{width:100%;border-collapse:collapse;font-size:.9em;color:#1d2433;border:none!important;background:#fff;border-radius:8px}
.sqa-table th{background:#eef2f8;text-align:left;padding:.45em .5em;font-weight:600;border:none!important;border-bottom:2px solid #d9dee7!important}
.sqa-table td{padding:.45em .5em;vertical-align:top;border:none!important;border-bottom:1px solid #e6e9ef!important;background:transparent}
.sqa-table tr.sqa-sub td:first-child{padding-left:1.6em}
.sqa-badge{display:inline-block;border-radius:999px;padding:.1em .6em;font-size:.8em;font-weight:600;white-space:nowrap}
.sqa-strong{background:#d8f3df;color:#14602c}
.sqa-partial{background:#fff0c7;color:#7a5600}
.sqa-none{background:#eceff3;color:#5b6472}
.sqa-aligned{background:#d8f3df;color:#14602c}
.sqa-partly{background:#fff0c7;color:#7a5600}
.sqa-notaligned{background:#fde2e2;color:#8a1c1c}
.sqa-quote{color:#3a4256;font-style:italic}
.sqa-muted{color:#8a93a3}
.sqa-empty{color:#667;padding:1em;border:1px dashed #cfd5df;border-radius:8px;text-align:center}
.sqa-status-ok{color:#14602c}
.sqa-status-err{color:#8a1c1c;white-space:pre-wrap}
"""


def esc(text) -> str:
    return escape("" if text is None else str(text), quote=True)


def safe_url(url: str | None) -> str:
    """The URL when it is an absolute http(s) link, else "" (no javascript:, data:, relative paths)."""
    if not url or not isinstance(url, str):
        return ""
    url = url.strip()
    try:
        parts = urlparse(url)
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or any(c in url for c in "\"'<> \n\r\t"):
        return ""
    return url


def link(url: str | None, label: str) -> str:
    u = safe_url(url)
    if not u:
        return ""
    return f'<a href="{esc(u)}" target="_blank" rel="noopener noreferrer nofollow">{esc(label)}</a>'


def highlight(text: str, quote: str, context: int = 260) -> str:
    """Escaped ``text`` around ``quote`` with the quote in <mark>; the quote alone when it is not found."""
    text = " ".join((text or "").split())
    quote = " ".join((quote or "").split())
    if not quote:
        return esc(_cut(text, 2 * context))
    i = text.find(quote)
    if i < 0:
        i = text.lower().find(quote.lower())
    if i < 0:
        return f"<mark>{esc(quote)}</mark>"
    start, end = max(0, i - context), min(len(text), i + len(quote) + context)
    before, inside, after = text[start:i], text[i:i + len(quote)], text[i + len(quote):end]
    if start > 0:
        before = "… " + before[before.find(" ") + 1:] if " " in before else "… " + before
    if end < len(text):
        after = after[: after.rfind(" ")] + " …" if " " in after else after + " …"
    return f"{esc(before)}<mark>{esc(inside)}</mark>{esc(after)}"


def _cut(text: str, n: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: text.rfind(" ", 0, n) if " " in text[:n] else n] + " …"


def where(section: str, page: str) -> str:
    parts = []
    if section:
        parts.append(f"§ {section}")
    if page:
        parts.append(f"p. {page}")
    return " · ".join(parts)


def _card(n, title, doc, place, body_html, url, score, closest=False) -> str:
    src = link(url, "source ↗")
    return (f'<div class="sqa-card{" sqa-closest" if closest else ""}">'
            f'<div class="sqa-card-head"><span class="sqa-card-n">[{esc(n)}]</span> '
            f'<span class="sqa-card-title">{esc(title or doc)}</span></div>'
            + (f'<div class="sqa-card-where">{esc(place)}</div>' if place else "") +
            f'<div class="sqa-card-body">{body_html}</div>'
            f'<div class="sqa-card-foot"><span>{esc(doc)}</span><span>score {float(score):.2f}</span>{src}</div>'
            f'</div>')


def citation_cards(citations: Sequence[Citation], passages: Sequence[Passage] = ()) -> str:
    if not citations:
        return ""
    by_n = {p.n: p for p in passages}
    cards = []
    for c in citations:
        p = by_n.get(c.n)
        body = highlight(p.text, c.quote) if p is not None and c.quote else (f"<mark>{esc(c.quote)}</mark>" if c.quote else "")
        cards.append(_card(c.n, c.title, c.doc, where(c.section, c.page), body, c.source_url, c.score))
    return '<div class="sqa-cards-title">Sources</div><div class="sqa-cards">' + "".join(cards) + "</div>"


def evidence_cards(evidence: Sequence[Citation], passages: Sequence[Passage], title: str) -> str:
    """The unconfirmed outcome's quoted sentences, each highlighted in its passage's card."""
    if not evidence:
        return ""
    by_n = {p.n: p for p in passages}
    cards = []
    for c in evidence:
        p = by_n.get(c.passage_n)
        body = highlight(p.text, c.quote) if p is not None else f"<mark>{esc(c.quote)}</mark>"
        cards.append(_card(c.n, c.title, c.doc, where(c.section, c.page), body, c.source_url,
                           p.score if p is not None else c.score).replace('class="sqa-card"', 'class="sqa-card sqa-evidence"', 1))
    return f'<div class="sqa-cards-title">{esc(title)}</div><div class="sqa-cards">' + "".join(cards) + "</div>"


def passage_cards(passages: Sequence[Passage], title: str = "Closest passages", limit: int = 4,
                  first: int | None = None) -> str:
    """Cards numbered by passage, or from ``first`` on (after evidence cards, whose [n] the text already uses)."""
    if not passages:
        return ""
    cards = [_card(p.n if first is None else first + i, p.chunk.title, p.doc_id, where(p.chunk.section, p.chunk.pages), esc(_cut(p.text, 420)),
                   (p.chunk.source_urls or ("",))[0], p.score, closest=True) for i, p in enumerate(list(passages)[:limit])]
    return f'<div class="sqa-cards-title">{esc(title)}</div><div class="sqa-cards">' + "".join(cards) + "</div>"


_MARKER = re.compile(r"\[(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\]")


def answer_text_html(text: str) -> str:
    """Escaped answer text; [n] markers become small superscript references; newlines become <br>."""
    out = esc((text or "").strip())
    out = _MARKER.sub(lambda m: f'<span class="sqa-ref">[{m.group(1)}]</span>', out)
    return out.replace("\n", "<br>")


def reading_html(passages: Sequence[Passage], text: str = "") -> str:
    """The message while the model reads and writes: the answer so far (or a note that it is coming) over the
    passages it is reading, so the sources are on screen from the first second."""
    head = (f'<div class="sqa-text">{answer_text_html(text)} ▍</div>' if text else
            f'<div class="sqa-text sqa-muted"><em>Found {len(passages)} passage{"s" if len(passages) != 1 else ""}; '
            f'the model is reading them, and the written answer with its citations follows.</em></div>')
    return (f'<div class="sqa-answer sqa-reading">{head}'
            + passage_cards(passages, title="Reading these passages", limit=len(passages)) + "</div>")


# card titles in the asker's language
TITLES = {
    "en": {"evidence": "The passage most likely to answer it", "closest": "Closest passages",
           "other": "Other close passages"},
    "bg": {"evidence": "Откъсът, който най-вероятно отговаря", "closest": "Най-близки откъси",
           "other": "Други близки откъси"},
}


def answer_html(answer: Answer) -> str:
    """One assistant message: text, notice, citation cards (or the quoted evidence, or the closest passages),
    timings. Written without blank lines so that a Markdown renderer passes it through as one HTML block."""
    titles = TITLES.get(answer.language, TITLES["en"])
    unconfirmed = answer.refused and answer.outcome == "unconfirmed"
    kind = " sqa-unconfirmed" if unconfirmed else (" sqa-refused sqa-not-found" if answer.refused else "")
    parts = [f'<div class="sqa-answer{kind}">',
             f'<div class="sqa-text">{answer_text_html(answer.text)}</div>']
    if answer.notice:
        parts.append(f'<div class="sqa-notice">{esc(answer.notice)}</div>')
    if unconfirmed:
        quoted = {c.passage_n for c in answer.evidence}
        parts.append(evidence_cards(answer.evidence, answer.passages, titles["evidence"]))
        parts.append(passage_cards([p for p in answer.passages if p.n not in quoted], title=titles["other"],
                                   first=len(answer.evidence) + 1))
    elif answer.refused:
        parts.append(passage_cards(answer.passages, title=titles["closest"]))
    else:
        parts.append(citation_cards(answer.citations, answer.passages))
    t = answer.timings or {}
    meta = []
    if "total" in t:
        meta.append(f"{t['total']:.1f} s")
    if "first_token" in t:
        meta.append(f"first words after {t['first_token']:.1f} s")
    if answer.standalone_question and answer.standalone_question != answer.question:
        meta.append(f"understood as: {answer.standalone_question}")
    if meta:
        parts.append(f'<div class="sqa-meta">{esc(" · ".join(meta))}</div>')
    parts.append("</div>")
    return "".join(parts)


# --------------------------------------------------------------------------- alignment

_OVERALL = {"aligned": "sqa-aligned", "partly aligned": "sqa-partly", "not aligned": "sqa-notaligned"}


def alignment_html(report) -> str:
    rows = []
    for r in report.rows:
        sentence = esc(r.sentence) if r.alignment != "none" else '<span class="sqa-muted">–</span>'
        if r.via:
            sentence += f' <span class="sqa-muted">(via {esc(r.via)})</span>'
        if r.citation:
            c = r.citation
            src = link(c.source_url, "source ↗")
            cite = (f'<span class="sqa-quote">“{esc(c.quote)}”</span><br><span class="sqa-muted">'
                    f'[{esc(c.n)}] {esc(c.doc)}{" · " + esc(where(c.section, c.page)) if c.section or c.page else ""}'
                    f'</span>{" · " + src if src else ""}')
        else:
            cite = '<span class="sqa-muted">no strategy passage in the index</span>'
        rows.append(f'<tr class="{"sqa-sub" if r.level == "ICT sub-priority" else ""}">'
                    f'<td><b>{esc(r.priority)}</b><br><span class="sqa-muted">{esc(r.level)}</span></td>'
                    f'<td><span class="sqa-badge sqa-{esc(r.alignment)}">{esc(r.alignment)}</span></td>'
                    f'<td>{r.score:.1f}</td><td>{sentence}</td><td>{cite}</td></tr>')
    notice = f'<div class="sqa-notice">{esc(report.notice)}</div>' if report.notice else ""
    return (f'<div class="sqa-summary" id="sqa-align-summary"><span class="sqa-badge {_OVERALL.get(report.overall, "")}">'
            f'{esc(report.overall)}</span> <b>{esc(report.source)}</b><br>{esc(report.summary)}{notice}'
            f'<div class="sqa-meta">{report.sentences} sentences compared in {report.seconds:.1f} s · strong ≥ '
            f'{report.thresholds["strong"]:g}, partial ≥ {report.thresholds["partial"]:g} '
            f'(z-scores of embedding similarity against off-topic text)</div></div>'
            f'<table class="sqa-table" id="sqa-align-table"><thead><tr><th>Strategy priority</th><th>Alignment</th>'
            f'<th>Score</th><th>Proposal sentence that shows it</th><th>Strategy passage</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


# --------------------------------------------------------------------------- library

def fmt_time(ts: float) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def pages_label(pages: Iterable[int]) -> str:
    pages = sorted(pages)
    return f"{pages[0]}–{pages[-1]}" if len(pages) > 1 else (str(pages[0]) if pages else "–")


def docs_html(states: dict) -> str:
    """The library table from ``Store.doc_states()``."""
    if not states:
        return '<div class="sqa-empty">The index is empty. Upload documents or re-index the corpus.</div>'
    rows = []
    for doc_id, st in sorted(states.items()):
        complete = st.count == st.expected and len(st.hashes) == 1
        rows.append(f'<tr><td><b>{esc(st.title or doc_id)}</b><br><span class="sqa-muted">{esc(doc_id)}</span></td>'
                    f'<td>{esc(st.doc_type)}</td><td>{st.count}{"" if complete else " <span class=sqa-partial>(incomplete)</span>"}</td>'
                    f'<td>{esc(pages_label(st.pages))}</td><td>{esc(fmt_time(st.indexed_at))}</td></tr>')
    total = sum(st.count for st in states.values())
    return (f'<table class="sqa-table" id="sqa-docs"><thead><tr><th>Document</th><th>Type</th><th>Chunks</th>'
            f'<th>Pages</th><th>Last indexed</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            f'<div class="sqa-meta">{len(states)} documents, {total} chunks</div>')


def status_html(message: str, ok: bool = True) -> str:
    return f'<div class="{"sqa-status-ok" if ok else "sqa-status-err"}">{esc(message)}</div>'
