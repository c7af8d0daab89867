"""Readers: one file -> one ``Document``, or a ``ReadError`` that names the file and why.

Markdown (with YAML front matter) and plain text (``read_text``), HTML and DOCX (``read_markup``, turned into
Markdown-like lines first), PDF (``read_pdf``, page by page, in a child process with a time limit). The limits come
from ``Settings`` (``max_file_mb``, ``max_pdf_pages``, ``read_timeout``).
"""

from __future__ import annotations

import hashlib
import os
import pickle
import subprocess
import sys
from pathlib import Path

from .config import Settings
from .errors import (BadFrontMatter, CorruptFile, EmptyFile, EncryptedPDF, NoTextLayer, ReadError, TooLarge,
                     TooSlow, UnsupportedFile)
from .read_markup import docx_to_markdown, html_to_markdown
from .read_pdf import PAGE_TIMEOUT, read_pdf
from .read_text import decode, from_markdown, split_front_matter
from .types import Document

__all__ = ["SUPPORTED", "read_document", "PAGE_TIMEOUT", "ReadError", "UnsupportedFile", "TooLarge", "EmptyFile",
           "EncryptedPDF", "CorruptFile", "NoTextLayer", "TooSlow", "BadFrontMatter"]

SUPPORTED = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".pdf": "pdf",
             ".html": "html", ".htm": "html", ".docx": "docx"}


def read_document(path: Path, doc_id: str | None = None, *, max_mb: float = Settings.max_file_mb,
                  max_pages: int = Settings.max_pdf_pages, timeout: float | None = Settings.read_timeout,
                  page_timeout: float | None = PAGE_TIMEOUT) -> Document:
    """``path`` as a ``Document`` named ``doc_id`` (default: the file name), or a ``ReadError`` saying why not.

    ``max_mb``, ``max_pages``: the limits (``TooLarge`` over either); ``timeout``: seconds a PDF may take to read in
    all, ``page_timeout``: per page (``TooSlow`` after either). The PDF is read in a child process; ``timeout=None``
    reads it in this process, where ``page_timeout`` only works on the main thread."""
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
        return read_pdf(path, data, doc_id, digest, max_pages, page_timeout)
    if kind == "docx":
        meta, body = {}, docx_to_markdown(path, data)
    elif kind == "html":
        meta, body = html_to_markdown(path, decode(path, data))
    elif kind == "markdown":
        meta, body = split_front_matter(path, decode(path, data))
    else:
        meta, body = {}, decode(path, data)
    return from_markdown(path, doc_id, digest, meta, body, plain=(kind == "text"))


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
