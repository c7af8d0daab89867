"""The alignment result (one row per priority), its summary sentence and its JSON and Markdown forms."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Collection

from ..types import Citation
from .priorities import HORIZONTAL, VERTICAL
from .scoring import PARTIAL_Z, STRONG_Z


@dataclass
class AlignmentRow:
    priority_id: str
    priority: str
    level: str
    alignment: str  # "strong", "partial" or "none"
    score: float  # best z-score against the background (docs/ALIGNMENT.md)
    sentence: str  # the proposal sentence that shows it (the closest one when alignment is "none")
    citation: Citation | None  # the strategy passage that states the priority
    via: str = ""  # for an umbrella area: the sub-priority its score comes from
    examples: list[str] = field(default_factory=list)  # ids of the nearby judged examples that raised the score

    def to_json(self) -> dict:
        d = asdict(self)
        d["score"] = round(self.score, 3)
        return d


@dataclass
class AlignmentReport:
    source: str
    overall: str  # "aligned", "partly aligned" or "not aligned"
    summary: str
    rows: list[AlignmentRow]
    sentences: int  # how many proposal sentences were compared
    thresholds: dict[str, float] = field(default_factory=lambda: {"strong": STRONG_Z, "partial": PARTIAL_Z})
    seconds: float = 0.0
    notice: str = ""

    def row(self, priority_id: str) -> AlignmentRow:
        return next(r for r in self.rows if r.priority_id == priority_id)

    def to_json(self) -> dict:
        return {"source": self.source, "overall": self.overall, "summary": self.summary,
                "sentences": self.sentences, "thresholds": self.thresholds, "seconds": round(self.seconds, 3),
                "notice": self.notice, "rows": [r.to_json() for r in self.rows]}

    def to_markdown(self) -> str:
        lines = [f"# Alignment with Sofia RIS3: {_md(self.source)}", "",
                 f"**Overall: {self.overall}.** {_md(self.summary)}", ""]
        if self.notice:
            lines += [f"> {_md(self.notice)}", ""]
        lines += ["| Priority | Level | Alignment | Score | Proposal sentence | Strategy passage |",
                  "|---|---|---|---:|---|---|"]
        for r in self.rows:
            sentence = _md(r.sentence) if r.alignment != "none" else "–"
            if r.via:
                sentence += f" (via {_md(r.via)})"
            if r.examples and r.alignment != "none":
                sentence += f" (like examples {_md(', '.join(r.examples[:3]))})"
            cite = f"“{_md(r.citation.quote)}” [{r.citation.n}]" if r.citation else "–"
            lines.append(f"| {_md(r.priority)} | {r.level} | {r.alignment} | {r.score:.1f} | {sentence} | {cite} |")
        cited: dict[int, Citation] = {}
        for r in self.rows:
            if r.citation:
                cited.setdefault(r.citation.n, r.citation)
        if cited:
            lines += ["", "Strategy passages:", ""]
            for n, c in sorted(cited.items()):
                where = c.section or (f"p. {c.page}" if c.page else "")
                url = f" <{c.source_url}>" if c.source_url.startswith(("http://", "https://")) else ""
                lines.append(f"{n}. {_md(c.title)}{' > ' + _md(where) if where else ''} ({c.doc}){url}")
        lines += ["", f"_Scores are z-scores of embedding similarity against off-topic text: strong >= "
                      f"{self.thresholds['strong']:g}, partial >= {self.thresholds['partial']:g}. "
                      f"{self.sentences} proposal sentences compared; no language model was used._", ""]
        return "\n".join(lines)


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def summarize(rows: list[AlignmentRow], umbrellas: Collection[str]) -> tuple[str, str]:
    """Overall verdict and a short deterministic summary built from the rows (``umbrellas``: ids of the areas
    that repeat their best sub-priority, so they are not counted again)."""
    specific = [r for r in rows if r.priority_id not in umbrellas]
    strong = [r for r in specific if r.alignment == "strong"]
    partial = [r for r in specific if r.alignment == "partial"]
    names = lambda rs: ", ".join(f"{r.priority} ({r.level})" for r in sorted(rs, key=lambda r: -r.score))
    if strong:
        overall = "aligned"
    elif partial:
        overall = "partly aligned"
    else:
        overall = "not aligned"
    parts = []
    if strong:
        parts.append(f"Strongly aligned with {len(strong)} of {len(specific)} priorities: {names(strong)}.")
    if partial:
        parts.append(f"Partly aligned with {names(partial)}.")
    if not strong and not partial:
        parts.append(f"No sentence of the proposal matches any of the {len(specific)} Sofia RIS3 priorities; "
                     "the committee should ask how the proposal relates to the strategy.")
        return overall, " ".join(parts)
    verticals = [r.priority for r in rows if r.level == VERTICAL and r.alignment != "none"]
    horizontals = [r.priority for r in rows if r.level == HORIZONTAL and r.alignment != "none"]
    policy = ""
    if horizontals:
        policy = (f"the horizontal polic{'ies' if len(horizontals) > 1 else 'y'} of "
                  + " and ".join(h[:1].lower() + h[1:] for h in horizontals))
    if verticals:
        parts.append(f"It falls under the vertical priority area{'s' if len(verticals) > 1 else ''} "
                     f"{' and '.join(repr(v) for v in verticals)}"
                     + (f" and supports {policy}." if policy else "."))
    elif policy:
        parts.append(f"It supports {policy} but no vertical priority area.")
    return overall, " ".join(parts)
