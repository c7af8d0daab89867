"""The Library tab's upload checks: safe file names, size and type limits, and a read before anything is replaced."""

from __future__ import annotations

import os
import re
import shutil
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from ingestion.config import Settings
from ingestion.readers import SUPPORTED, ReadError, read_document

STAGING = ".staging"  # hidden folder inside upload_dir: files are checked here before they replace anything
MAX_NAME_BYTES = 150  # an uploaded file's saved name, in UTF-8 bytes (file systems allow 255)


def safe_upload_name(raw: str) -> str:
    """A file name safe to save in the upload folder: no folders, no '..', not hidden, no control characters,
    not starting with '-', supported type, at most ``MAX_NAME_BYTES`` bytes (Cyrillic and CJK letters are kept)."""
    name = unicodedata.normalize("NFC", str(raw or "")).replace("\\", "/").split("/")[-1].strip()
    stem, suffix = os.path.splitext(name)
    suffix = suffix.lower()
    if suffix not in SUPPORTED:
        if stem.lower() in SUPPORTED:  # ".md": only an extension
            raise ValueError("the file name has no usable characters")
        raise ValueError(f"unsupported file type {suffix or '(none)'!r}; supported: {', '.join(sorted(SUPPORTED))}")
    stem = re.sub(r"[^\w.\- ]+", "_", stem)  # \w keeps Cyrillic letters; NUL, newlines, quotes... become _
    stem = re.sub(r"\s+", "-", stem)
    stem = re.sub(r"\.{2,}", ".", stem).strip(".-_")  # not hidden, not an option ("-rf"), no ".."
    stem = stem[:100]
    while len(stem.encode("utf-8")) + len(suffix) > MAX_NAME_BYTES:  # 100 CJK letters are 300 bytes
        stem = stem[:-1]
    stem = stem.rstrip(".-_")
    if not stem:
        raise ValueError("the file name has no usable characters")
    return stem + suffix


def shown_name(raw: str, limit: int = 80) -> str:
    """A file name as it may be shown in a message: control characters visible, long names shortened."""
    shown = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(raw))
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def inside(path: str | Path, folder: Path) -> bool:
    """Whether ``path`` (links resolved) lies inside ``folder``."""
    try:
        return Path(path).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):
        return False


@dataclass
class Staged:
    """The outcome of checking an upload: files moved into the upload folder, problems and renamings to report."""

    ready: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)


def stage_uploads(files: list, settings: Settings, states: dict) -> Staged:
    """Check each uploaded file (name, size, clash with an indexed document, readable) in a staging folder and
    move the good ones into ``settings.upload_dir``; a bad file never replaces anything."""
    s = settings
    upload_dir = Path(s.upload_dir)
    staging = upload_dir / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    out = Staged()
    for f in files:
        src = Path(f if isinstance(f, (str, Path)) else f.name)
        shown = shown_name(src.name)
        try:
            name = safe_upload_name(src.name)
        except ValueError as exc:
            out.problems.append(f"{shown}: {exc}")
            continue
        final = upload_dir / name
        if any(p.name == name for p in out.ready):
            out.problems.append(f"{shown}: another file in this upload is also saved as {name}; "
                                f"only the first was indexed (rename the file and upload it again)")
            continue
        if not (inside(final, upload_dir) and final.parent.resolve() == upload_dir.resolve()):
            out.problems.append(f"{shown}: not a valid file name")  # cannot happen after safe_upload_name
            continue
        size = src.stat().st_size
        if size > s.max_file_mb * 1024 * 1024:
            out.problems.append(f"{name}: file is {size / 1024 / 1024:.1f} MB, over the {s.max_file_mb:g} MB limit")
            continue
        known = states.get(name)
        if known is not None and known.path and not inside(known.path, upload_dir):
            out.problems.append(f"{name}: a document with this name is already indexed from {known.path}; "
                                f"rename the file")
            continue
        staged = staging / name
        try:
            shutil.copyfile(src, staged)
        except OSError as exc:
            out.problems.append(f"{name}: could not be saved ({exc.strerror or type(exc).__name__})")
            staged.unlink(missing_ok=True)
            continue
        try:  # read it before it may replace anything: a bad file never reaches the index
            read_document(staged, name, max_mb=s.max_file_mb, max_pages=s.max_pdf_pages, timeout=s.read_timeout)
        except ReadError as exc:
            out.problems.append(f"{name}: {exc.reason} (not indexed; the index is unchanged)")
            staged.unlink(missing_ok=True)
            continue
        os.replace(staged, final)
        out.ready.append(final)
        if name != src.name:
            out.renamed.append(f"{shown} was saved as {name}")
    return out
