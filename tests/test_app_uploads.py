"""The Library tab's upload checks and handlers without a server: safe file names, odd and duplicate names through
``SofiaApp.upload``, and the index failing under the handlers (``assistant/ui/uploads.py``, ``app.py``).

The same names through the running app, with a login, are in ``test_app_security.py``.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest


def tree(folder: Path, skip: tuple[str, ...] = ()) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")
            if p.is_file() and not str(p.relative_to(folder)).startswith(skip)}


SAFE_NAME = re.compile(r"[^\W_][\w.\-]*\.(md|markdown|txt|html|htm|pdf|docx)")


@pytest.mark.parametrize("raw, expected", [
    ("../../evil.md", "evil.md"),
    ("..\\..\\evil.md", "evil.md"),
    ("C:\\Users\\x\\evil.md", "evil.md"),
    ("/etc/evil.md", "evil.md"),
    ("a\x00b.md", "a_b.md"),
    ("line\nbreak.md", "line_break.md"),
    ("-rf.md", "rf.md"),
    ("--help.txt", "help.txt"),
    (".hidden.md", "hidden.md"),
    ("..Team Notes.md", "Team-Notes.md"),
    ("Стратегия София 2030.md", "Стратегия-София-2030.md"),
    ("Notes.MD", "Notes.md"),
    ("name 'quoted' <b>&amp;.md", None),
])
def test_safe_upload_name(raw, expected):
    from app import MAX_NAME_BYTES, safe_upload_name

    name = safe_upload_name(raw)
    if expected is not None:
        assert name == expected
    assert SAFE_NAME.fullmatch(name), name
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES and "/" not in name and "\\" not in name


@pytest.mark.parametrize("raw", ["Д" * 200 + ".md", "文" * 120 + ".md", "𠀀" * 100 + ".txt", "a" * 400 + ".md"])
def test_long_names_fit_the_file_system(raw):
    from app import MAX_NAME_BYTES, safe_upload_name

    name = safe_upload_name(raw)
    assert len(name.encode("utf-8")) <= MAX_NAME_BYTES and SAFE_NAME.fullmatch(name), name
    assert name[0] == raw[0]  # letters of any script are kept, only shortened


@pytest.mark.parametrize("raw, why", [
    ("evil.exe", "unsupported file type"), ("evil.md.", "unsupported file type"), ("...md", "unsupported file type"),
    ("noext", "unsupported file type"), ("../.md", "no usable characters"), ("___.md", "no usable characters"),
    ("\x00\n.md", "no usable characters"), ("-.txt", "no usable characters"), ("", "unsupported file type"),
])
def test_unusable_names_are_refused_with_a_reason(raw, why):
    from app import safe_upload_name

    with pytest.raises(ValueError, match=why):
        safe_upload_name(raw)


@pytest.fixture()
def library_app(tmp_path, store, embedder):
    """``SofiaApp`` with a real store and embedder (no language model: uploads do not use it)."""
    from app import SofiaApp
    from ingestion.config import Settings

    settings = Settings.from_env(upload_dir=tmp_path / "uploads", corpus_dir=tmp_path / "corpus", db=tmp_path / "index")
    return SofiaApp(settings, assistant=SimpleNamespace(store=store, embedder=embedder))


def note(title: str) -> str:
    return f"---\ntitle: {title}\ndoc_type: reference\n---\n# {title}\n\n## Body\n\nThe {title} say the office opens at 9.\n"


def test_odd_names_through_the_upload_handler(library_app, tmp_path):
    src = tmp_path / "src"
    names = {  # the name on disk (what Gradio hands over) -> the name it must be saved as
        "..\\evil.md": "evil.md", "-rf.md": "rf.md", ".hidden.md": "hidden.md", "line\nbreak.md": "line_break.md",
        "Стратегия София.md": "Стратегия-София.md", "文" * 80 + ".md": None, "Д" * 120 + ".txt": None,
    }
    files = []
    for i, raw in enumerate(names):
        folder = src / f"d{i}"
        folder.mkdir(parents=True)
        (folder / raw).write_text(note(f"notes {i}"), encoding="utf-8")
        files.append(str(folder / raw))
    # two files with one name, and two names that become one
    for i, raw in enumerate(["notes.md", "notes.md", "a b.md", "a-b.md"]):
        folder = src / f"dup{i}"
        folder.mkdir()
        (folder / raw).write_text(note(f"duplicate {i}"), encoding="utf-8")
        files.append(str(folder / raw))
    before = tree(tmp_path)

    status, table, *_ = library_app.upload(files, progress=lambda *a, **k: None)

    uploads = tmp_path / "uploads"
    saved = sorted(p.name for p in uploads.iterdir() if p.is_file())
    expected = [n for n in names.values() if n] + ["notes.md", "a-b.md"]
    assert set(expected) <= set(saved) and len(saved) == len(names) + 2, saved
    assert all(SAFE_NAME.fullmatch(n) and len(n.encode()) <= 150 for n in saved), saved
    assert not any((uploads / ".staging").iterdir())  # nothing left half-done
    new = tree(tmp_path) - before
    assert all(p.startswith(("uploads/", "index/")) for p in new), sorted(new)
    assert not (tmp_path / "evil.md").exists() and not (tmp_path.parent / "evil.md").exists()
    # the message says what was indexed, what was renamed, and why the duplicates were not
    assert "Indexed " in status and f"{len(saved)} added" in status, status
    assert "Renamed to a safe file name" in status and "was saved as evil.md" in status
    assert r"line\nbreak.md was saved as line_break.md" in status  # the newline is shown, not printed
    assert status.count("another file in this upload is also saved as") == 2, status
    assert "Стратегия-София.md" in table and "<script" not in status
    # a duplicate kept the first file's content
    assert "duplicate 0" in (uploads / "notes.md").read_text(encoding="utf-8")


def test_store_outage_in_the_handlers(library_app, tmp_path):
    """The index fails under the app (the fault is injected into the real store): the library handlers raise a
    ``gr.Error`` with a plain message, and chat answers with a notice and keeps the conversation."""
    import gradio as gr

    from ingestion.store import StoreUnavailable

    def down(*_a, **_k):
        raise StoreUnavailable("vector store (Chroma server at http://127.0.0.1:9) is unreachable (ConnectError)")

    library_app.store.doc_states = down
    library_app.store.delete_document = down
    src = tmp_path / "n.md"
    src.write_text(note("notes"), encoding="utf-8")
    for call_handler in (library_app.library, lambda: library_app.upload([str(src)], progress=lambda *a, **k: None),
                         lambda: library_app.remove("n.md")):
        with pytest.raises(gr.Error) as err:
            call_handler()
        assert str(err.value.message).startswith("The document index is not available: vector store"), err.value

    class Down:
        def ask_stream(self, *a, **k):
            down()
            yield  # a generator, like the real one

    library_app.assistant = Down()
    updates = list(library_app.chat("What does a Gold label cost?", [], [], [], []))
    messages, box, history = updates[-1]
    assert "The document index is not available" in messages[-1]["content"] and "ask it again" in messages[-1]["content"]
    assert "Traceback" not in messages[-1]["content"] and history == [] and box == ""
