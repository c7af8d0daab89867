"""HTML and DOCX -> Markdown-like text (headings as ``#`` lines, web links as ``[label](url)``), safe on hostile files."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .errors import CorruptFile, EmptyFile, TooLarge

_HTML_SKIP = {"script", "style", "noscript", "template", "head"}
_HTML_BREAKS = {"p": "\n\n", "li": "\n\n", "tr": "\n\n", "div": "\n\n", "blockquote": "\n\n", "pre": "\n\n",
                "ul": "\n\n", "ol": "\n\n", "table": "\n\n", "section": "\n\n", "article": "\n\n",
                "dt": "\n\n", "dd": "\n\n", "br": "\n", "td": " ", "th": " "}
_URL_UNSAFE = re.compile(r"[\s()\[\]<>]")


def html_to_markdown(path: Path, html: str) -> tuple[dict, str]:
    """HTML -> Markdown-like text with lxml (libxml2): linear time, any nesting depth up to 2048."""
    import lxml.etree
    import lxml.html

    parser = lxml.html.HTMLParser(encoding="utf-8", huge_tree=True, remove_comments=True, remove_pis=True)
    try:
        root = lxml.html.document_fromstring(html.encode("utf-8", "replace"), parser=parser)
    except lxml.etree.ParserError:  # "Document is empty": only whitespace or comments
        raise EmptyFile(path, "no text left to index") from None
    except (lxml.etree.LxmlError, ValueError) as exc:
        raise CorruptFile(path, f"HTML cannot be parsed ({type(exc).__name__}: {exc})") from None
    fatal = [e.message for e in parser.error_log if e.level_name == "FATAL"]
    if fatal:  # libxml2 stops at a resource limit (nesting deeper than 2048) and drops the rest
        raise CorruptFile(path, f"HTML cannot be parsed ({fatal[0].split(', use ')[0]})")
    title_tag = next(root.iter("title"), None)
    title = _html_text(title_tag, markdown=False) if title_tag is not None else ""
    text = _html_text(root, markdown=True)
    text = re.sub(r"[ \t\xa0]+", " ", text)
    text = re.sub(r" ?\n\s*\n\s*", "\n\n", text).strip()
    return ({"title": title} if title else {}), text


def _html_text(top: Any, *, markdown: bool) -> str:
    """The visible text under ``top``, walked with an explicit stack (no recursion limit).

    With ``markdown``, headings become ``#`` lines, web links ``[label](url)`` and blocks paragraphs;
    without, the text is one whitespace-normalised line (for titles, headings and link labels).
    """
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(top, False)]
    while stack:
        el, closing = stack.pop()
        tag = el.tag if isinstance(el.tag, str) else ""  # comments, processing instructions: no tag
        tail = "" if el is top else (el.tail or "")
        if closing:
            out += (_HTML_BREAKS.get(tag, "") if markdown else " " * (tag in _HTML_BREAKS), tail)
            continue
        if not tag or tag in _HTML_SKIP:
            out.append(tail)
            continue
        if markdown and tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            out += (f"\n\n{'#' * int(tag[1])} {_html_text(el, markdown=False)}\n\n", tail)
            continue
        if markdown and tag == "a":
            href, label = (el.get("href") or "").strip(), _html_text(el, markdown=False)
            if href.startswith(("http://", "https://")) and label:
                href = _URL_UNSAFE.sub(lambda m: quote(m.group()), href)  # keep "[label](url)" one link
                out += (f"[{label.replace('[', '(').replace(']', ')')}]({href})", tail)
                continue
        out.append(el.text or "")
        stack.append((el, True))
        stack.extend((child, False) for child in reversed(el))
    text = "".join(out)
    return text if markdown else " ".join(text.split())


def docx_to_markdown(path: Path, data: bytes) -> str:
    """DOCX -> Markdown-like text: Title and Heading styles become ``#`` lines, table rows ``a | b`` lines."""
    import io

    _check_zip(path, data)
    try:
        import docx  # python-docx
        from docx.enum.style import WD_STYLE_TYPE
        from docx.oxml.ns import qn

        d = docx.Document(io.BytesIO(data))
        styles = {s.style_id: s.name or "" for s in d.styles if s.type == WD_STYLE_TYPE.PARAGRAPH}
        lines = []
        # The body's XML in document order, not python-docx's table API: ``row.cells`` repeats a cell
        # once per ``gridSpan`` (a hostile gridSpan of 10^9 never ends) and walks vertical merges upwards.
        for block in d.element.body.iterchildren(qn("w:p"), qn("w:tbl")):
            if block.tag == qn("w:p"):
                txt = block.text.strip()
                if txt:
                    lines.append(_docx_line(txt, styles.get(block.style, "")))
                continue
            for row in block.tr_lst:
                cells = ["\n".join(p.text for p in tc.p_lst).strip() for tc in row.tc_lst]
                cells = [c for c in cells if c]
                if cells:
                    lines.append(" | ".join(dict.fromkeys(cells)))
    except Exception as exc:  # python-docx and lxml raise many types for a broken package
        raise CorruptFile(path, f"not a readable DOCX file ({type(exc).__name__}: {exc})") from None
    return "\n\n".join(lines)


def _docx_line(text: str, style: str) -> str:
    m = re.match(r"(?:Heading|Заглавие)\s*(\d)", style)
    if style == "Title":
        return f"# {text}"
    if m:
        return f"{'#' * min(6, int(m.group(1)) + 1)} {text}"
    return text


def _check_zip(path: Path, data: bytes, max_ratio: int = 100, max_total: int = 500 * 1024 * 1024) -> None:
    """Refuse decompression bombs before a library inflates them."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = sum(i.file_size for i in zf.infolist())
    except Exception:  # BadZipFile, but a mangled directory can also raise ValueError, EOFError, ...
        raise CorruptFile(path, "not a readable DOCX file (not a ZIP package)") from None
    if total > max_total or total > max(len(data), 1) * max_ratio:
        raise TooLarge(path, f"unpacks to {total / 1024 / 1024:.0f} MB from {len(data) / 1024:.0f} KB; "
                             "refusing a likely decompression bomb")
