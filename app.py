"""The Gradio app: Chat, Alignment, Library and Evaluation tabs over one ``Assistant``.

``python app.py`` (or ``make run``) serves it on ``SOFIA_QA_HOST``:``SOFIA_QA_PORT`` (127.0.0.1:7860),
never with a share link. With ``SOFIA_QA_AUTH=user:password`` every page and API call needs a login.
Generation runs one request at a time; others wait in the queue and see their position.
"""

from __future__ import annotations

from ingestion import config  # noqa: F401  (offline switches and GRADIO_ANALYTICS_ENABLED=False first)

import atexit
import base64
import html as htmllib
import os
import re
import shutil
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

import gradio as gr

from assistant.types import Answer
from assistant.ui_render import (CSS, alignment_html, answer_html, answer_text_html, docs_html, esc,
                                 status_html)
from ingestion.config import PROJECT_ROOT, Settings
from ingestion.readers import SUPPORTED, ReadError, read_document
from ingestion.types import DOC_TYPES

ALIGN_TYPES = (".pdf", ".docx", ".txt", ".md", ".markdown", ".html", ".htm")
KIND_LABELS = {"pdf": "PDF", "docx": "DOCX", "html": "HTML", "markdown": "Markdown", "text": "TXT"}
STAGING = ".staging"  # hidden folder inside upload_dir: files are checked here before they replace anything

EXAMPLES = {
    "Prospective member": [
        "How does a company apply to join Cluster Sofia – Knowledge City?",
        "What is the annual membership fee of the cluster?",
        "Кой може да стане член на клъстер „София – град на знанието“?",
    ],
    "Cluster committee": [
        "What are the ICT sub-priorities of Sofia RIS3?",
        "What is the horizontal policy of the Sofia smart specialisation strategy?",
        "Кои са двете приоритетни области на иновационната стратегия на София?",
    ],
    "Evaluator": [
        "What does a first-time Gold label assessment cost?",
        "How long is a Bronze label valid?",
        "Кой издава етикетите за качество на управлението на клъстери?",
    ],
}


def report_dir() -> Path:
    return Path(os.environ.get("SOFIA_QA_REPORT_DIR") or PROJECT_ROOT / "reports" / "eval")


def parse_auth(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("SOFIA_QA_AUTH must look like user:password")
    return user, password


def safe_upload_name(raw: str) -> str:
    """A file name safe to save in the upload folder: no folders, no '..', not hidden, supported type."""
    name = unicodedata.normalize("NFC", str(raw or "")).replace("\\", "/").split("/")[-1].strip()
    name = re.sub(r"[^\w.\- ]+", "_", name)  # \w keeps Cyrillic letters
    name = re.sub(r"\s+", "-", name)
    name = re.sub(r"\.{2,}", ".", name).lstrip(".-_")
    stem, suffix = os.path.splitext(name)
    if suffix.lower() not in SUPPORTED:
        raise ValueError(f"unsupported file type {suffix or '(none)'!r}; supported: {', '.join(sorted(SUPPORTED))}")
    if not stem.strip("._-"):
        raise ValueError("the file name has no usable characters")
    return stem[:100] + suffix.lower()


def _inside(path: str | Path, folder: Path) -> bool:
    try:
        return Path(path).resolve().is_relative_to(folder.resolve())
    except (OSError, ValueError):
        return False


class SofiaApp:
    """Handlers of the UI. One ``Assistant`` (embedder, store, retriever, model) for the whole process."""

    def __init__(self, settings: Settings | None = None, assistant=None):
        from assistant.answer import Assistant

        self.settings = settings or Settings.from_env()
        self.assistant = assistant or Assistant(self.settings)
        self.store = self.assistant.store
        self.embedder = self.assistant.embedder
        self.tmp = tempfile.mkdtemp(prefix="sofia-qa-app-")  # alignment reports offered for download
        atexit.register(shutil.rmtree, self.tmp, True)

    # ------------------------------------------------------------------ chat
    def chat(self, question: str, messages: list, history: list, doc_types: list, docs: list):
        question = (question or "").strip()
        if not question:
            raise gr.Error("Type a question first.")
        messages = list(messages or []) + [{"role": "user", "content": esc(question)},
                                           {"role": "assistant", "content": "<em>Searching the documents…</em>"}]
        yield messages, "", history
        filters = {k: v for k, v in (("doc_type", list(doc_types or [])), ("docs", list(docs or []))) if v} or None
        text = ""
        answer: Answer | None = None
        try:
            for item in self.assistant.ask_stream(question, history or [], filters):
                if isinstance(item, Answer):
                    answer = item
                else:
                    text += item
                    messages[-1] = {"role": "assistant", "content": answer_text_html(text) + " ▍"}
                    yield messages, "", history
        except ValueError as exc:
            messages[-1] = {"role": "assistant", "content": f'<div class="sqa-notice">{esc(exc)}</div>'}
            yield messages, "", history
            return
        except Exception as exc:  # keep the conversation usable and say what went wrong
            messages[-1] = {"role": "assistant",
                            "content": f'<div class="sqa-notice">Something went wrong: {esc(type(exc).__name__)}: '
                                       f'{esc(exc)}</div>'}
            yield messages, "", history
            return
        assert answer is not None
        messages[-1] = {"role": "assistant", "content": answer_html(answer)}
        history = list(history or []) + [{"role": "user", "content": question},
                                         {"role": "assistant", "content": answer.text}]
        yield messages, "", history

    @staticmethod
    def clear():
        return [], "", []

    # ------------------------------------------------------------------ alignment
    def alignment(self, text: str, file):
        from assistant.align import align, align_file

        try:
            if file:
                src = Path(file if isinstance(file, str) else file.name)
                if src.suffix.lower() not in ALIGN_TYPES:
                    raise ReadError(src.name, f"unsupported file type {src.suffix or '(none)'!r}; "
                                              f"upload {', '.join(ALIGN_TYPES)}")
                report = align_file(src, self.assistant.retriever, self.embedder, max_mb=self.settings.max_file_mb)
            elif (text or "").strip():
                report = align(text, self.assistant.retriever, self.embedder, source="pasted text")
            else:
                raise gr.Error("Paste the proposal text or upload a proposal file first.")
        except ReadError as exc:
            name = Path(exc.path).name
            return status_html(f"{name}: {exc.reason}", ok=False), "", gr.update(visible=False)
        except ValueError as exc:
            return status_html(str(exc), ok=False), "", gr.update(visible=False)
        out = Path(tempfile.mkdtemp(dir=self.tmp)) / \
            f"alignment-{re.sub(r'[^A-Za-z0-9_.-]+', '-', Path(report.source).stem)[:60]}.md"
        out.write_text(report.to_markdown(), encoding="utf-8")
        return (status_html(f"{report.overall.capitalize()}: {len(report.rows)} strategy priorities checked."),
                alignment_html(report), gr.update(value=str(out), visible=True))

    # ------------------------------------------------------------------ library
    def library(self):
        states = self.store.doc_states()
        choices = [(f"{st.title or d} ({d})", d) for d, st in sorted(states.items())]
        return docs_html(states), gr.update(choices=choices, value=None), gr.update(choices=choices)

    def upload(self, files, progress=gr.Progress(track_tqdm=True)):
        from ingestion.pipeline import ingest

        s = self.settings
        files = [files] if isinstance(files, (str, Path)) else list(files or [])
        if not files:
            raise gr.Error("Choose one or more files to upload first.")
        upload_dir = Path(s.upload_dir)
        staging = upload_dir / STAGING
        staging.mkdir(parents=True, exist_ok=True)
        states = self.store.doc_states()
        problems, ready = [], []
        progress(0, desc="Checking files")
        for f in files:
            src = Path(f if isinstance(f, (str, Path)) else f.name)
            try:
                name = safe_upload_name(src.name)
            except ValueError as exc:
                problems.append(f"{src.name}: {exc}")
                continue
            size = src.stat().st_size
            if size > s.max_file_mb * 1024 * 1024:
                problems.append(f"{name}: file is {size / 1024 / 1024:.1f} MB, over the {s.max_file_mb:g} MB limit")
                continue
            known = states.get(name)
            if known is not None and known.path and not _inside(known.path, upload_dir):
                problems.append(f"{name}: a document with this name is already indexed from {known.path}; "
                                f"rename the file")
                continue
            staged = staging / name
            shutil.copyfile(src, staged)
            try:  # read it before it may replace anything: a bad file never reaches the index
                read_document(staged, name, max_mb=s.max_file_mb, max_pages=s.max_pdf_pages)
            except ReadError as exc:
                problems.append(f"{name}: {exc.reason} (not indexed; the index is unchanged)")
                staged.unlink(missing_ok=True)
                continue
            final = upload_dir / name
            os.replace(staged, final)
            ready.append(final)
        lines = []
        if ready:
            progress(0.05, desc=f"Indexing {len(ready)} file(s)")
            report = ingest(ready, store=self.store, embedder=self.embedder, chunk_tokens=s.chunk_tokens,
                            max_file_mb=s.max_file_mb, max_pdf_pages=s.max_pdf_pages, progress=True,
                            batch=s.embed_batch, log=lambda msg: None)
            lines.append(f"Indexed {', '.join(p.name for p in ready)}: {report.summary()}")
            problems += [f"{Path(f.path).name}: {f.error}" for f in report.failed]
        ok = not problems
        msg = "\n".join(lines + (["Not indexed:"] + [f"• {p}" for p in problems] if problems else []))
        return (status_html(msg, ok=ok), *self.library())

    def reindex(self, progress=gr.Progress(track_tqdm=True)):
        from ingestion.pipeline import ingest

        s = self.settings
        roots = [Path(s.corpus_dir)] + ([Path(s.upload_dir)] if Path(s.upload_dir).is_dir() else [])
        progress(0, desc="Checking the corpus")
        report = ingest(roots, store=self.store, embedder=self.embedder, chunk_tokens=s.chunk_tokens,
                        max_file_mb=s.max_file_mb, max_pdf_pages=s.max_pdf_pages, progress=True,
                        batch=s.embed_batch, log=lambda msg: None)
        msg = "Re-indexed the corpus: " + report.summary()
        if report.failed:
            msg += "\nNot indexed:\n" + "\n".join(f"• {Path(f.path).name}: {f.error}" for f in report.failed)
        return (status_html(msg, ok=not report.failed), *self.library())

    def remove(self, doc_id: str | None):
        if not doc_id:
            raise gr.Error("Choose a document to remove first.")
        states = self.store.doc_states()
        if doc_id not in states:
            return (status_html(f"{doc_id} is not in the index.", ok=False), *self.library())
        n = self.store.delete_document(doc_id)
        path = states[doc_id].path
        note = ""
        if path and _inside(path, Path(self.settings.upload_dir)):
            Path(path).unlink(missing_ok=True)
        elif path and _inside(path, Path(self.settings.corpus_dir)):
            note = " It is still in the corpus folder, so the next corpus re-index adds it again."
        return (status_html(f"Removed {doc_id} ({n} chunks).{note}"), *self.library())

    # ------------------------------------------------------------------ evaluation
    @staticmethod
    def eval_report():
        folder = report_dir()
        md = folder / "report.md"
        if not md.is_file():
            return (status_html(f"No evaluation report yet in {folder}. Run the fast subset below, or "
                                f"`sofia-qa eval` on the command line."), "", "")
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(md.stat().st_mtime))
        figures = []
        page = folder / "report.html"
        if page.is_file():
            for tag in re.findall(r"<img\b[^>]*>", page.read_text(encoding="utf-8", errors="replace")):
                data = re.search(r"""src=['"]data:image/png;base64,([A-Za-z0-9+/=]+)['"]""", tag)
                alt = re.search(r"""alt=['"]([^'"]*)['"]""", tag)
                if data:
                    figures.append((htmllib.unescape(alt.group(1)) if alt else "plot", data.group(1)))
        for png in sorted(folder.glob("*.png")):
            figures.append((png.stem.replace("_", " "), base64.b64encode(png.read_bytes()).decode("ascii")))
        plots = "".join(f'<figure class="sqa-plot"><img alt="{esc(cap)}" src="data:image/png;base64,{data}">'
                        f'<figcaption>{esc(cap)}</figcaption></figure>' for cap, data in figures)
        return (status_html(f"Report from {when} ({md}); {len(figures)} plot(s)."),
                plots, md.read_text(encoding="utf-8", errors="replace"))

    def run_fast_eval(self, progress=gr.Progress(track_tqdm=True)):
        try:
            from evals.runner import DEFAULT_DATASET, load_thresholds, run_eval
        except ImportError as exc:
            return (status_html(f"The evaluation suite is not available ({exc}).", ok=False), *self.eval_report()[1:])
        fast = load_thresholds().get("fast", {})
        progress(0, desc="Evaluating the fast subset")
        try:
            result = run_eval(DEFAULT_DATASET, out_dir=report_dir(), limit=fast.get("limit"),
                              retrieval_only=bool(fast.get("retrieval_only", False)), split=fast.get("split", "test"),
                              settings=self.settings, progress=True, log=lambda msg: None)
        except Exception as exc:
            return (status_html(f"The evaluation failed: {type(exc).__name__}: {exc}", ok=False),
                    *self.eval_report()[1:])
        status, plots, md = self.eval_report()
        meta = result.get("meta", {})
        return (status_html(f"Evaluated {meta.get('questions')} questions in {meta.get('seconds', 0):.0f} s. "
                            f"Report written to {report_dir()}."), plots, md)


THEME_CSS = CSS + """
#sqa-header h1{margin-bottom:0}
#sqa-header p{margin-top:.2em;color:#556}
.sqa-plot{margin:0 0 1em 0}
.sqa-plot img{max-width:100%;border:1px solid #e6e9ef;border-radius:6px}
.sqa-plot figcaption{font-size:.85em;color:#667}
"""


def build(settings: Settings | None = None, assistant=None) -> gr.Blocks:
    app = SofiaApp(settings, assistant)
    s = app.settings
    types = ", ".join(dict.fromkeys(KIND_LABELS.get(kind, kind) for kind in SUPPORTED.values()))
    with gr.Blocks(title="Sofia – Knowledge City · document assistant") as demo:
        gr.Markdown("# Sofia – Knowledge City · document assistant\n"
                    "Answers from the Sofia RIS3 strategy, cluster policy, cluster-label and membership documents, "
                    "with the passages they come from. Runs entirely on this computer.", elem_id="sqa-header")
        with gr.Tabs():
            # ------------------------------------------------------------------ Chat
            with gr.Tab("Chat", id="chat"):
                history = gr.State([])
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        chatbot = gr.Chatbot(label="Conversation", show_label=False, elem_id="sqa-chat", height=560,
                                             sanitize_html=True, feedback_options=None, buttons=["copy"],
                                             placeholder="Ask about the Sofia RIS3 strategy, cluster labels or "
                                                         "membership, in English or Bulgarian.")
                        with gr.Row():
                            question = gr.Textbox(show_label=False, placeholder="Your question…", lines=1,
                                                  max_lines=4, scale=6, elem_id="sqa-question", autofocus=True)
                            ask = gr.Button("Ask", variant="primary", scale=1, elem_id="sqa-ask")
                        clear = gr.Button("Clear conversation", size="sm", elem_id="sqa-clear")
                    with gr.Column(scale=2, min_width=280):
                        with gr.Accordion("Filters", open=True):
                            doc_types = gr.CheckboxGroup(choices=list(DOC_TYPES), label="Document types",
                                                         elem_id="sqa-doc-types")
                            docs_filter = gr.Dropdown(choices=[], multiselect=True, label="Documents",
                                                      elem_id="sqa-docs-filter")
                        for persona, qs in EXAMPLES.items():
                            gr.Examples(examples=[[q] for q in qs], inputs=[question], label=persona,
                                        examples_per_page=len(qs))
                chat_io = dict(inputs=[question, chatbot, history, doc_types, docs_filter],
                               outputs=[chatbot, question, history])
                ask.click(app.chat, **chat_io, api_name="ask", concurrency_id="model")
                question.submit(app.chat, **chat_io, api_visibility="private", concurrency_id="model")
                clear.click(app.clear, outputs=[chatbot, question, history], api_name="clear",
                            concurrency_limit=None, queue=False)

            # ------------------------------------------------------------------ Alignment
            with gr.Tab("Alignment", id="alignment"):
                gr.Markdown("Check a project proposal against the Sofia RIS3 priorities: the two vertical priority "
                            "areas (Informatics and ICT with its eight sub-priorities; new technologies in creative "
                            "and recreational industries) and the horizontal policy (strengthening the innovation "
                            "ecosystem). Each row shows the proposal sentence that matches best and the strategy "
                            "passage that states the priority.")
                with gr.Row():
                    proposal_text = gr.Textbox(label="Proposal text", lines=10, max_lines=30, scale=3,
                                               placeholder="Paste the proposal here…", elem_id="sqa-proposal")
                    proposal_file = gr.File(label="…or upload a proposal (PDF, DOCX, TXT, MD)",
                                            file_types=list(ALIGN_TYPES), scale=2, elem_id="sqa-proposal-file")
                with gr.Row():
                    check = gr.Button("Check alignment", variant="primary", elem_id="sqa-check")
                    download = gr.DownloadButton("Download Markdown report", visible=False,
                                                 elem_id="sqa-align-download")
                align_status = gr.HTML(elem_id="sqa-align-status")
                align_out = gr.HTML(elem_id="sqa-align-result")
                check.click(app.alignment, inputs=[proposal_text, proposal_file],
                            outputs=[align_status, align_out, download], api_name="align")

            # ------------------------------------------------------------------ Library
            with gr.Tab("Library", id="library"):
                lib_status = gr.HTML(elem_id="sqa-lib-status")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3):
                        docs_table = gr.HTML(elem_id="sqa-docs-table")
                    with gr.Column(scale=2, min_width=300):
                        files = gr.File(label=f"Upload documents ({types}; up to {s.max_file_mb:g} MB each)",
                                        file_count="multiple", file_types=sorted(SUPPORTED), elem_id="sqa-upload")
                        upload = gr.Button("Upload and index", variant="primary", elem_id="sqa-upload-btn")
                        reindex = gr.Button("Re-index the corpus", elem_id="sqa-reindex")
                        with gr.Group():
                            remove_choice = gr.Dropdown(choices=[], label="Remove a document from the index",
                                                        elem_id="sqa-remove-choice")
                            remove = gr.Button("Remove", variant="stop", elem_id="sqa-remove")
                lib_outputs = [lib_status, docs_table, remove_choice, docs_filter]
                upload.click(app.upload, inputs=[files], outputs=lib_outputs, api_name="upload",
                             concurrency_id="index")
                reindex.click(app.reindex, outputs=lib_outputs, api_name="reindex", concurrency_id="index")
                remove.click(app.remove, inputs=[remove_choice], outputs=lib_outputs, api_name="remove",
                             concurrency_id="index")

            # ------------------------------------------------------------------ Evaluation
            with gr.Tab("Evaluation", id="evaluation"):
                gr.Markdown("The last evaluation report: retrieval and answer quality on the gold questions. "
                            "The fast subset asks the assistant a dozen questions, so it takes several minutes "
                            "and the chat waits meanwhile.")
                with gr.Row():
                    run_eval_btn = gr.Button("Run the fast subset", variant="primary", elem_id="sqa-run-eval")
                    refresh_eval = gr.Button("Reload the report", elem_id="sqa-reload-eval")
                eval_status = gr.HTML(elem_id="sqa-eval-status")
                eval_plots = gr.HTML(elem_id="sqa-eval-plots")
                eval_md = gr.Markdown(elem_id="sqa-eval-report")
                eval_outputs = [eval_status, eval_plots, eval_md]
                run_eval_btn.click(app.run_fast_eval, outputs=eval_outputs, api_name="run_eval",
                                   concurrency_id="model")
                refresh_eval.click(app.eval_report, outputs=eval_outputs, api_name="eval_report",
                                   concurrency_limit=None)

        def on_load():
            return (*app.library()[:3], *app.eval_report())

        demo.load(on_load, outputs=[docs_table, remove_choice, docs_filter, *eval_outputs], api_name="library",
                  concurrency_limit=None)
    demo.sofia_app = app  # for tests and embedding
    return demo


def theme() -> gr.themes.Base:
    """A theme with system fonts only: the default one fetches Google Fonts, and the app runs offline."""
    system = [gr.themes.Font("system-ui"), gr.themes.Font("Segoe UI"), gr.themes.Font("DejaVu Sans"), "sans-serif"]
    mono = [gr.themes.Font("DejaVu Sans Mono"), "monospace"]
    return gr.themes.Soft(primary_hue="blue", font=system, font_mono=mono)


def main() -> int:
    settings = Settings.from_env()
    try:
        auth = parse_auth(settings.auth)
    except ValueError as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    demo = build(settings)
    demo.queue(default_concurrency_limit=1)
    print(f"Sofia-QA on http://{settings.host}:{settings.port}{' (login required)' if auth else ''}", flush=True)
    demo.launch(server_name=settings.host, server_port=settings.port, share=False, auth=auth,
                auth_message="Sofia – Knowledge City document assistant" if auth else None,
                max_file_size=f"{settings.max_file_mb:g}mb", show_error=True, ssr_mode=False, pwa=False,
                mcp_server=False, theme=theme(), css=THEME_CSS, footer_links=["api"], enable_monitoring=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
