"""``sofia-qa align``: a proposal file or standard input -> the alignment table as Markdown or JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def register(subparsers, common) -> None:
    p = subparsers.add_parser("align", help="check a proposal against the Sofia RIS3 priorities")
    p.add_argument("file", help="proposal (.pdf, .docx, .txt, .md, .html) or - for standard input")
    p.add_argument("--json", action="store_true")
    p.add_argument("--priorities", metavar="FILE",
                   help="an edited copy of the priorities file (SOFIA_QA_PRIORITIES_FILE; default: the packaged one)")
    common(p)
    p.set_defaults(func=cmd_align)


def cmd_align(args) -> int:
    from ingestion.config import Settings
    from ingestion.embedding import load_embedder
    from ingestion.readers import ReadError
    from ingestion.store import Store

    from ..retrieve import Retriever
    from .check import align, align_file
    from .priorities import load_priorities

    s = Settings.from_env(db=args.db, chroma_url=args.chroma_url, collection=args.collection,
                          embed_model=args.embed_model, priorities_file=args.priorities)
    priorities = load_priorities(s.priorities_file)  # a bad file is reported before any model loads
    embedder = load_embedder(s.embed_model, s.threads, s.embed_worker)
    retriever = Retriever(Store.open(s, embedder.name), embedder, s)
    try:
        if args.file == "-":
            report = align(sys.stdin.read(), retriever, embedder, source="standard input", priorities=priorities)
        else:
            report = align_file(Path(args.file), retriever, embedder, settings=s, priorities=priorities)
    except ReadError as exc:
        print(f"sofia-qa: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print(report.to_markdown())
    return 0
