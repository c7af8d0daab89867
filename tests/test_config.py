"""Settings are the one source of every default; ingestion's modules import no cycle and share one error root."""

from __future__ import annotations

import ast
import inspect
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from ingestion.config import ENV_PREFIX, OFFLINE_ENV, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_has_a_one_line_description():
    described = Settings.help()
    assert list(described) == [ENV_PREFIX + f.name.upper() for f in fields(Settings)]
    for name, doc in described.items():
        assert doc.strip() and "\n" not in doc and len(doc) <= 110, name


def test_report_dir_is_a_setting(tmp_path):
    assert Settings.from_env({}).report_dir == ROOT / "reports" / "eval"
    assert Settings.from_env({"SOFIA_QA_REPORT_DIR": str(tmp_path)}).report_dir == tmp_path
    assert Settings.from_env({"SOFIA_QA_REPORT_DIR": ""}).report_dir == ROOT / "reports" / "eval"


def test_model_cache_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Settings().model_cache == tmp_path / "sofia-qa" / "models"
    monkeypatch.setenv("XDG_CACHE_HOME", "")  # empty is unset (XDG base directory spec)
    assert Settings().model_cache == Path.home() / ".cache" / "sofia-qa" / "models"


def test_functions_default_to_the_settings_not_to_copies():
    from ingestion.pipeline import ingest
    from ingestion.readers import read_document

    reader = inspect.signature(read_document).parameters
    assert reader["max_mb"].default == Settings.max_file_mb and reader["max_pages"].default == Settings.max_pdf_pages
    assert reader["timeout"].default == Settings.read_timeout
    given = inspect.signature(ingest).parameters
    for param, setting in (("chunk_tokens", "chunk_tokens"), ("max_file_mb", "max_file_mb"),
                           ("max_pdf_pages", "max_pdf_pages"), ("read_timeout", "read_timeout"),
                           ("batch", "embed_batch")):
        assert given[param].default == getattr(Settings, setting), param


def test_importing_the_config_sets_only_the_offline_switches():
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_ENV and k != "OMP_WAIT_POLICY"}
    code = ("import os; before = dict(os.environ); import ingestion.config; "
            "print(sorted(k for k in os.environ if os.environ[k] != before.get(k)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == repr(sorted(OFFLINE_ENV))


def test_errors_share_one_root_with_a_kind():
    from ingestion.embedding import EmbeddingError
    from ingestion.errors import SofiaError
    from ingestion.readers import ReadError, TooLarge
    from ingestion.store import ModelMismatch, StoreError

    for err, kind in ((ReadError("a.pdf", "why"), "unreadable"), (TooLarge("a.pdf", "big"), "too-large"),
                      (StoreError("x"), "store"), (ModelMismatch("x"), "store"), (EmbeddingError("x"), "embedding")):
        assert isinstance(err, SofiaError) and err.kind == kind
    assert isinstance(StoreError("x"), RuntimeError) and isinstance(EmbeddingError("x"), RuntimeError)


def _imports(path: Path) -> set[str]:
    """Modules of ours that ``path`` imports, at any depth of the file (absolute names)."""
    package = path.parent.name
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = f"{package}.{base}" if base else package
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in ("ingestion", "assistant", "evals", "app"))
    return found


@pytest.mark.parametrize("package", ["ingestion"])
def test_ingestion_imports_nothing_else_of_ours_and_has_no_cycle(package):
    modules = {f"{package}.{p.stem}": p for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name, path in modules.items():
        used = _imports(path)
        assert all(u.split(".")[0] == package for u in used), (name, used)
        graph[name] = {u for u in used if u in modules and u != name}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start] - seen:
            if nxt == goal or reaches(nxt, goal, seen | {nxt}):
                return True
        return False

    cycles = sorted(name for name in graph if reaches(name, name, set()))
    assert not cycles, cycles
