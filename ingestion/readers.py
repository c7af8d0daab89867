"""Readers: one file -> one ``Document``, or a ``ReadError`` that names the file and why.

Markdown (with YAML front matter), PDF (pypdf, page by page), HTML, DOCX and plain text.
HTML and DOCX are first turned into Markdown-like lines (headings as ``#``) so that one
section splitter serves every structured format.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

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


class BadFrontMatter(ReadError):
    kind = "front-matter"


def read_document(path: Path, doc_id: str | None = None, *, max_mb: float = 50.0,
                  max_pages: int = 3000) -> Document:
    path = Path(path)
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        raise UnsupportedFile(path, f"unsupported file type {path.suffix or '(none)'!r}; "
                                    f"supported: {', '.join(sorted(SUPPORTED))}")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReadError(path, f"cannot open: {exc.strerror or exc}") from None
    if size > max_mb * 1024 * 1024:
        raise TooLarge(path, f"file is {size / 1024 / 1024:.1f} MB, over the {max_mb:g} MB limit "
                             f"(SOFIA_QA_MAX_FILE_MB)")
    if size == 0:
        raise EmptyFile(path, "file is empty")
    data = path.read_bytes()
    doc_id = doc_id or path.name
    digest = hashlib.sha256(data).hexdigest()
    if kind == "pdf":
        return _read_pdf(path, data, doc_id, digest, max_pages)
    if kind == "docx":
        meta, body = {}, _docx_to_markdown(path, data)
    elif kind == "html":
        meta, body = _html_to_markdown(path, _decode(path, data))
    elif kind == "markdown":
        meta, body = _split_front_matter(path, _decode(path, data))
    else:
        meta, body = {}, _decode(path, data)
    return _from_markdown(path, doc_id, digest, meta, body, plain=(kind == "text"))


# --------------------------------------------------------------------------- text formats

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
_CLEAN = re.compile(r"<!--(.*?)-->|\[([^\]\n]+)\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+\"[^\"]*\")?\s*\)", re.DOTALL)
_FACT_ID = re.compile(r"^\s*([A-Z]{1,3}\d{1,4})\s*$")


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
    end = text.find("\n---", 4)
    if end < 0:
        raise BadFrontMatter(path, "front matter opened with '---' but never closed")
    try:
        meta = yaml.safe_load(text[4:end]) or {}
    except yaml.YAMLError as exc:
        raise BadFrontMatter(path, f"front matter is not valid YAML: {exc}") from None
    if not isinstance(meta, dict):
        raise BadFrontMatter(path, "front matter must be a mapping of fields")
    body = text[end + 4:]
    body = body[body.find("\n") + 1:] if "\n" in body else ""
    return meta, body


def _clean(body: str) -> tuple[str, list[tuple[int, str]], dict[int, str]]:
    """Drop HTML comments and link targets; remember where links and fact ids were."""
    out: list[str] = []
    links: list[tuple[int, str]] = []
    facts: dict[int, str] = {}
    pos = 0
    length = 0
    for m in _CLEAN.finditer(body):
        piece = body[pos:m.start()]
        out.append(piece)
        length += len(piece)
        if m.group(2) is not None:  # [label](url)
            label, url = m.group(2), m.group(3).strip("<>")
            if url.startswith(("http://", "https://")):
                links.append((length, url))
            out.append(label)
            length += len(label)
        else:
            fid = _FACT_ID.match(m.group(1) or "")
            if fid:
                facts[length] = fid.group(1)
        pos = m.end()
    out.append(body[pos:])
    text = "".join(out)
    return text, links, facts


def _from_markdown(path: Path, doc_id: str, digest: str, meta: dict, body: str, plain: bool) -> Document:
    text, links, facts = _clean(body)
    if not text.strip():
        raise EmptyFile(path, "no text left to index")
    title = str(meta.get("title") or "").strip()
    headings = [] if plain else list(_HEADING.finditer(text))
    if not title:
        h1 = next((h for h in headings if len(h.group(1)) == 1), None)
        title = h1.group(2).strip() if h1 else path.stem.replace("-", " ").replace("_", " ")
    doc_type = str(meta.get("doc_type") or "reference").strip()
    if doc_type not in DOC_TYPES:
        raise BadFrontMatter(path, f"front matter field 'doc_type' is {doc_type!r}; "
                                   f"expected one of {', '.join(DOC_TYPES)}")
    sources = meta.get("sources") or []
    if isinstance(sources, str):
        sources = [sources]
    if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
        raise BadFrontMatter(path, "front matter field 'sources' must be a list of URLs")
    language = str(meta.get("language") or _guess_language(text))
    reviewed = meta.get("reviewed")

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    bounds = [(h.start(), h.end(), len(h.group(1)), h.group(2).strip()) for h in headings]
    cursor, path_now = 0, ()
    for h_start, h_end, level, name in bounds + [(len(text), len(text), 0, "")]:
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
                    sources=tuple(sources), reviewed=str(reviewed) if reviewed else None,
                    fact_ids=facts)


def _add_section(sections, text, start, end, heading_path, links, page=None):
    chunk = text[start:end]
    lead = len(chunk) - len(chunk.lstrip())
    body = chunk.strip()
    if not body:
        return
    s = start + lead
    sections.append(Section(text=body, start=s, heading_path=tuple(heading_path), page=page,
                            links=tuple(l for l in links if s <= l[0] < s + len(body))))


_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_LATIN = re.compile(r"[A-Za-z]")


def _guess_language(text: str) -> str:
    cyr, lat = len(_CYRILLIC.findall(text[:20000])), len(_LATIN.findall(text[:20000]))
    return "bg" if cyr > lat else "en"


# --------------------------------------------------------------------------- HTML, DOCX


def _html_to_markdown(path: Path, html: str) -> tuple[dict, str]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        if tag.name == "head":
            continue
        tag.decompose()
    title_tag = soup.find("title")
    meta = {"title": title_tag.get_text(" ", strip=True)} if title_tag and title_tag.get_text(strip=True) else {}
    if soup.head:
        soup.head.decompose()
    for level in range(1, 7):
        for h in soup.find_all(f"h{level}"):
            h.replace_with(f"\n\n{'#' * level} {h.get_text(' ', strip=True)}\n\n")
    for a in soup.find_all("a", href=True):
        href = a["href"]
        label = a.get_text(" ", strip=True)
        if href.startswith(("http://", "https://")) and label:
            a.replace_with(f"[{label.replace(']', ')')}]({href})")
    for block in soup.find_all(["p", "li", "tr", "div", "br", "blockquote", "pre"]):
        block.insert_after("\n\n" if block.name != "br" else "\n")
    text = soup.get_text()
    text = re.sub(r"[ \t\xa0]+", " ", text)
    text = re.sub(r"\n\s*\n\s*", "\n\n", text).strip()
    return meta, text


def _docx_to_markdown(path: Path, data: bytes) -> str:
    import io

    _check_zip(path, data)
    try:
        import docx  # python-docx

        d = docx.Document(io.BytesIO(data))
    except Exception as exc:  # python-docx raises many types for a broken package
        raise CorruptFile(path, f"not a readable DOCX file ({type(exc).__name__}: {exc})") from None
    lines = []
    for para in d.paragraphs:
        txt = para.text.strip()
        if not txt:
            continue
        style = (para.style.name if para.style is not None else "") or ""
        m = re.match(r"(?:Heading|Заглавие)\s*(\d)", style)
        if style == "Title":
            lines.append(f"# {txt}")
        elif m:
            lines.append(f"{'#' * min(6, int(m.group(1)) + 1)} {txt}")
        else:
            lines.append(txt)
    for table in d.tables:
        for row in table.rows:
            cells = [c.text.strip() for c in row.cells if c.text.strip()]
            if cells:
                lines.append(" | ".join(dict.fromkeys(cells)))
    return "\n\n".join(lines)


def _check_zip(path: Path, data: bytes, max_ratio: int = 100, max_total: int = 500 * 1024 * 1024) -> None:
    """Refuse decompression bombs before a library inflates them."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            total = sum(i.file_size for i in zf.infolist())
    except zipfile.BadZipFile:
        raise CorruptFile(path, "not a readable DOCX file (not a ZIP package)") from None
    if total > max_total or total > max(len(data), 1) * max_ratio:
        raise TooLarge(path, f"unpacks to {total / 1024 / 1024:.0f} MB from {len(data) / 1024:.0f} KB; "
                             "refusing a likely decompression bomb")


# --------------------------------------------------------------------------- PDF


def _read_pdf(path: Path, data: bytes, doc_id: str, digest: str, max_pages: int) -> Document:
    import io
    import logging

    from pypdf import PdfReader

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
        n_pages = len(reader.pages)
    except ReadError:
        raise
    except Exception as exc:  # pypdf raises many types (PdfReadError, LimitReachedError, KeyError, ...)
        raise CorruptFile(path, f"PDF cannot be parsed ({type(exc).__name__}: {exc})") from None
    if n_pages == 0:
        raise EmptyFile(path, "PDF has no pages")
    if n_pages > max_pages:
        raise TooLarge(path, f"PDF has {n_pages} pages, over the {max_pages} page limit (SOFIA_QA_MAX_PDF_PAGES)")
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
            raw = reader.pages[number - 1].extract_text() or ""
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
