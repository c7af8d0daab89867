"""Markdown and plain text -> ``Document``: front matter, comments, links, fact ids and heading sections.

HTML and DOCX arrive here too, first turned into Markdown-like lines (``ingestion.read_markup``), so that one
section splitter serves every structured format.
"""

from __future__ import annotations

import bisect
import datetime
import re
from pathlib import Path

import yaml

from .errors import BadFrontMatter, CorruptFile, EmptyFile
from .language import detect_language
from .types import DOC_TYPES, Document, Section

# Linear time on hostile text: no two repeats in a pattern can match the same characters, so nothing
# backtracks across the input (the old heading, link and comment patterns ran over 20 s on 80 KB).
_HEADING = re.compile(r"^(#{1,6})[ \t]+([^\n]*)$", re.MULTILINE)
_LINK = re.compile(r"\[([^\[\]\n]+)\]\(\s*(<[^<>\n]*>|[^)\s\[]+)(?:\s+\"[^\"\n]*\")?\s*\)")
_FACT_ID = re.compile(r"^\s*([A-Z]{1,3}\d{1,4})\s*$")
_MAX_FRONT_MATTER = 64 * 1024
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: fast, caps nesting depth


def decode(path: Path, data: bytes) -> str:
    """File bytes as text with ``\n`` line ends: UTF-8 (BOM or not), else Windows-1251."""
    for enc in ("utf-8-sig", "cp1251"):  # cp1251: legacy Bulgarian Windows files
        try:
            return data.decode(enc).replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError:
            continue
    raise CorruptFile(path, "text is neither UTF-8 nor Windows-1251")


def split_front_matter(path: Path, text: str) -> tuple[dict, str]:
    """(YAML front matter as a dict, the body after it); ``BadFrontMatter`` names what is wrong with it."""
    if not text.startswith("---\n"):
        return {}, text
    end = text.find("\n---", 4, _MAX_FRONT_MATTER)
    if end < 0:
        if text.find("\n---", 4) > 0:
            raise BadFrontMatter(path, f"front matter is over {_MAX_FRONT_MATTER // 1024} KB")
        raise BadFrontMatter(path, "front matter opened with '---' but never closed")
    try:
        meta = yaml.load(text[4:end], Loader=_YAML_LOADER) or {}
    except yaml.YAMLError as exc:
        raise BadFrontMatter(path, f"front matter is not valid YAML: {exc}") from None
    except Exception as exc:  # PyYAML also raises ValueError (date 2026-13-45), RecursionError (deep nesting)
        raise BadFrontMatter(path, f"front matter is not valid YAML ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise BadFrontMatter(path, "front matter must be a mapping of fields")
    body = text[end + 4:]
    body = body[body.find("\n") + 1:] if "\n" in body else ""
    return meta, body


def _clean(body: str) -> tuple[str, list[tuple[int, str]], dict[int, str]]:
    """Drop HTML comments and link targets; remember where links and fact ids were.

    Comments are found with ``str.find`` rather than a regex: once one ``<!--`` has no ``-->`` after
    it, no later one has either, so the scan stays linear however many unclosed comments there are.
    """
    out: list[str] = []
    links: list[tuple[int, str]] = []
    facts: dict[int, str] = {}
    pos = 0
    length = 0
    comments = True
    while True:
        opening = body.find("<!--", pos) if comments else -1
        for m in _LINK.finditer(body, pos, len(body) if opening < 0 else opening):
            piece = body[pos:m.start()]
            label, url = m.group(1), m.group(2).strip("<>")
            out += (piece, label)
            if url.startswith(("http://", "https://")):
                links.append((length + len(piece), url))
            length += len(piece) + len(label)
            pos = m.end()
        if opening < 0:
            break
        closing = body.find("-->", opening + 4)
        if closing < 0:  # an unclosed comment stays text
            comments = False
            continue
        piece = body[pos:opening]
        out.append(piece)
        length += len(piece)
        fid = _FACT_ID.match(body[opening + 4:closing])
        if fid:
            facts[length] = fid.group(1)
        pos = closing + 3
    out.append(body[pos:])
    return "".join(out), links, facts


def _headings(text: str) -> list[tuple[int, int, int, str]]:
    """ATX headings as (start, end, level, name); a closing run of '#' after a space is dropped."""
    found = []
    for m in _HEADING.finditer(text):
        name = m.group(2).strip(" \t")
        bare = name.rstrip("#")
        if bare != name and (not bare or bare[-1] in " \t"):
            name = bare.rstrip(" \t")
        found.append((m.start(), m.end(), len(m.group(1)), name.strip()))
    return found


def _meta_text(path: Path, meta: dict, field: str) -> str:
    """A front matter field that must be one value (text, number or date), as text."""
    value = meta.get(field)
    if value is None or value == "":
        return ""
    if not isinstance(value, (str, int, float, datetime.date)):
        raise BadFrontMatter(path, f"front matter field {field!r} must be a single value, "
                                   f"not a {type(value).__name__}")
    return str(value).strip()


def from_markdown(path: Path, doc_id: str, digest: str, meta: dict, body: str, plain: bool) -> Document:
    """The ``Document`` for a Markdown-like ``body`` and its front matter ``meta``; ``plain``: no headings."""
    text, links, facts = _clean(body)
    if not text.strip():
        raise EmptyFile(path, "no text left to index")
    title = _meta_text(path, meta, "title")
    headings = [] if plain else _headings(text)
    if not title:
        h1 = next((name for _, _, level, name in headings if level == 1), None)
        title = h1 or path.stem.replace("-", " ").replace("_", " ")
    doc_type = _meta_text(path, meta, "doc_type") or "reference"
    if doc_type not in DOC_TYPES:
        raise BadFrontMatter(path, f"front matter field 'doc_type' is {doc_type!r}; "
                                   f"expected one of {', '.join(DOC_TYPES)}")
    sources = meta.get("sources") or []
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise BadFrontMatter(path, "front matter field 'sources' must be a list of URLs")
    language = _meta_text(path, meta, "language") or guess_language(text)
    reviewed = _meta_text(path, meta, "reviewed")

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    cursor, path_now = 0, ()
    for h_start, h_end, level, name in headings + [(len(text), len(text), 0, "")]:
        _add_section(sections, text, cursor, h_start, path_now, links)
        if level == 0:
            break
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, name))
        # a lone top-level heading that repeats the title adds nothing to a citation path
        path_now = tuple(n for lvl, n in stack if not (lvl == 1 and n == title))
        cursor = h_end
    return Document(doc_id=doc_id, path=path, title=title, text=text, sections=tuple(sections),
                    content_hash=digest, doc_type=doc_type, language=language,
                    sources=tuple(sources), reviewed=reviewed or None,
                    fact_ids=facts)


def _add_section(sections, text, start, end, heading_path, links, page=None):
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    body = chunk.strip()
    if not body:
        return
    s = start + lead
    # links are in text order: bisect, so many sections times many links stays cheap
    lo, hi = bisect.bisect_left(links, (s, "")), bisect.bisect_left(links, (s + len(body), ""))
    sections.append(Section(text=body, start=s, heading_path=tuple(heading_path), page=page,
                            links=tuple(links[lo:hi])))


def guess_language(text: str) -> str:
    """The document's language from its first 20,000 characters."""
    return detect_language(text[:20000])
