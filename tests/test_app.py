"""The Gradio app as a real server process, driven through its API with ``gradio_client``.

One app process serves the whole module (each model answer is slow here). The index is built from
``corpus/`` with ``sofia-qa ingest --db`` into the pytest cache (incremental, so later runs are quick)
and copied for each app, so uploads in one test run never leak into the next.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from gradio_client.exceptions import AppError

from conftest import CORPUS, ROOT, free_port, http_service, run_cli
from test_align import MOBILITY

QUESTION = "What are the ICT sub-priorities of Sofia RIS3?"
ANSWER_TIMEOUT = 900  # seconds; one answer takes 10-120 s on a busy 2-core machine


def build_index(config) -> Path:
    """The corpus index, kept in the pytest cache and brought up to date with an incremental ingest."""
    db = Path(config.cache.mkdir("sofia-qa-corpus-index")) / "index"
    out = run_cli("ingest", str(CORPUS), "--db", str(db), "--json", timeout=1800)
    assert out.returncode == 0, out.stderr
    return db


def plot_png() -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(["doc_hit@1", "doc_hit@5", "doc_mrr"], [0.72, 0.94, 0.81], color="#2f6fdd")
    ax.set_ylim(0, 1)
    ax.set_title("Retrieval metrics (test fixture)")
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def write_fake_report(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "report.md").write_text(
        "# Evaluation: sofia_gold.jsonl (test fixture)\n\n- questions: 12\n\n## Retrieval\n\n"
        "| system | doc_hit@1 | doc_hit@5 | doc_mrr |\n|---|---|---|---|\n| hybrid | 0.72 | 0.94 | 0.81 |\n",
        encoding="utf-8")
    (folder / "report.html").write_text(
        f"<html><body><h2>Retrieval metrics per system</h2><img alt='Retrieval metrics per system' "
        f"src='data:image/png;base64,{plot_png()}'></body></html>", encoding="utf-8")


@contextmanager
def running_app(tmp: Path, db: Path, **env: str):
    """``python app.py`` on a free port with a copy of the index; yields (url, tmp folder)."""
    port = free_port()
    index = tmp / "index"
    shutil.copytree(db, index)
    full_env = {**os.environ, "SOFIA_QA_DB": str(index), "SOFIA_QA_PORT": str(port), "SOFIA_QA_HOST": "127.0.0.1",
                "SOFIA_QA_UPLOAD_DIR": str(tmp / "uploads"), "SOFIA_QA_REPORT_DIR": str(tmp / "reports"),
                "SOFIA_QA_CHROMA_URL": "", "SOFIA_QA_AUTH": "", **env}
    url = f"http://127.0.0.1:{port}"
    with http_service([sys.executable, "app.py"], url + "/", tmp / "app.log", timeout=600, env=full_env, cwd=ROOT):
        yield url, tmp


@pytest.fixture(scope="module")
def corpus_index(request):
    return build_index(request.config)


@pytest.fixture(scope="module")
def app(tmp_path_factory, corpus_index):
    tmp = tmp_path_factory.mktemp("app")
    write_fake_report(tmp / "reports")
    with running_app(tmp, corpus_index) as served:
        yield served


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    url, tmp = app
    return Client(url + "/", verbose=False, analytics_enabled=False, download_files=str(tmp / "downloads"))


def last_message(messages) -> str:
    content = messages[-1]["content"]
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def test_question_streams_an_answer_with_citation_cards(client):
    job = client.submit(QUESTION, [], [], [], api_name="/ask")
    messages, box = job.result(timeout=ANSWER_TIMEOUT)
    assert box == ""  # the question box is cleared
    assert [m["role"] for m in messages] == ["user", "assistant"]
    html = last_message(messages)
    assert "sqa-card" in html and "sofia-ris3.md" in html, html
    if "sqa-refused" in html:  # a refusal must still show where to look
        assert "Closest passages" in html
    else:
        assert "Sources" in html and "<mark>" in html
        assert "smart" in html.lower()  # the answer names sub-priorities ("smart energy systems", ...)
    assert "<script" not in html.lower()
    # the answer was streamed: gradio kept more than the final update, and the passages being read were
    # on screen before the written answer
    outputs = job.outputs()
    assert len(outputs) >= 2
    reading = [last_message(o[0]) for o in outputs[:-1] if "sqa-reading" in last_message(o[0])]
    assert reading and "Reading these passages" in reading[0] and "sqa-card" in reading[0], outputs[:3]


def test_a_bulgarian_question_is_answered_in_english_with_a_note_unless_the_box_asks_for_bulgarian(client):
    from assistant import prompts

    question = "Колко струва първото оценяване за златен етикет?"
    # the box ("answer Bulgarian questions in Bulgarian") left unticked: the default, English
    messages, _box = client.submit(question, [], [], [], False, api_name="/ask").result(timeout=ANSWER_TIMEOUT)
    html = last_message(messages)
    assert "8,250" in html and "sqa-refused" not in html, html
    assert "cost" in html.lower() and prompts.WRITTEN_IN_ENGLISH["bg"].split(":")[0] in html


def test_alignment_from_text_and_file(client, app, tmp_path):
    from gradio_client import handle_file

    status, table, download = client.predict(MOBILITY, None, api_name="/align")
    assert "Aligned" in status
    assert "Smart urban living and mobility" in table and "sqa-badge sqa-strong" in table
    assert "sofia-ris3.md" in table and "smart urban living and mobility" in table.lower()
    md = Path(download["value"] if isinstance(download, dict) else download).read_text(encoding="utf-8")
    assert md.startswith("# Alignment with Sofia RIS3") and "| Smart urban living and mobility |" in md

    recipes = tmp_path / "recipes.txt"
    recipes.write_text("Mix the flour, yeast and warm water into a soft dough. Let the dough rise for two hours. "
                       "Bake the loaves for forty minutes until golden.", encoding="utf-8")
    status, table, _ = client.predict("", handle_file(str(recipes)), api_name="/align")
    assert "Not aligned" in status and "sqa-badge sqa-strong" not in table and "recipes.txt" in table

    bad = tmp_path / "proposal.exe"
    bad.write_bytes(b"MZ")
    with pytest.raises(AppError, match="Invalid file type"):  # gradio refuses it before our code runs
        client.predict("", handle_file(str(bad)), api_name="/align")


def test_upload_is_listed_a_bad_upload_keeps_the_index_and_remove_works(client, app, tmp_path):
    from gradio_client import handle_file

    _url, tmp = app
    good = tmp_path / "..Team Notes.md"  # leading dots and a space: saved as a safe, visible name
    good.write_text("---\ntitle: Cluster team notes\ndoc_type: cluster\n---\n# Cluster team notes\n\n"
                    "## Coffee\n\nThe cluster office coffee machine was repaired on 3 March by Ivan Petrov.\n",
                    encoding="utf-8")
    status, table, *_ = client.predict([handle_file(str(good))], api_name="/upload")
    assert "Indexed Team-Notes.md" in status and "1 added" in status, status
    assert "was saved as Team-Notes.md" in status, status  # the renaming is said, not silent
    assert "Cluster team notes" in table and "Team-Notes.md" in table
    assert (tmp / "uploads" / "Team-Notes.md").is_file()
    assert not any(p.name.startswith(".") and p.is_file() for p in (tmp / "uploads").iterdir())

    before = table
    broken = tmp_path / "bad" / "Team-Notes.md"  # same name, broken front matter
    broken.parent.mkdir()
    broken.write_text("---\ntitle: [unclosed\n---\nbody\n", encoding="utf-8")
    status, table, *_ = client.predict([handle_file(str(broken))], api_name="/upload")
    assert "front matter is not valid YAML" in status and "the index is unchanged" in status, status
    assert table == before  # same documents, same chunk counts, same times
    assert "repaired on 3 March" in (tmp / "uploads" / "Team-Notes.md").read_text(encoding="utf-8")

    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    with pytest.raises(AppError, match="Invalid file type"):
        client.predict([handle_file(str(exe))], api_name="/upload")
    assert client.predict(api_name="/library")[0] == before

    status, table, *_ = client.predict("Team-Notes.md", api_name="/remove")
    assert "Removed Team-Notes.md" in status and "Team-Notes.md" not in table
    assert not (tmp / "uploads" / "Team-Notes.md").exists()
    assert "sofia-ris3.md" in table  # the corpus is untouched


def test_evaluation_tab_shows_the_last_report(client):
    status, plots, md = client.predict(api_name="/eval_report")
    assert "1 plot(s)" in status
    assert plots.count("<img") == 1 and 'alt="Retrieval metrics per system"' in plots
    assert "| hybrid | 0.72 |" in md


def test_login_is_required_when_auth_is_set(tmp_path, corpus_index):
    with running_app(tmp_path, corpus_index, SOFIA_QA_AUTH="u:p") as (url, _):
        root = httpx.get(url + "/", timeout=10)
        assert '"auth_required":true' in root.text.replace(" ", "")
        assert "sqa-chat" not in root.text and "Check alignment" not in root.text  # the login page only
        for path in ("/config", "/gradio_api/info"):
            assert httpx.get(url + path, timeout=10).status_code == 401, path
        call = httpx.post(url + "/gradio_api/call/ask", json={"data": [QUESTION, [], [], []]}, timeout=10)
        assert call.status_code == 401
        assert httpx.post(url + "/login", data={"username": "u", "password": "wrong"}, timeout=10).status_code == 400
        with httpx.Client(base_url=url, timeout=10) as s:  # and the right password opens it
            assert s.post("/login", data={"username": "u", "password": "p"}).status_code == 200
            assert s.get("/config").status_code == 200
            assert "sqa-chat" in s.get("/").text


def test_rendering_escapes_document_text_and_keeps_only_http_links():
    from assistant.types import Answer, Citation, Passage
    from assistant.ui.render import answer_html, reading_html, safe_url
    from ingestion.types import Chunk

    evil = '<img src=x onerror="alert(1)"> & <script>alert(2)</script>'
    chunk = Chunk(chunk_id="d::1", doc_id="d<b>.md", title=evil, path="", doc_type="reference", language="en",
                  text="Before. " + evil + " After.", start=0, end=10, heading_path=("Sec <i>",), page_start=None,
                  page_end=None, source_urls=("javascript:alert(3)",), content_hash="", doc_hash="", doc_chunks=1,
                  embed_model="m")
    passage = Passage(chunk=chunk, text=chunk.text, score=0.9, n=1)
    cite = Citation(n=1, doc="d<b>.md", title=evil, page="", section="Sec <i>", quote=evil,
                    source_url="javascript:alert(3)", score=0.9)
    html = answer_html(Answer(question="q", text=f"Answer {evil} [1]", citations=[cite], passages=[passage]))
    assert "<script" not in html and "<img" not in html and "<i>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html and "javascript:" not in html
    assert "<mark>" in html and '<span class="sqa-ref">[1]</span>' in html
    refused = answer_html(Answer(question="q", text="No.", refused=True, passages=[passage]))
    assert "Closest passages" in refused and "<script" not in refused
    for reading in (reading_html([passage]), reading_html([passage], f"So far {evil} [1]")):
        assert "Reading these passages" in reading and "<script" not in reading and "<img" not in reading
        assert "javascript:" not in reading
    assert safe_url("https://example.org/a?b=1") == "https://example.org/a?b=1"
    for bad in ("javascript:alert(1)", "data:text/html,x", "/etc/passwd", "http://", 'https://x.org/"onmouseover=1'):
        assert safe_url(bad) == ""


def test_report_view_takes_the_plots_out_of_report_html_and_escapes_captions(tmp_path):
    from assistant.ui.report_view import eval_report

    status, plots, md = eval_report(tmp_path / "none")
    assert "No evaluation report yet" in status and plots == "" and md == ""
    write_fake_report(tmp_path)
    page = tmp_path / "report.html"
    page.write_text(page.read_text(encoding="utf-8").replace(
        "alt='Retrieval metrics per system'", "alt='a &lt;b&gt; plot'"), encoding="utf-8")
    status, plots, md = eval_report(tmp_path)
    assert "1 plot(s)" in status and plots.count("<img") == 1
    assert 'alt="a &lt;b&gt; plot"' in plots and "<b>" not in plots
    assert "| hybrid | 0.72 |" in md


def test_only_the_app_imports_the_ui_modules():
    """``assistant/ui/`` serves ``app.py``: no other module of the product imports it."""
    import re as _re

    pattern = _re.compile(r"^\s*(from|import)\s+(assistant\.ui\b|\.ui\b|\.\.ui\b)|^\s*from\s+(assistant|\.)\s+import\s+ui\b",
                          _re.M)
    ui = ROOT / "assistant" / "ui"
    for folder in ("ingestion", "assistant", "evals"):
        for py in (ROOT / folder).rglob("*.py"):
            if not py.is_relative_to(ui):
                assert not pattern.search(py.read_text(encoding="utf-8")), py


def test_the_readme_lists_every_setting():
    from ingestion.config import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    missing = [name for name in Settings.help() if f"`{name}`" not in readme]
    assert not missing, f"README.md, Configuration: add {', '.join(missing)}"
