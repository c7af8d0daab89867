"""Real-PDF hygiene over a document's page texts (pure: lists of strings in, lists of strings out).

Text extracted from a long official PDF carries things that are not content: the same running header and footer on
every page, a table of contents whose lines match every query that names a chapter, words broken at a line end
("strat-\\negy"), and tables whose rows a chunker may cut away from their header row. ``clean_pages`` takes them out
(or keeps them together) and finds the page number printed on each page, which is what a citation should show.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

from .context import MONTHS

EDGE_LINES = 3  # a running header or footer sits within the first or last few lines of a page's text
RUNNING_SHARE = 0.5  # ... and repeats (modulo digits) on at least this share of pages
RUNNING_MIN_PAGES = 3  # with fewer pages, a repeated line is as likely content as furniture
TOC_MIN_LINES = 4  # entries a table of contents needs before a page is taken for one
TOC_SHARE = 0.5  # ... and the share of the block's lines they must make up
TOC_PAGE_SLACK = 10  # an entry's page number is at most the page count plus this (front matter numbered apart)
# a table longer than this is cut into pieces that each start with the header row; it stays below the chunk budget
# (220 embedder tokens by default; figures and codes cost about one token per 3 characters)
TABLE_PIECE_CHARS = 600

_DIGITS = re.compile(r"\d+")
_DOT_LEADER = re.compile(r"(?:\.\s?|…\s?|_\s?){4,}\s*(?:\d{1,3}|[ivxlc]{1,6})\s*$", re.IGNORECASE)
# words, then one page number (not a year, and not the last of a row of figures)
_PAGE_COLUMN = re.compile(r"[^\W\d_].*?[^\W\d_)\]]\s+(\d{1,3})$")
_CONTENTS = re.compile(r"^(table of contents|contents|index|съдържание|page)$", re.IGNORECASE)
_NUMBER = re.compile(r"^[-−–(\$€£]*\d[\d,.\s]*%?\)?$")
_BROKEN = re.compile(r"([^\W\d_]+)[-\xad][ \t]*\n[ \t]*([^\W\d_]+)")  # a word cut at a line end
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)*")


@dataclass(frozen=True)
class CleanedPages:
    """The result of ``clean_pages``, one entry per input page."""

    texts: tuple[str, ...]  # cleaned page text ("" for a page that is not content, e.g. a table of contents)
    printed: tuple[int, ...]  # the page number to cite: the PDF's label, else the printed number, else the index
    removed: tuple[tuple[str, ...], ...]  # running header/footer lines taken off each page
    toc: tuple[int, ...]  # 0-based indexes of pages whose table-of-contents lines were dropped
    numbering: str  # where ``printed`` came from: "labels", "printed" or "physical"


def clean_pages(pages: Sequence[str], labels: Sequence[str | None] | None = None) -> CleanedPages:
    """Clean every page of one document. ``labels``: the PDF's own page labels when it defines them."""
    lines = [[ln.strip() for ln in p.split("\n")] for p in pages]
    running = running_keys(lines)
    removed: list[tuple[str, ...]] = []
    kept: list[list[str]] = []
    for page in lines:
        body, gone = strip_running(page, running)
        kept.append(body)
        removed.append(tuple(gone))
    toc = []
    for i, body in enumerate(kept):
        drop = toc_lines(body, len(pages) + TOC_PAGE_SLACK)
        if drop:
            toc.append(i)
            kept[i] = [ln for j, ln in enumerate(body) if j not in drop]
    words = vocabulary(pages)
    texts = tuple(keep_tables(join_hyphenated("\n".join(body), words)).strip() for body in kept)
    printed, numbering = page_numbers(len(pages), removed, labels)
    return CleanedPages(texts=texts, printed=printed, removed=tuple(removed), toc=tuple(toc), numbering=numbering)


# --------------------------------------------------------------------------- running headers and footers

def line_key(line: str) -> str:
    """A line with every number replaced, so "Page 3 of 40" and "Page 4 of 40" compare equal."""
    return " ".join(_DIGITS.sub("#", line.casefold()).split())


def _edges(page: list[str]) -> list[int]:
    """Indexes of the first and last few (``EDGE_LINES`` at most) non-empty lines."""
    filled = [i for i, ln in enumerate(page) if ln]
    k = max(1, min(EDGE_LINES, len(filled) // 3))  # on a short page, the middle is content whatever repeats
    return sorted(set(filled[:k] + filled[-k:]))


def running_keys(pages: Sequence[Sequence[str]]) -> set[str]:
    """Keys of lines that sit at the top or bottom of at least ``RUNNING_SHARE`` of the pages."""
    n = len(pages)
    if n < RUNNING_MIN_PAGES:
        return set()
    counts: Counter[str] = Counter()
    for page in pages:
        counts.update({line_key(page[i]) for i in _edges(list(page))})
    need = max(2, math.ceil(RUNNING_SHARE * n))
    return {k for k, c in counts.items() if c >= need and k}


def strip_running(page: list[str], running: set[str]) -> tuple[list[str], list[str]]:
    """The page without its running lines (only those at its edges), and the lines taken off. A page that would
    be left with nothing keeps them: furniture frames content, so a line that is all a page says is its content."""
    edges = set(_edges(page)) if running else set()
    gone = [i for i in edges if line_key(page[i]) in running]
    if not any(ln for i, ln in enumerate(page) if i not in gone):
        return list(page), []
    return [ln for i, ln in enumerate(page) if i not in gone], [page[i] for i in sorted(gone)]


def page_numbers(n: int, removed: Sequence[Sequence[str]],
                 labels: Sequence[str | None] | None = None) -> tuple[tuple[int, ...], str]:
    """The number a reader sees on each page, and where it came from.

    The PDF's numeric page labels come first. Else a number in the removed header/footer lines counts when
    printed = index + one constant offset holds on at least half of the pages (so a year or a form number in the
    header, which does not move with the page, is never taken). Else the 1-based physical index. A page before the
    printed numbering starts (a cover: index + offset < 1) or with a non-numeric label keeps its physical index.
    """
    physical = tuple(range(1, n + 1))
    if labels and any(lb for lb in labels):
        return tuple(int(lb) if lb and lb.isdigit() else i for i, lb in zip(physical, labels)), "labels"
    offsets: Counter[int] = Counter()
    for i, gone in zip(physical, removed):
        offsets.update({int(d) - i for line in gone for d in _DIGITS.findall(line) if len(d) <= 4})
    if offsets:
        offset, count = offsets.most_common(1)[0]
        if count >= max(2, math.ceil(0.5 * n)):
            return tuple(i + offset if i + offset >= 1 else i for i in physical), "printed"
    return physical, "physical"


# --------------------------------------------------------------------------- table of contents

def _toc_line(line: str, max_page: int) -> bool:
    """An entry: dot leaders to a page number, or words ending in a page number no larger than the document."""
    if _DOT_LEADER.search(line):
        return True
    m = _PAGE_COLUMN.match(line)
    return bool(m) and int(m.group(1)) <= max_page and not re.search(r"[$%€£]|\d,\d{3}", line)


def toc_lines(page: list[str], max_page: int) -> set[int]:
    """Indexes of the page's table-of-contents block: at least ``TOC_MIN_LINES`` entries close together, most
    of the block's lines, with dot leaders or page numbers that do not go down (a table of figures ends its lines
    in numbers too, but not in an ordered column of page-sized ones), plus a "Contents" heading just above."""
    entries = [i for i, ln in enumerate(page) if ln and _toc_line(ln, max_page)]
    clusters: list[list[int]] = []
    for i in entries:  # entries with at most 3 other lines between them (wrapped titles, part headings)
        if clusters and sum(1 for ln in page[clusters[-1][-1] + 1:i] if ln) <= 3:
            clusters[-1].append(i)
        else:
            clusters.append([i])
    drop: set[int] = set()
    for block in clusters:
        filled = sum(1 for ln in page[block[0]:block[-1] + 1] if ln)
        if len(block) < TOC_MIN_LINES or len(block) < TOC_SHARE * filled:
            continue
        numbers = [int(m.group(1)) for m in (_PAGE_COLUMN.match(page[i]) for i in block) if m]
        leaders = sum(bool(_DOT_LEADER.search(page[i])) for i in block)
        rising = sum(b >= a for a, b in zip(numbers, numbers[1:]))
        if leaders >= TOC_MIN_LINES or rising >= 0.8 * (len(numbers) - 1):
            heads = [j for j in range(max(0, block[0] - 4), block[0]) if _CONTENTS.match(page[j])]
            drop |= set(range(heads[0] if heads else block[0], block[-1] + 1))
    return drop


# --------------------------------------------------------------------------- hyphenation

def vocabulary(pages: Sequence[str]) -> Counter[str]:
    """Words (hyphenated compounds as one word) of a document, leaving out the words broken at a line end."""
    counts: Counter[str] = Counter()
    for text in pages:
        counts.update(m.group(0).casefold() for m in _WORD.finditer(_BROKEN.sub(" ", text)))
    return counts


def join_hyphenated(text: str, words: Counter[str] | None = None) -> str:
    """A word broken at a line end is joined: "strat-\\negy" -> "strategy". Real compounds keep their hyphen
    (only the line break goes): those before a capital or a digit ("Sofia-\\nCapital", "COVID-\\n19"), those the
    document spells with a hyphen elsewhere, those whose first part starts another hyphenated word there ("write-off"
    keeps "write-\\ndowns"), and those whose second part it uses as a word ("stock-\\nbased", "third-\\nparty"; a
    suffix such as "-ment" is no word), unless it also spells them as one."""
    words = words or Counter()

    def join(m: re.Match) -> str:
        head, tail = m.group(1), m.group(2)
        if not tail[0].islower():
            return m.group(0)
        h, t = head.casefold(), tail.casefold()
        compound = words[f"{h}-{t}"] or (len(t) > 2 and words[t]) or any(w.startswith(h + "-") for w in words)
        if words[h + t] or not compound:
            return head + tail
        return f"{head}-{tail}"

    return _BROKEN.sub(join, text)


# --------------------------------------------------------------------------- tables

def _is_row(line: str) -> bool:
    """A table row as text extraction writes it: cells on one line, a good share of them figures."""
    cells = line.split()
    if len(cells) < 2 or line.endswith((".", ":", ";")) and not _NUMBER.match(cells[-1]):
        return False
    numeric = sum(bool(_NUMBER.match(c)) for c in cells)
    figures = [c for c in cells if c not in ("$", "€", "£")]
    run = next((k for k, c in enumerate(reversed(figures)) if not _NUMBER.match(c)), len(figures))
    if 2 <= run < len(figures):
        return True  # a long row label ("Cash ... beginning of period") before two or more figures
    # a prose line may end in a year or a count too, but it has more words than a row's label
    short = bool(_NUMBER.match(cells[-1])) and len(cells) <= 12 and not line.rstrip().endswith(".")  # "chapter 2."
    return numeric >= 1 and (numeric / len(cells) >= 0.3 or short)


def keep_tables(text: str) -> str:
    """Each table (a header and two or more rows) becomes one paragraph, with no blank line inside, so the chunker
    keeps it whole; one longer than ``TABLE_PIECE_CHARS`` is cut into pieces that each repeat the header. The header
    is the line above the rows together with the column headings above it (periods and dates, which text extraction
    often splits over several lines), written as one line that names each column where it can."""
    lines = text.split("\n")
    out: list[str] = []
    i = 0
    while i < len(lines):
        rows, j = [], i
        while j < len(lines):
            line = lines[j].strip()
            if line and _is_row(lines[j]):
                rows.append(lines[j])
            elif rows and line and (_is_label(line) or _wraps(lines, j)) and _next_is_row(lines, j + 1):
                rows.append(lines[j])  # "Operating expenses:" between two groups of rows stays in the table
            elif line or not rows:  # a blank line between two rows stays inside the table
                break
            j += 1
        while rows and j > i and not lines[j - 1].strip():  # trailing blank lines belong after the table
            j -= 1
        if len(rows) < 2:
            out.append(lines[i])
            i += 1
            continue
        while out and not out[-1].strip():
            out.pop()
        if out and out[-1].strip().endswith(":") and _is_label(out[-1].strip()):
            rows.insert(0, out.pop())  # a group label ("Net sales:") belongs to the rows, not to every piece
        head = _header_lines(out)
        while len(rows) > 1 and _is_heading(rows[0]):
            head.append(rows.pop(0))  # "(In millions) Oct 1, 2022 Sep 25, 2021" reads like a row but heads columns
        header = column_header(" ".join(h.strip() for h in head)) if head else None
        out += ["", *_table_pieces(header, rows), ""]
        i = j
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip("\n")


HEADER_LINES = 14  # column headings split one date part per line ("July 1,", "2023", ...) take many lines
_PERIOD = re.compile(r"\b(?:(?:Three|Six|Nine|Twelve|\d{1,2}) (?:Months|Weeks)|(?:Fiscal )?(?:Quarter|Year)s?) Ended\b",
                     re.IGNORECASE)
_MONTH_DAY = re.compile(rf"\b({MONTHS} \d{{1,2}}),")
_MONTH_DAY_YEARS = re.compile(rf"\b({MONTHS} \d{{1,2}}),((?: \d{{4}})+)\b")
# what column headings are made of: periods, dates, years, units; anything else is prose or a row label
_UNIT = re.compile(r"\((?:in|dollars|amounts)\b[^)]*\)", re.IGNORECASE)
_HEADING_PART = re.compile(rf"{_UNIT.pattern}|\(unaudited\)|{_PERIOD.pattern}|{MONTHS}|"
                           r"\b(?:as of|ended|months|weeks|quarter|year|fiscal|and)\b|\b\d{1,2},|\b\d{4}\b|[,;]",
                           re.IGNORECASE)


def _is_heading(line: str) -> bool:
    """A line made only of column-heading parts (periods, dates, years, units)."""
    line = line.strip()
    return bool(line) and len(line) <= 160 and not _HEADING_PART.sub("", line).strip()


def _is_label(line: str) -> bool:
    """A row label standing alone between rows: short, no figures, not a sentence."""
    if re.search(r"\d", line) or line.endswith((".", ";")):
        return False
    return len(line) <= 160 if line.endswith(":") else len(line) <= 80 and len(line.split()) <= 10


def _wraps(lines: Sequence[str], j: int) -> bool:
    """A row label too long for its line: the next line goes on in lower case ("... intangible and other" /
    "assets (349) (1,206)")."""
    line = lines[j].strip()
    nxt = lines[j + 1].strip() if j + 1 < len(lines) else ""
    return len(line) <= 200 and not line.endswith((".", ";", ":")) and nxt[:1].islower()


def _next_is_row(lines: Sequence[str], j: int) -> bool:
    while j < len(lines) and not lines[j].strip():
        j += 1
    return j < len(lines) and _is_row(lines[j])


def _header_lines(out: list[str]) -> list[str]:
    """Takes the table's header lines off the end of ``out``: the line just above the rows (unless it is a
    sentence), and above it the lines made only of column headings."""
    head: list[str] = []
    while out and len(head) < HEADER_LINES:
        k = len(out) - 1
        while head and k > 0 and not out[k].strip():  # "(in millions)", a blank line, then the periods
            k -= 1
        line = out[k].strip()
        if not line or len(line) > 160 or line.endswith((".", ";")) or head and not _is_heading(line):
            break
        head.insert(0, line)
        del out[k:]
    return head


def column_header(header: str) -> str:
    """The header with each column named in full where its periods and dates can be paired up: "Three Months
    Ended Nine Months Ended July 1, 2023 June 25, 2022 July 1, 2023 June 25, 2022" becomes "Three Months Ended
    July 1, 2023 | Three Months Ended June 25, 2022 | Nine Months Ended July 1, 2023 | Nine Months Ended June 25,
    2022", so a small model reading one row can tell which figure is which period. Otherwise the header as given."""
    periods = [m.group(0) for m in _PERIOD.finditer(header)]
    days = list(_MONTH_DAY.finditer(header))
    years = re.findall(r"\b\d{4}\b", header[days[0].start():]) if days else []
    if len(days) >= 2 and len(years) == len(days):  # "July 1, 2023 June 25, 2022" or "July 30, July 31," + years
        dates = [f"{d.group(1)}, {y}" for d, y in zip(days, years)]
    elif (m := _MONTH_DAY_YEARS.search(header)) and len(m.group(2).split()) >= 2:
        dates = [f"{m.group(1)}, {y}" for y in m.group(2).split()]  # "September 30, 2022 2021": a year per column
    else:
        return header
    if not periods:  # a balance sheet "as of" two dates: the dates alone name the columns
        end = header.rfind(years[-1]) + 4 if len(days) == len(years) else len(header)
        return " ".join(x for x in (header[:days[0].start()].strip(), " | ".join(dates), header[end:].strip()) if x)
    if len(dates) % len(periods):
        return header
    per = len(dates) // len(periods)
    start = _PERIOD.search(header).start()
    lead = header[:start].strip()  # a title or unit above the headings stays
    unit = _UNIT.search(header, start)  # "(In Millions ...)" printed beside the dates
    cols = " | ".join(f"{periods[k // per]} {d}" for k, d in enumerate(dates))
    return " ".join(x for x in (lead, unit.group(0) if unit else "", cols) if x)


def _table_pieces(header: str | None, rows: list[str]) -> list[str]:
    """The table as paragraphs of at most ``TABLE_PIECE_CHARS`` (a single row may exceed it), header first in each."""
    head = [header] if header else []
    pieces, cur = [], list(head)
    for row in rows:
        if len(cur) > len(head) and len("\n".join([*cur, row])) > TABLE_PIECE_CHARS:
            pieces.append("\n".join(cur))
            cur = list(head)
        cur.append(row)
    pieces.append("\n".join(cur))
    return "\n\n".join(pieces).split("\n")
