"""What a document is about, for the short header every chunk carries: its name and its period.

A figure in a quarterly filing or a strategy's budget table rarely says which quarter or programme period it
belongs to; the document's title, file name or first page does. ``document_period`` finds that period once per
document and ``document_label`` a readable name, so ``Chunk.embed_text`` can put both in front of every chunk
for the embedder and for BM25.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Protocol


class Paged(Protocol):
    """What is read of a ``types.Document`` (a protocol: types imports this module for ``Chunk.header``)."""

    title: str
    path: Path
    text: str
    pages: int | None

FIRST_PAGE_CHARS = 3000  # where a cover page states its period ("For the quarterly period ended ...")
MAX_PERIOD_CHARS = 48  # a header stays short: the chunk budget pays for it

MONTHS = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December|"
           r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec)\.?")
_DATE = rf"{MONTHS}\s+\d{{1,2}},?\s+(?:19|20)\d\d"
_YEAR = r"(?:19|20)\d\d"
# most specific first: a cover page's own statement beats a year range found in a title
_PATTERNS = (
    re.compile(rf"(?:for\s+the\s+)?(?P<p>(?:quarterly|fiscal|annual|reporting)\s+(?:period|year)\s+ended\s+{_DATE})",
               re.I),
    re.compile(rf"(?P<p>(?:three|six|nine|twelve)\s+months\s+ended\s+{_DATE})", re.I),
    re.compile(rf"(?P<p>\b(?:{_YEAR}\s*[-_ ]?\s*Q[1-4]|Q[1-4]\s*[-_ ]?\s*{_YEAR}|FY\s?{_YEAR}\s*Q[1-4])\b)", re.I),
    re.compile(rf"(?P<p>\b{_YEAR}\s*[\u2013\u2014/-]\s*(?:{_YEAR}|\d\d)\b)"),
    re.compile(rf"(?P<p>\b(?:Q[1-4]|H[12]|FY)\s?{_YEAR}\b)"),
    re.compile(rf"(?P<p>{_DATE})"),
)
_ID_LIKE = re.compile(r"^[\W\d_]*$|^[\w.-]*\d[\w.-]*$")  # "0000320193-22-000070", "doc_0042.pdf": no words


def find_period(text: str) -> str | None:
    """The first period a piece of text names, most specific kind first: "quarterly period ended July 1, 2023",
    "2023 Q2", "2021-2027", "Q3 2022", "July 1, 2023"; None when it names none."""
    if not text:
        return None
    for pattern in _PATTERNS:
        m = pattern.search(text)
        if m:
            period = re.sub(r"\s+", " ", m.group("p")).strip()
            period = period.replace("_", " ")
            return period[:MAX_PERIOD_CHARS]
    return None


def is_identifier(title: str) -> bool:
    """A title with no words: an accession or job number ("0000320193-23-000077"), not a name."""
    return bool(_ID_LIKE.match(" ".join((title or "").split())))


def label_for(title: str, path: str | Path | None, paged: bool = False) -> str:
    """A document's name for the header: its title, or its file name when the title is an identifier (many
    PDFs carry an accession or job number as their metadata title). A paged document's (PDF's) metadata title
    often omits what its file name says ("2023 Q1 INTC"), so that name goes first when the title lacks it."""
    title = " ".join((title or "").split())
    stem = " ".join(Path(path).stem.replace("_", " ").split()) if path else ""
    if not title or is_identifier(title):
        return stem or title
    if paged and stem and stem.lower() not in title.lower():
        return f"{stem}: {title}"
    return title


def document_label(doc: Paged) -> str:
    """``label_for`` a document."""
    return label_for(doc.title, doc.path, paged=bool(doc.pages))


def document_period(doc: Paged) -> str | None:
    """The period or date ``doc`` is about, from its title (front matter or PDF metadata), its file name or, for a
    paged document, the opening of its first page; the first one the label does not already say, else the first
    found; None when none names one. A Markdown file's opening is not read: it may date an event, not the file."""
    sources = [doc.title or "", doc.path.stem if doc.path else ""]
    if doc.pages:
        sources.append(doc.text[:FIRST_PAGE_CHARS])
    found = [p for p in map(find_period, sources) if p]
    label = document_label(doc).lower()
    return next((p for p in found if p.lower() not in label), found[0] if found else None)


# "Q1 2023", "Q3 of 2022", "Q4-2021", "2023 Q2", "2023-Q2", "FY2023 Q2": a quarter as report files and titles name it
_QUARTER = re.compile(rf"(?<!\d)(?:Q([1-4])\s*(?:[-_]\s*|of\s+)?({_YEAR})|({_YEAR})\s*[-_ ]?\s*Q([1-4]))(?!\d)",
                      re.IGNORECASE)


def quarters(text: str) -> set[tuple[int, int]]:
    """The (year, quarter) pairs ``text`` names as "Q1 2023" or "2023 Q1"."""
    return {(int(m.group(2) or m.group(3)), int(m.group(1) or m.group(4))) for m in _QUARTER.finditer(text or "")}


_MONTH_NUMBER = {m: i for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split(), start=1)}


def period_order(period: str | None) -> tuple[int, int, int] | None:
    """(year, month, day) the period ends, to tell the newer of two; None when it names no year.
    "quarterly period ended July 1, 2023" -> (2023, 7, 1); "2023 Q2" -> (2023, 6, 0); "2021-2027" -> (2027, 0, 0)."""
    if not period:
        return None
    m = re.search(rf"({MONTHS})\s+(\d{{1,2}}),?\s+({_YEAR})", period, re.I)
    if m:
        return int(m.group(3)), _MONTH_NUMBER[m.group(1)[:3].lower()], int(m.group(2))
    m = _QUARTER.search(period)
    if m:
        return int(m.group(2) or m.group(3)), 3 * int(m.group(1) or m.group(4)), 0
    years = re.findall(_YEAR, period)
    return (max(map(int, years)), 0, 0) if years else None


def series_name(path: str | Path) -> str:
    """What a file is without its period: "2023 Q1 INTC.pdf" and "2022 Q3 INTC.pdf" are both "intc", so the two
    are one series of reports; numbers, quarters and months are dropped ("board-minutes-2024-05" -> "board minutes")."""
    words = re.findall(r"[^\W\d_]+|\d+", Path(path).stem.lower())
    # a lone letter is what is left of "Q1" or "H2"
    return " ".join(w for w in words if len(w) > 1 and not w.isdigit() and w != "fy"
                    and not re.fullmatch(MONTHS, w, re.I))


def chunk_header(label: str, period: str | None, heading_path: tuple[str, ...]) -> str:
    """The first line of a chunk's embedded text: "label (period) > section > subsection"."""
    head = f"{label} ({period})" if period and period.lower() not in label.lower() else label
    return " > ".join((head, *heading_path))
