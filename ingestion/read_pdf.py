"""PDF -> ``Document``, one section per page, with pypdf; bounded in pages and in time per page."""

from __future__ import annotations

import contextlib
import re
import signal
import threading
from pathlib import Path
from typing import Any

from .context import is_identifier
from .errors import CorruptFile, EmptyFile, EncryptedPDF, NoTextLayer, ReadError, TooLarge, TooSlow
from .pdf_clean import clean_pages
from .read_text import guess_language
from .types import Document, Section

# pypdf bounds operations per page but not time: a 1 MB form object drawn 20 times on one page costs minutes of CPU.
# So a PDF is read in a child process (``ingestion.readers``), which gives up on a page after PAGE_TIMEOUT seconds
# (an ordinary page takes well under one) and is killed after ``Settings.read_timeout`` seconds in all.
PAGE_TIMEOUT = 20.0
# pypdf refuses an array of more than 100,000 elements; Microsoft's 10-Q filings of 2023 (2.2 MB) hold one in their
# catalog and were skipped whole. A million elements is tens of MB of pypdf objects, and the child process's time
# limit bounds the rest.
MAX_ARRAY_ELEMENTS = 1_000_000


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


def read_pdf(path: Path, data: bytes, doc_id: str, digest: str, max_pages: int,
             page_timeout: float | None = None) -> Document:
    """The PDF in ``data`` page by page; ``TooLarge`` over ``max_pages``, ``TooSlow`` when a page takes longer than
    ``page_timeout`` seconds (main thread only)."""
    from pypdf import apply_configuration, overwrite_configuration

    with apply_configuration(overwrite_configuration(array_maximum_element_count=MAX_ARRAY_ELEMENTS)):
        return _read_pdf(path, data, doc_id, digest, max_pages, page_timeout)


def _read_pdf(path: Path, data: bytes, doc_id: str, digest: str, max_pages: int,
              page_timeout: float | None) -> Document:
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
        # an accession number as the title would be what every citation and prompt names the document by
        if meta_title and str(meta_title).strip() and not is_identifier(str(meta_title)):
            title = str(meta_title).strip()
    except Exception:
        pass
    raws: list[str] = []
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
        raws.append(re.sub(r"[ \t\xa0]+", " ", raw))
    # running headers/footers, contents pages, broken words and tables: see ingestion.pdf_clean
    cleaned = clean_pages(raws, _page_labels(reader, n_pages))
    parts: list[str] = []
    sections: list[Section] = []
    offset = 0
    for body, printed in zip(cleaned.texts, cleaned.printed):
        body = re.sub(r"\n\s*\n\s*", "\n\n", body).strip()
        if not body:
            continue
        if parts:
            parts.append("\n\n")
            offset += 2
        sections.append(Section(text=body, start=offset, page=printed))
        parts.append(body)
        offset += len(body)
    text = "".join(parts)
    if len(re.sub(r"\s", "", text)) < 20:
        if bad_pages == n_pages:
            raise CorruptFile(path, "no page of the PDF could be read")
        raise NoTextLayer(path, f"PDF has {n_pages} page(s) but no extractable text - probably a scan; "
                                "run OCR (e.g. ocrmypdf) and add the result")
    return Document(doc_id=doc_id, path=path, title=title, text=text, sections=tuple(sections),
                    content_hash=digest, doc_type="reference", language=guess_language(text),
                    pages=n_pages)


def _page_labels(reader: Any, n_pages: int) -> list[str | None] | None:
    """The page labels the PDF defines (its own printed numbering), or None when it defines none: pypdf
    makes up "1", "2", ... for a PDF without labels, which must not hide a number printed in a footer."""
    try:
        if "/PageLabels" not in reader.trailer["/Root"]:
            return None
        labels = list(reader.page_labels)
    except Exception:
        return None
    return labels if len(labels) == n_pages else None


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
