"""``sofia-qa``: a small CLI over the core. Every command takes --db and reads the same Settings."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from ingestion.config import Settings
from .cli_options import add_common_options as _common, settings_from  # shared with evals/cli.py
from .types import Retrieved


def _store(settings: Settings):
    from ingestion.store import Store

    return Store.open(settings)


# --------------------------------------------------------------------------- ingestion commands

def cmd_ingest(args) -> int:
    from ingestion.embedding import load_embedder
    from ingestion.pipeline import ingest

    s = settings_from(args)
    store = _store(s)
    embedder = load_embedder(s.embed_model, s.threads, s.embed_worker)
    paths = args.paths or [s.corpus_dir]
    report = ingest(paths, store=store, embedder=embedder, chunk_tokens=s.chunk_tokens,
                    max_file_mb=s.max_file_mb, max_pdf_pages=s.max_pdf_pages, read_timeout=s.read_timeout,
                    rebuild=args.rebuild,
                    progress=not args.json and sys.stderr.isatty() or args.progress, batch=s.embed_batch)
    if args.json:
        out = report.to_json()
        print(json.dumps({k: out[k] for k in ("added", "updated", "removed", "unchanged", "failed", "chunks",
                                              "embedded", "seconds")}, ensure_ascii=False, indent=2))
    else:
        print(report.summary())
        for f in report.failed:
            print(f"  failed: {f.path}: {f.error}")
    return 1 if (args.strict and report.failed) else 0


def cmd_docs(args) -> int:
    s = settings_from(args)
    states = _store(s).doc_states()
    rows = []
    for doc_id, st in sorted(states.items()):
        pages = sorted(st.pages)
        rows.append({"doc": doc_id, "title": st.title, "doc_type": st.doc_type, "chunks": st.count,
                     "pages": f"{pages[0]}-{pages[-1]}" if pages else "", "path": st.path,
                     "complete": st.count == st.expected and len(st.hashes) == 1,
                     "indexed_at": datetime.fromtimestamp(st.indexed_at, timezone.utc).isoformat(timespec="seconds")
                     if st.indexed_at else ""})
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"the index at {s.chroma_url or s.db} is empty; run `sofia-qa ingest`")
        return 0
    width = max(len(r["doc"]) for r in rows)
    for r in rows:
        print(f"{r['doc']:<{width}}  {r['doc_type']:<16} {r['chunks']:>4} chunks  {r['pages'] and 'pages ' + r['pages']}"
              f"  {r['title']}{'' if r['complete'] else '  (incomplete: re-run ingest)'}")
    return 0


def cmd_remove(args) -> int:
    s = settings_from(args)
    store = _store(s)
    states = store.doc_states()
    target = args.doc
    if target not in states:
        by_path = [d for d, st in states.items() if st.path and Path(st.path).resolve() == Path(target).resolve()]
        if not by_path:
            print(f"no document {target!r} in the index; see `sofia-qa docs`", file=sys.stderr)
            return 2
        target = by_path[0]
    n = store.delete_document(target)
    print(json.dumps({"removed": target, "chunks": n}) if args.json else f"removed {target} ({n} chunks)")
    return 0


# --------------------------------------------------------------------------- answering commands

def _filters(args) -> dict | None:
    f = {}
    if getattr(args, "doc_type", None):
        f["doc_type"] = args.doc_type
    if getattr(args, "doc", None):
        f["docs"] = args.doc
    return f or None


def _assistant(args):
    from assistant.answer import Assistant

    s = settings_from(args).with_overrides(model_path=args.model, llm_url=getattr(args, "llm_url", None))
    return Assistant(s)


def _print_answer(answer, as_json: bool, streamed: bool = False) -> None:
    if as_json:
        out = answer.to_json()
        keep = ("answer", "outcome", "evidence", "citations", "refused", "timings", "notice", "standalone_question",
                "removed_sentences", "model_failure")
        print(json.dumps({k: out[k] for k in keep}, ensure_ascii=False, indent=2))
        return
    from .prompts import NOT_FOUND

    # the draft streamed above (a NOT_FOUND start is held back, never streamed) could not be checked
    if streamed and answer.refused and answer.draft and not answer.draft.startswith(NOT_FOUND):
        print("\n\n(The text above could not be checked against the documents and is withdrawn.)")
    if not streamed or answer.refused:
        print(answer.text)
    elif answer.text:
        print("\n\nChecked answer: " + answer.text)
    if answer.notice:
        print(f"\nNote: {answer.notice}")
    sources = answer.citations or answer.evidence
    if sources:
        print()
        for c in sources:
            where = ", ".join(x for x in (c.section, f"p. {c.page}" if c.page else "") if x)
            print(f"[{c.n}] {c.title} ({where}) {c.source_url}\n    \"{c.quote}\"")
    elif answer.refused and answer.passages:
        print("\nClosest passages:")
        for p in answer.passages[:3]:
            print(f"- {p.label()}: {p.text[:200]}")


def _stream(items):
    """Print a streamed answer as it comes and return the final ``Answer`` and whether any draft text was printed:
    the passages being read go to stderr (stdout keeps only the answer and its sources), the text pieces to
    stdout (none with ``SOFIA_QA_STREAM_DRAFTS=0``)."""
    answer, shown = None, False
    for item in items:
        if isinstance(item, Retrieved):
            names = "; ".join(f"[{p.n}] {p.label()}" for p in item.passages)
            n = len(item.passages)
            print(f"(reading {n} passage{'s' if n != 1 else ''}: {names})", file=sys.stderr, flush=True)
        elif isinstance(item, str):
            print(item, end="", flush=True)
            shown = True
        else:
            answer = item
    return answer, shown


def cmd_ask(args) -> int:
    assistant = _assistant(args)
    if args.json:
        answer = assistant.ask(args.question, filters=_filters(args), k=args.k)
        _print_answer(answer, True)
    else:
        answer, shown = _stream(assistant.ask_stream(args.question, filters=_filters(args), k=args.k))
        _print_answer(answer, False, streamed=shown)
    if answer.model_failure:  # the passages were shown, but no answer: say so in one line and fail
        print(f"sofia-qa: error: {answer.model_failure}; only the passages were shown. Ask again; if it repeats, "
              f"run `sofia-qa doctor`", file=sys.stderr)
        return 3
    return 0


def cmd_doctor(args) -> int:
    from . import doctor

    s = settings_from(args).with_overrides(model_path=args.model, llm_url=args.llm_url)
    return doctor.report(doctor.run(s), args.json)


def cmd_chat(args) -> int:
    from ingestion.store import StoreError

    assistant = _assistant(args)
    history: list[tuple[str, str]] = []
    print("sofia-qa chat: ask about the Sofia strategy, cluster labels or membership. Empty line or Ctrl-D to quit.", flush=True)
    while True:
        try:
            question = input("\nyou> ").strip()
        except EOFError:
            return 0
        if not question:
            return 0
        print("sofia-qa> ", end="", flush=True)
        try:
            answer, shown = _stream(assistant.ask_stream(question, history=history, filters=_filters(args), k=args.k))
        except StoreError as exc:  # e.g. the Chroma server stopped: say so and keep the session
            print(f"\nsofia-qa: error: {exc}\n(the question was not answered; ask again when the index is back)",
                  file=sys.stderr, flush=True)
            continue
        _print_answer(answer, False, streamed=shown)
        history.append((question, answer.text))


def cmd_warm(args) -> int:
    assistant = _assistant(args)
    out = assistant.warm(progress=not args.json)
    folder = assistant.llm.prefixes.folder
    if args.json:
        print(json.dumps({**out, "folder": str(folder)}))
    else:
        print(f"{out['chunks']} chunks, {out['read']} of them read now (a chunk whose state was saved before, or whose "
              f"text another chunk repeats, is not read again)"
              + (f", {out['failed']} failed" if out["failed"] else "")
              + f"; {out['states']} saved states, {out['megabytes']} MB in {folder}")
        if out["left"]:
            print(f"stopped with {out['left']} chunks left: the states would exceed SOFIA_QA_PREFIX_CACHE_MB="
                  f"{assistant.settings.prefix_cache_mb}; raise it to save them all", file=sys.stderr)
    return 1 if out["failed"] else 0


# --------------------------------------------------------------------------- entry point

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sofia-qa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("ingest", help="index documents (default: the corpus folder)")
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--rebuild", action="store_true", help="drop the index and start over")
    p.add_argument("--strict", action="store_true", help="exit non-zero if any file failed")
    p.add_argument("--json", action="store_true")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when not on a terminal")
    _common(p)
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("docs", help="list indexed documents")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("remove", help="remove a document from the index")
    p.add_argument("doc", help="document id (as `sofia-qa docs` shows it) or path")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_remove)

    for name, helptext in (("ask", "answer one question with citations"), ("chat", "terminal chat with follow-ups")):
        p = sub.add_parser(name, help=helptext)
        if name == "ask":
            p.add_argument("question")
            p.add_argument("--json", action="store_true")
        p.add_argument("--doc-type", action="append", help="only these document types (repeatable)")
        p.add_argument("--doc", action="append", help="only these documents (repeatable)")
        p.add_argument("-k", type=int, help="passages to give the model")
        p.add_argument("--model", help="a GGUF file instead of the bundled model (SOFIA_QA_MODEL_PATH)")
        p.add_argument("--llm-url", help="an OpenAI-compatible server instead of the local model (SOFIA_QA_LLM_URL)")
        _common(p)
        p.set_defaults(func=cmd_ask if name == "ask" else cmd_chat)

    p = sub.add_parser("warm", help="read every chunk once as a first passage and save the model's state after it "
                                    "(a faster first word; about 1.4 s a chunk here, once)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model", help="a GGUF file instead of the bundled model (SOFIA_QA_MODEL_PATH)")
    _common(p)
    p.set_defaults(func=cmd_warm)

    p = sub.add_parser("doctor", help="check the CPU, the llama.cpp build, the model, the index, and answer one "
                                      "question in a child process; says what to fix")
    p.add_argument("--json", action="store_true")
    p.add_argument("--model", help="a GGUF file instead of the bundled model (SOFIA_QA_MODEL_PATH)")
    p.add_argument("--llm-url", help="an OpenAI-compatible server instead of the local model (SOFIA_QA_LLM_URL)")
    _common(p)
    p.set_defaults(func=cmd_doctor)

    for register in _EXTRA:
        register(sub, _common)
    return parser


def _optional_commands() -> list:
    """Commands that live beside the core: the evaluation suite and the alignment check. Both ship in the package
    (pyproject.toml), so one that cannot be loaded is a broken install, reported as such instead of a missing command."""
    import importlib

    found = []
    for module in ("evals.cli", "assistant.align"):
        try:
            found.append(importlib.import_module(module).register)
        except (ImportError, AttributeError) as exc:
            raise ImportError(f"sofia-qa: cannot load the commands in {module}: {type(exc).__name__}: {exc} "
                              f"(a broken install? `make install` reinstalls)") from exc
    return found


_EXTRA: list = _optional_commands()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error instead of a traceback for known failures
        from ingestion.embedding import EmbeddingError
        from ingestion.store import StoreError

        from .llm import ModelError

        if isinstance(exc, (StoreError, EmbeddingError, ModelError, ValueError, FileNotFoundError)):
            print(f"sofia-qa: error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
