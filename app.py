"""The Gradio app: Chat, Alignment, Library and Evaluation tabs over one ``Assistant``.

``python app.py`` (or ``make run``) serves it on ``SOFIA_QA_HOST``:``SOFIA_QA_PORT`` (127.0.0.1:7860),
never with a share link. With ``SOFIA_QA_AUTH=user:password`` every page and API call needs a login.
Generation runs one request at a time; others wait in the queue and see their position.
"""

from __future__ import annotations

from ingestion import config  # noqa: F401  (offline switches and GRADIO_ANALYTICS_ENABLED=False first)

import atexit
import functools
import re
import shutil
import sys
import tempfile
from pathlib import Path

import gradio as gr

from assistant.llm import ModelError
from assistant.types import Answer, Retrieved
from assistant.ui.auth import middleware, parse_auth
from assistant.ui.render import CSS, alignment_html, answer_html, docs_html, esc, reading_html, status_html
from assistant.ui.report_view import eval_report
from assistant.ui.uploads import MAX_NAME_BYTES, inside, safe_upload_name, stage_uploads  # noqa: F401
from ingestion.config import Settings
from ingestion.readers import SUPPORTED, ReadError
from ingestion.store import StoreError
from ingestion.types import DOC_TYPES

ALIGN_TYPES = (".pdf", ".docx", ".txt", ".md", ".markdown", ".html", ".htm")
KIND_LABELS = {"pdf": "PDF", "docx": "DOCX", "html": "HTML", "markdown": "Markdown", "text": "TXT"}
QUEUE_MAX_SIZE = 64  # events waiting in the queue; one more is refused with "queue is full"

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


def store_problem(exc: Exception) -> str:
    """A store failure as one plain sentence for the UI."""
    return f"The document index is not available: {exc}"


def store_errors_as_gr_error(handler):
    """Library handlers: a ``StoreError`` becomes a ``gr.Error`` with a plain message, not a traceback."""
    @functools.wraps(handler)
    def wrapped(*args, **kwargs):
        try:
            return handler(*args, **kwargs)
        except StoreError as exc:
            raise gr.Error(store_problem(exc)) from None
    return wrapped


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
    def chat(self, question: str, messages: list, history: list, doc_types: list, docs: list,
             bulgarian: bool | None = None):
        """``bulgarian``: answer a Bulgarian question in Bulgarian rather than English (None: as
        ``Settings.answer_language`` says)."""
        question = (question or "").strip()
        if not question:
            raise gr.Error("Type a question first.")
        messages = list(messages or []) + [{"role": "user", "content": esc(question)},
                                           {"role": "assistant", "content": "<em>Searching the documents…</em>"}]
        yield messages, "", history
        filters = {k: v for k, v in (("doc_type", list(doc_types or [])), ("docs", list(docs or []))) if v} or None
        text = ""
        answer: Answer | None = None
        passages: list = []
        try:
            language = None if bulgarian is None else ("question" if bulgarian else "en")
            for item in self.assistant.ask_stream(question, history or [], filters, answer_language=language):
                if isinstance(item, Answer):
                    answer = item
                elif isinstance(item, Retrieved):  # the sources, shown while the model reads them
                    passages = item.passages
                    messages[-1] = {"role": "assistant", "content": reading_html(passages)}
                    yield messages, "", history
                else:
                    text += item
                    messages[-1] = {"role": "assistant", "content": reading_html(passages, text)}
                    yield messages, "", history
        except StoreError as exc:  # the index is unreachable: say so plainly; the next question may work
            messages[-1] = {"role": "assistant", "content": f'<div class="sqa-notice">{esc(store_problem(exc))} '
                                                            f'Your question was not answered; ask it again.</div>'}
            yield messages, "", history
            return
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
                report = align_file(src, self.assistant.retriever, self.embedder, settings=self.settings)
            elif (text or "").strip():
                report = align(text, self.assistant.retriever, self.embedder, source="pasted text",
                               settings=self.settings)
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
    @store_errors_as_gr_error
    def library(self):
        states = self.store.doc_states()
        choices = [(f"{st.title or d} ({d})", d) for d, st in sorted(states.items())]
        return docs_html(states), gr.update(choices=choices, value=None), gr.update(choices=choices)

    @store_errors_as_gr_error
    def upload(self, files, progress=gr.Progress(track_tqdm=True)):
        from ingestion.pipeline import ingest

        s = self.settings
        files = [files] if isinstance(files, (str, Path)) else list(files or [])
        if not files:
            raise gr.Error("Choose one or more files to upload first.")
        states = self.store.doc_states()
        progress(0, desc="Checking files")
        staged = stage_uploads(files, s, states)
        ready, problems, renamed = staged.ready, staged.problems, staged.renamed
        lines = []
        if ready:
            progress(0.05, desc=f"Indexing {len(ready)} file(s)")
            report = ingest(ready, store=self.store, embedder=self.embedder, chunk_tokens=s.chunk_tokens,
                            max_file_mb=s.max_file_mb, max_pdf_pages=s.max_pdf_pages, read_timeout=s.read_timeout,
                            progress=True,
                            batch=s.embed_batch, log=lambda msg: None)
            lines.append(f"Indexed {', '.join(p.name for p in ready)}: {report.summary()}")
            problems += [f"{Path(f.path).name}: {f.error}" for f in report.failed]
        if renamed:
            lines.append("Renamed to a safe file name: " + "; ".join(renamed) + ".")
        ok = not problems
        msg = "\n".join(lines + (["Not indexed:"] + [f"• {p}" for p in problems] if problems else []))
        return (status_html(msg, ok=ok), *self.library())

    @store_errors_as_gr_error
    def reindex(self, progress=gr.Progress(track_tqdm=True)):
        from ingestion.pipeline import ingest

        s = self.settings
        roots = [Path(s.corpus_dir)] + ([Path(s.upload_dir)] if Path(s.upload_dir).is_dir() else [])
        progress(0, desc="Checking the corpus")
        report = ingest(roots, store=self.store, embedder=self.embedder, chunk_tokens=s.chunk_tokens,
                        max_file_mb=s.max_file_mb, max_pdf_pages=s.max_pdf_pages, read_timeout=s.read_timeout,
                        progress=True,
                        batch=s.embed_batch, log=lambda msg: None)
        msg = "Re-indexed the corpus: " + report.summary()
        if report.failed:
            msg += "\nNot indexed:\n" + "\n".join(f"• {Path(f.path).name}: {f.error}" for f in report.failed)
        return (status_html(msg, ok=not report.failed), *self.library())

    @store_errors_as_gr_error
    def remove(self, doc_id: str | None):
        if not doc_id:
            raise gr.Error("Choose a document to remove first.")
        states = self.store.doc_states()
        if doc_id not in states:
            return (status_html(f"{doc_id} is not in the index.", ok=False), *self.library())
        n = self.store.delete_document(doc_id)
        path = states[doc_id].path
        note = ""
        if path and inside(path, Path(self.settings.upload_dir)):
            Path(path).unlink(missing_ok=True)
        elif path and inside(path, Path(self.settings.corpus_dir)):
            note = " It is still in the corpus folder, so the next corpus re-index adds it again."
        return (status_html(f"Removed {doc_id} ({n} chunks).{note}"), *self.library())

    # ------------------------------------------------------------------ evaluation
    def eval_report(self):
        return eval_report(self.settings.report_dir)

    def run_fast_eval(self, progress=gr.Progress(track_tqdm=True)):
        try:
            from evals.runner import DEFAULT_DATASET, EvalConfig, load_thresholds, run_eval
        except ImportError as exc:
            return (status_html(f"The evaluation suite is not available ({exc}).", ok=False), *self.eval_report()[1:])
        fast = load_thresholds().get("fast", {})
        progress(0, desc="Evaluating the fast subset")
        try:
            config = EvalConfig(DEFAULT_DATASET, out_dir=self.settings.report_dir, limit=fast.get("limit"),
                                retrieval_only=bool(fast.get("retrieval_only", False)), split=fast.get("split", "test"))
            result = run_eval(config, settings=self.settings, log=lambda msg: None)
        except Exception as exc:
            return (status_html(f"The evaluation failed: {type(exc).__name__}: {exc}", ok=False),
                    *self.eval_report()[1:])
        status, plots, md = self.eval_report()
        return (status_html(f"Evaluated {result.meta.questions} questions in {result.meta.seconds:.0f} s. "
                            f"Report written to {self.settings.report_dir}."), plots, md)


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
                        bulgarian = gr.Checkbox(value=app.settings.answer_language == "question",
                                                elem_id="sqa-bulgarian",
                                                label="Answer Bulgarian questions in Bulgarian · "
                                                      "Отговор на български",
                                                info="Off: answers are in English, the language of the documents, "
                                                     "because the bundled model writes Bulgarian poorly. "
                                                     "Изключено: отговорите са на английски, защото моделът пише "
                                                     "лошо на български.")
                        for persona, qs in EXAMPLES.items():
                            gr.Examples(examples=[[q] for q in qs], inputs=[question], label=persona,
                                        examples_per_page=len(qs))
                chat_io = dict(inputs=[question, chatbot, history, doc_types, docs_filter, bulgarian],
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


def launch_options(settings: Settings, auth: tuple[str, str] | None) -> dict:
    """The keyword arguments of ``demo.launch`` (tests launch the same way)."""
    return dict(server_name=settings.host, server_port=settings.port, share=False, auth=auth,
                auth_message="Sofia – Knowledge City document assistant" if auth else None,
                app_kwargs={"middleware": middleware(auth)} if auth else None,
                max_file_size=f"{settings.max_file_mb:g}mb", show_error=True, ssr_mode=False, pwa=False,
                mcp_server=False, run_history=False, theme=theme(), css=THEME_CSS, footer_links=["api"],
                enable_monitoring=False)


def theme() -> gr.themes.Base:
    """A theme with system fonts only: the default one fetches Google Fonts, and the app runs offline."""
    system = [gr.themes.Font("system-ui"), gr.themes.Font("Segoe UI"), gr.themes.Font("DejaVu Sans"), "sans-serif"]
    mono = [gr.themes.Font("DejaVu Sans Mono"), "monospace"]
    return gr.themes.Soft(primary_hue="blue", font=system, font_mono=mono)


def main() -> int:
    try:
        settings = Settings.from_env()
        auth = parse_auth(settings.auth)
    except ValueError as exc:
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 2
    try:
        demo = build(settings)
        demo.sofia_app.assistant.llm  # load the model now: a bad model is a start-up error, not a chat error
    except (StoreError, ModelError) as exc:  # one clear line instead of a traceback
        print(f"app.py: error: {exc}", file=sys.stderr)
        return 1
    # one generation at a time (concurrency_id "model"); the others wait and see "queue: n/m"
    demo.queue(default_concurrency_limit=1, max_size=QUEUE_MAX_SIZE)
    print(f"Sofia-QA on http://{settings.host}:{settings.port}{' (login required)' if auth else ''}", flush=True)
    demo.launch(**launch_options(settings, auth))
    return 0


if __name__ == "__main__":
    sys.exit(main())
