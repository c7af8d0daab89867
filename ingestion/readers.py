"""Readers: one file -> one ``Document``, or a ``ReadError`` that names the file and why.

Markdown (with YAML front matter), PDF (pypdf, page by page), HTML, DOCX and plain text.
HTML and DOCX are first turned into Markdown-like lines (headings as ``#``) so that one
section splitter serves every structured format.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import hashlib
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from .types import DOC_TYPES, Document, Section

SUPPORTED = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".pdf": "pdf",
             ".html": "html", ".htm": "html", ".docx": "docx"}


class ReadError(Exception):
    """A file that cannot be indexed. ``str(err)`` names the file and the reason."""

    kind = "unreadable"

    def __init__(self, path: Path | str, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")

    def __reduce__(self):  # pickled as (path, reason), so the PDF reader's child process can send it back
        return type(self), (self.path, self.reason)


class UnsupportedFile(ReadError):
    kind = "unsupported"


class TooLarge(ReadError):
    kind = "too-large"


class EmptyFile(ReadError):
    kind = "empty"


class EncryptedPDF(ReadError):
    kind = "encrypted"


class CorruptFile(ReadError):
    kind = "corrupt"


class NoTextLayer(ReadError):
    kind = "no-text"


class TooSlow(ReadError):
    kind = "too-slow"


# pypdf bounds operations per page but not time: a 1 MB form object drawn 20 times on one page costs about
# 3 minutes of CPU here. So a PDF is read in a child process, which gives up on a page after PAGE_TIMEOUT
# seconds (an ordinary page takes well under one) and is killed after READ_TIMEOUT seconds in all.
READ_TIMEOUT = 600.0
PAGE_TIMEOUT = 20.0


class BadFrontMatter(ReadError):
    kind = "front-matter"


def read_document(path: Path, doc_id: str | None = None, *, max_mb: float = 50.0, max_pages: int = 3000,
                  timeout: float | None = READ_TIMEOUT, page_timeout: float | None = PAGE_TIMEOUT) -> Document:
    """``timeout``: seconds a PDF may take to read in all, ``page_timeout``: per page (``TooSlow`` after either).
    The PDF is read in a child process; ``timeout=None`` reads it in this process, where ``page_timeout`` only
    works on the main thread."""
    path = Path(path)
    kind = SUPPORTED.get(path.suffix.lower())
    if kind == "pdf" and timeout is not None:
        return _read_in_child(path, doc_id, max_mb, max_pages, timeout, page_timeout)
    if kind is None:
        raise UnsupportedFile(path, f"unsupported file type {path.suffix or '(none)'!r}; "
                                    f"supported: {', '.join(sorted(SUPPORTED))}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReadError(path, f"cannot open: {exc.strerror or exc}") from None
    limit = int(max_mb * 1024 * 1024)
    if size > limit:
        raise _too_large(path, size, max_mb)
    if size == 0:
        raise EmptyFile(path, "file is empty")
    try:
        with open(path, "rb") as fh:  # never more than the limit, even if the file grew since stat()
            data = fh.read(limit + 1)
    except OSError as exc:  # a directory named like a document, permissions, I/O errors
        raise ReadError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise _too_large(path, len(data), max_mb)
    doc_id = doc_id or path.name
    digest = hashlib.sha256(data).hexdigest()
    if kind == "pdf":
        return _read_pdf(path, data, doc_id, digest, max_pages, page_timeout)
    if kind == "docx":
        meta, body = {}, _docx_to_markdown(path, data)
    elif kind == "html":
        meta, body = _html_to_markdown(path, _decode(path, data))
    elif kind == "markdown":
        meta, body = _split_front_matter(path, _decode(path, data))
    else:
        meta, body = {}, _decode(path, data)
    return _from_markdown(path, doc_id, digest, meta, body, plain=(kind == "text"))


def _read_in_child(path: Path, doc_id: str | None, max_mb: float, max_pages: int, timeout: float,
                   page_timeout: float | None) -> Document:
    """``read_document`` in a fresh Python process with a wall-clock limit; its ``ReadError`` comes back as is."""
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    request = pickle.dumps((str(path), doc_id, max_mb, max_pages, page_timeout))
    try:
        proc = subprocess.run([sys.executable, "-c", "from ingestion.readers import _child_main; _child_main()"],
                              input=request, capture_output=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:  # run() has killed the child
        raise TooSlow(path, f"reading took longer than {timeout:g} s and was stopped (SOFIA_QA_READ_TIMEOUT); "
                            "the PDF may be built to waste CPU") from None
    try:
        result = pickle.loads(proc.stdout)
    except Exception:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1][:200]
        raise ReadError(path, f"the reader process failed (exit code {proc.returncode}: {last})") from None
    if isinstance(result, ReadError):
        raise result
    return result


def _child_main() -> None:
    """The child's side: a pickled request on stdin, the pickled ``Document`` or ``ReadError`` on stdout
    (anything a library prints goes to stderr, so it cannot corrupt the reply)."""
    out, sys.stdout = sys.stdout.buffer, sys.stderr
    path, doc_id, max_mb, max_pages, page_timeout = pickle.loads(sys.stdin.buffer.read())
    try:
        reply = read_document(Path(path), doc_id, max_mb=max_mb, max_pages=max_pages, timeout=None,
                              page_timeout=page_timeout)
    except ReadError as exc:
        reply = exc
    except Exception as exc:  # a reader bug: reported like any unreadable file, with its type
        reply = ReadError(path, f"unexpected {type(exc).__name__}: {exc}")
    out.write(pickle.dumps(reply))
    out.flush()


def _too_large(path: Path, size: int, max_mb: float) -> TooLarge:
    return TooLarge(path, f"file is {size / 1024 / 1024:.1f} MB, over the {max_mb:g} MB limit (SOFIA_QA_MAX_FILE_MB)")


# --------------------------------------------------------------------------- text formats

# Linear time on hostile text: no two repeats in a pattern can match the same characters, so nothing
# backtracks across the input (the old heading, link and comment patterns ran over 20 s on 80 KB).
_HEADING = re.compile(r"^(#{1,6})[ \t]+([^\n]*)$", re.MULTILINE)
_LINK = re.compile(r"\[([^\[\]\n]+)\]\(\s*(<[^<>\n]*>|[^)\s\[]+)(?:\s+\"[^\"\n]*\")?\s*\)")
_FACT_ID = re.compile(r"^\s*([A-Z]{1,3}\d{1,4})\s*$")
_MAX_FRONT_MATTER = 64 * 1024
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: fast, caps nesting depth


def _decode(path: Path, data: bytes) -> str:
    for enc in ("utf-8-sig", "cp1251"):  # cp1251: legacy Bulgarian Windows files
        try:
            return data.decode(enc).replace("\r\n", "\n").replace("\r", "\n")
        except UnicodeDecodeError:
            continue
    raise CorruptFile(path, "text is neither UTF-8 nor Windows-1251")


def _split_front_matter(path: Path, text: str) -> tuple[dict, str]:
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


def _from_markdown(path: Path, doc_id: str, digest: str, meta: dict, body: str, plain: bool) -> Document:
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
    language = _meta_text(path, meta, "language") or _guess_language(text)
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


_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN = re.compile(r"[A-Za-z]")


def _guess_language(text: str) -> str:
    cyr, lat = len(_CYRILLIC.findall(text[:20000])), len(_LATIN.findall(text[:20000]))
    return "bg" if cyr > lat else "en"


# --------------------------------------------------------------------------- HTML, DOCX


_HTML_SKIP = {"script", "style", "noscript", "template", "head"}
_HTML_BREAKS = {"p": "\n\n", "li": "\n\n", "tr": "\n\n", "div": "\n\n", "blockquote": "\n\n", "pre": "\n\n",
                "ul": "\n\n", "ol": "\n\n", "table": "\n\n", "section": "\n\n", "article": "\n\n",
                "dt": "\n\n", "dd": "\n\n", "br": "\n", "td": " ", "th": " "}
_URL_UNSAFE = re.compile(r"[\s()\[\]<>]")


def _html_to_markdown(path: Path, html: str) -> tuple[dict, str]:
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


def _docx_to_markdown(path: Path, data: bytes) -> str:
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


# --------------------------------------------------------------------------- PDF


class _PageTimeout(BaseException):
    """Raised by the alarm inside pypdf; a BaseException, so pypdf's own ``except Exception`` cannot eat it."""


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise ``_PageTimeout`` inside the block after ``seconds`` (a signal: main thread only, else no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise _PageTimeout

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)



def _read_pdf(path: Path, data: bytes, doc_id: str, digest: str, max_pages: int,
              page_timeout: float | None = None) -> Document:
    import io
    import logging

    from pypdf import PdfReader
    from pypdf.errors import LimitReachedError

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                ok = reader.decrypt("")
            except Exception:
                ok = 0
            if not ok:
                raise EncryptedPDF(path, "PDF is encrypted with a password; save an unprotected copy and add that")
        # the declared count first: refusing a 10,000-page file must not cost building its page list
        _check_pages(path, _declared_pages(reader), max_pages)
        n_pages = len(reader.pages)
    except ReadError:
        raise
    except Exception as exc:  # pypdf raises many types (PdfReadError, LimitReachedError, KeyError, ...)
        raise CorruptFile(path, f"PDF cannot be parsed ({type(exc).__name__}: {exc})") from None
    if n_pages == 0:
        raise EmptyFile(path, "PDF has no pages")
    _check_pages(path, n_pages, max_pages)
    title = path.stem
    try:
        meta_title = (reader.metadata or {}).get("/Title")
        if meta_title and str(meta_title).strip():
            title = str(meta_title).strip()
    except Exception:
        pass
    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    bad_pages = 0
    for number in range(1, n_pages + 1):
        try:
            with _time_limit(page_timeout):
                raw = reader.pages[number - 1].extract_text() or ""
        except _PageTimeout:
            raise TooSlow(path, f"page {number} took longer than {page_timeout:g} s to read and was stopped; "
                                "the PDF may be built to waste CPU") from None
        except LimitReachedError as exc:  # a bomb: stop now, every other page may point at the same stream
            raise TooLarge(path, f"page {number} exceeds a PDF safety limit ({exc}); "
                                 "refusing a likely decompression bomb") from None
        except Exception:  # one broken page must not lose the rest of the document
            bad_pages += 1
            raw = ""
        body = re.sub(r"[ \t\xa0]+", " ", raw)
        body = re.sub(r"\n\s*\n\s*", "\n\n", body).strip()
        if not body:
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        sections.append(Section(text=body, start=offset, page=number))
        parts.append(body)
        offset += len(body)
    text = "".join(parts)
    if len(re.sub(r"\s", "", text)) < 20:
        if bad_pages == n_pages:
            raise CorruptFile(path, "no page of the PDF could be read")
        raise NoTextLayer(path, f"PDF has {n_pages} page(s) but no extractable text - probably a scan; "
                                "run OCR (e.g. ocrmypdf) and add the result")
    return Document(doc_id=doc_id, path=path, title=title, text=text, sections=tuple(sections),
                    content_hash=digest, doc_type="reference", language=_guess_language(text),
                    pages=n_pages)


def _declared_pages(reader: Any) -> int:
    """The page count the PDF's page tree claims (0 if it claims nothing usable)."""
    try:
        count = reader.trailer["/Root"]["/Pages"]["/Count"]
        return count if isinstance(count, int) else 0
    except Exception:
        return 0


def _check_pages(path: Path, n_pages: int, max_pages: int) -> None:
    if n_pages > max_pages:
        raise TooLarge(path, f"PDF has {n_pages} pages, over the {max_pages} page limit (SOFIA_QA_MAX_PDF_PAGES)")
