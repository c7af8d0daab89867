"""Run a dataset through every retrieval system and (unless retrieval-only) the full assistant.

One pass, with a progress bar; everything measured goes into an ``EvalResult`` whose JSON ``report``
writes as JSON, Markdown and HTML. Scoring is delegated to the pure functions in ``metrics`` and ``grounding``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import resource
import sys
import time
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from statistics import median
from typing import Any, Callable, Mapping

from . import grounding as G
from . import metrics as M
from .baselines import OURS, chunk_pages, make_systems
from .datasets import DEFAULT_DATASET, GoldQuestion, load_dataset
from .schema import (KS, AnswerRecord, Calibration, Coverage, EvalConfig, EvalResult, Partial, QuestionRecord,
                     RunMeta, Summary)

__all__ = ["DEFAULT_DATASET", "KS", "EvalConfig", "EvalResult", "run_eval", "gate_failures", "load_thresholds"]

HERE = Path(__file__).resolve().parent
THRESHOLDS = HERE / "thresholds.toml"
RECORDS = "records.jsonl"  # per-question results inside the report folder, for --resume
CODE_DIRS = ("assistant", "ingestion", "evals")
CORRECT_KFR = 0.5  # an answer is "correct" when at least half its key facts are present ...
CORRECT_F1 = 0.3  # ... or, for questions without key facts, token F1 with the reference reaches this
SWEEP = tuple(i / 20 for i in range(21))


def load_thresholds(path: Path = THRESHOLDS) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def pick(questions: list[GoldQuestion], limit: int | None) -> list[GoldQuestion]:
    """``limit`` questions spread evenly over the dataset (so a subset still mixes personas, languages
    and unanswerable questions), in dataset order."""
    if not limit or limit >= len(questions):
        return list(questions)
    step = len(questions) / limit
    return [questions[int(i * step)] for i in range(limit)]


def run_eval(config: EvalConfig, *, settings=None, assistant=None,
             log: Callable[[str], None] | None = None) -> EvalResult:
    """Evaluate; returns the result (and, with ``config.write``, writes report.json/.md/.html into ``out_dir``).

    ``settings``: the index and models (default: ``Settings.from_env()``). ``assistant``: an already loaded
    ``Assistant`` to reuse (e.g. the app's, so the model is not loaded twice); it must read the same index, so
    it is ignored when ``config.corpus_dir`` is given.

    An answer run is slow on a CPU, so it can be done in parts: every question's record is appended to
    ``out_dir/records.jsonl`` as soon as it is scored, with a fingerprint of the code, model settings, index and
    dataset. ``config.resume`` reuses the records whose fingerprint matches (any change to the code or settings
    starts afresh). ``config.budget_seconds`` stops asking new questions once that much time has passed; the
    report then covers the questions done so far and says how many are missing (``meta.partial``). Questions are
    asked in a fixed mixed order, so any part is a spread of personas, languages and unanswerable questions."""
    from tqdm import tqdm

    from ingestion.config import Settings
    from ingestion.embedding import load_embedder
    from ingestion.store import Store

    log = log or (lambda msg: print(msg, file=sys.stderr))
    t_start = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    dataset, split, lang, limit = config.dataset, config.split, config.lang, config.limit
    retrieval_only, k, progress, write = config.retrieval_only, config.k, config.progress, config.write
    budget_seconds, corpus_dir = config.budget_seconds, config.corpus_dir
    out_dir = Path(config.out_dir)
    in_memory = not isinstance(dataset, (str, Path))
    dataset_name = "(in memory)" if in_memory else str(dataset)
    questions = [q for q in dataset if not split or split == "all" or not q.split or q.split == split] \
        if in_memory else load_dataset(dataset, split)
    if lang:  # one language only, e.g. the Bulgarian questions after a change that touches only them
        questions = [q for q in questions if q.lang == lang]
    questions = pick(questions, limit)
    if not questions:
        raise ValueError(f"no questions in {dataset_name} for split {split or 'all'!r}"
                         + (f" and language {lang!r}" if lang else ""))

    settings = settings or Settings.from_env()
    ingest_summary = None
    if corpus_dir is not None:
        corpus_dir = Path(corpus_dir)
        if not corpus_dir.is_dir():
            raise FileNotFoundError(f"corpus folder {corpus_dir} does not exist")
        tag = hashlib.sha1(str(corpus_dir.resolve()).encode()).hexdigest()[:8]
        settings = dataclasses.replace(settings, db=out_dir / "index", chroma_url=None,
                                       collection=f"eval_{tag}")
    embedder = load_embedder(settings.embed_model, settings.threads, settings.embed_worker)
    store = Store.open(settings)
    if corpus_dir is not None:
        from ingestion.pipeline import ingest

        rep = ingest([corpus_dir], store=store, embedder=embedder, chunk_tokens=settings.chunk_tokens,
                     max_file_mb=settings.max_file_mb, max_pdf_pages=settings.max_pdf_pages,
                     read_timeout=settings.read_timeout,
                     progress=progress, batch=settings.embed_batch, log=log)
        ingest_summary = rep.summary()
        log(f"eval index: {ingest_summary}")
    if store.count() == 0:
        raise ValueError(f"the index at {settings.chroma_url or settings.db} is empty; "
                         f"run `sofia-qa ingest` or pass --corpus DIR")

    t0 = time.perf_counter()
    # the baseline's own index is kept beside ours (a --corpus run: inside its --out folder)
    built = make_systems(list(config.systems), store, embedder, settings, cache_dir=Path(settings.db).parent / "eval-cache")
    setup_seconds = time.perf_counter() - t0
    if retrieval_only:
        assistant = None
    elif assistant is None or corpus_dir is not None:
        from assistant.answer import Assistant

        assistant = Assistant(settings, store=store, embedder=embedder)
    pages = chunk_pages(store)
    glossary = corpus_glossary(corpus_dir if corpus_dir is not None else settings.corpus_dir)

    fingerprint = run_fingerprint(settings, store.count(), questions, retrieval_only, list(built), k)
    records_path = out_dir / RECORDS
    done = load_records(records_path, fingerprint) if config.resume else {}
    if write and not config.resume:
        records_path.unlink(missing_ok=True)
    by_id: dict[str, QuestionRecord] = {q.id: done[q.id] for q in questions if q.id in done}
    if by_id:
        log(f"resume: {len(by_id)} of {len(questions)} questions already scored with this code and settings")
    todo = sorted((q for q in questions if q.id not in by_id), key=lambda q: hashlib.sha1(q.id.encode()).hexdigest())
    stopped = 0
    for i, q in enumerate(tqdm(todo, desc="eval", unit="q", disable=not progress, file=sys.stderr)):
        if budget_seconds is not None and time.perf_counter() - t_start > budget_seconds:
            stopped = len(todo) - i
            log(f"time budget of {budget_seconds:.0f} s used: {stopped} questions left for a later --resume run")
            break
        rec = _question_record(q)
        for name, system in built.items():
            t = time.perf_counter()
            hits = system.retrieve(q.question, k)
            rec["retrieval"][name] = {
                "seconds": time.perf_counter() - t,
                "scores": M.retrieval_scores([r for r, _ in hits], q.gold_sources, q.fact_ids, KS),
                "passages": [_ref_json(r, s) for r, s in hits],
            }
        if assistant is not None:
            rec["answer"] = score_answer(q, assistant.ask(q.question), pages, glossary)
        rec["checks"] = checks(rec)
        by_id[q.id] = rec
        if write:
            out_dir.mkdir(parents=True, exist_ok=True)
            with records_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"fingerprint": fingerprint, "id": q.id, "record": rec}, ensure_ascii=False,
                                    default=str) + "\n")
    records = [by_id[q.id] for q in questions if q.id in by_id]
    if not records:
        raise ValueError(f"no question was scored within the time budget of {budget_seconds} s")

    meta = RunMeta(
        dataset=dataset_name, questions=len(questions), limit=limit,
        split=(split or "all") + ("" if any(q.split for q in questions) else " (the dataset has no splits)")
        + (f", {lang} questions only" if lang else ""),
        retrieval_only=retrieval_only, systems=list(built), ours=OURS, k=k,
        embed_model=settings.embed_model, index=str(settings.chroma_url or settings.db),
        collection=settings.collection, corpus=str(corpus_dir) if corpus_dir else None,
        ingest=ingest_summary, started=started, setup_seconds=setup_seconds, python=platform.python_version(),
        notes={"llamaindex-default": "fixed top-2, so its @3, @5 and @10 numbers see only two passages"},
        fingerprint=fingerprint, reused=len(done.keys() & {q.id for q in questions}),
        partial=Partial(scored=len(records), of=len(questions)) if stopped else None,
    )
    result = EvalResult(meta=meta, summary=summarize(records, retrieval_only), questions=records)
    meta.seconds = time.perf_counter() - t_start
    meta.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if write:
        from .report import write_reports

        meta.files = [str(p) for p in write_reports(result.to_json(), out_dir)]
    return result


# --------------------------------------------------------------------------- resumable runs

def run_fingerprint(settings, chunks: int, questions: list[GoldQuestion], retrieval_only: bool,
                    systems: list[str], k: int) -> str:
    """What a question's record depends on: the code, the gate, the settings, the index size, the questions."""
    h = hashlib.sha1()
    root = HERE.parent
    for d in CODE_DIRS:
        for f in sorted((root / d).glob("*.py")) + sorted((root / d).glob("*.json")):
            h.update(f.name.encode() + b"\0" + f.read_bytes())
    s = {k_: v for k_, v in settings.describe().items() if k_ not in ("host", "port", "upload_dir", "report_dir")}
    h.update(json.dumps([s, chunks, retrieval_only, systems, k], sort_keys=True, default=str).encode())
    for q in questions:
        h.update(json.dumps(dataclasses.asdict(q), sort_keys=True, default=str, ensure_ascii=False).encode())
    return h.hexdigest()[:16]


def load_records(path: Path, fingerprint: str) -> dict[str, QuestionRecord]:
    """Records of an earlier run with the same fingerprint, by question id (a torn last line is skipped)."""
    out: dict[str, QuestionRecord] = {}
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if row.get("fingerprint") == fingerprint and "record" in row:
            out[row["id"]] = row["record"]
    return out


# --------------------------------------------------------------------------- per question

def _question_record(q: GoldQuestion) -> QuestionRecord:
    return {"id": q.id, "question": q.question, "split": q.split, "persona": q.persona, "lang": q.lang,
            "answerable": q.answerable, "kind": q.kind, "reference_answer": q.reference_answer,
            "key_facts": list(q.key_facts), "fact_ids": list(q.fact_ids),
            "gold_sources": [dataclasses.asdict(s) for s in q.gold_sources],
            "retrieval": {}, "answer": None, "checks": {}}


def _ref_json(r: M.Ref, score: float) -> dict:
    pages = "" if r.page_start is None else (str(r.page_start) if r.page_end in (None, r.page_start)
                                             else f"{r.page_start}-{r.page_end}")
    section = " > ".join(r.heading_path) + (f" (+{len(r.more_paths)} more sections)" if r.more_paths else "")
    return {"doc": r.doc, "section": section, "pages": pages,
            "fact_ids": list(r.fact_ids), "score": round(score, 4)}


def corpus_glossary(corpus_dir) -> list:
    """The Bulgarian–English glossary entries of a corpus folder (``glossary*.md``; none: an empty list), so that
    grounding accepts the English form of a name a Bulgarian answer translates."""
    folder = Path(corpus_dir) if corpus_dir else None
    if folder is None or not folder.is_dir():
        return []
    return [e for f in sorted(folder.glob("glossary*.md")) for e in G.parse_glossary(f.read_text(encoding="utf-8"))]


def score_answer(q: GoldQuestion, ans, pages: dict | None = None, glossary=()) -> AnswerRecord:
    """Every answer-level number for one question (pure given the Answer object, page lookup and glossary)."""
    cited = [(c, cited_passage(c, ans.passages)) for c in ans.citations]
    refs = [M.Ref.of(p, pages) for _, p in cited if p is not None]
    # the answer alone: an unconfirmed outcome's text quotes the passages, which ``answer_or_evidence_recall`` counts
    kfr = M.key_fact_recall("" if ans.refused else ans.text, q.key_facts) if q.answerable else None
    outcome = getattr(ans, "outcome", "not_found" if ans.refused else "answered")
    evidence = list(getattr(ans, "evidence", []))
    f1 = M.token_f1(ans.text, q.reference_answer) if q.answerable else None
    ground, missing = (None, []) if ans.refused else G.grounding(ans.text, [r.text for r in refs], glossary)
    if not q.answerable:
        correct = ans.refused
    elif ans.refused:
        correct = False
    elif kfr is not None:
        correct = kfr >= CORRECT_KFR
    else:
        correct = None if f1 is None else f1 >= CORRECT_F1
    return {
        "text": ans.text, "refused": bool(ans.refused), "correct": correct,
        "citations": [{"n": c.n, "doc": c.doc, "section": c.section, "page": c.page, "quote": c.quote,
                       "quote_valid": p is not None and M.quote_valid(c.quote, p.text)} for c, p in cited],
        "scores": {
            "key_fact_recall": kfr, "token_f1": f1,
            "citation_precision": None if ans.refused else M.citation_precision(refs, q.gold_sources, q.fact_ids),
            "quote_validity": M.quote_validity((c.quote, p.text if p else "") for c, p in cited),
            "grounding": ground,
            "citation_page_accuracy": None if ans.refused else M.citation_page_accuracy(
                [(c.doc, c.page) for c in ans.citations], q.gold_sources),
            "answer_or_evidence_recall": M.answer_or_evidence_recall(
                outcome, ans.text, [c.quote for c in evidence], q.key_facts) if q.answerable else None,
            "false_not_found": M.false_not_found(outcome, [p.text for p in ans.passages], q.key_facts)
            if q.answerable else None,
        },
        "outcome": outcome,
        "evidence": [{"n": c.n, "doc": c.doc, "section": c.section, "page": c.page, "quote": c.quote}
                     for c in evidence],
        "missing": missing, "timings": dict(ans.timings), "tokens_per_s": tokens_per_s(ans),
        # what the model wrote before the citation check, and what the check took out and why
        "draft": ans.draft, "draft_cut_off": ans.draft_cut_off, "removed": list(ans.removed_sentences),
        "signals": {k: v for k, v in ans.signals.items() if isinstance(v, (int, float))},
    }


def cited_passage(c, passages):
    """The passage a citation points at. ``Citation.n`` numbers citations in the answer (1, 2, ...),
    not passages, so match on the citation's passage number when it has one (``passage_n``), else on
    document, section and pages, preferring the passage that holds the quote; None when nothing fits."""
    n = getattr(c, "passage_n", 0)
    if n:  # 0 = not recorded
        return next((p for p in passages if p.n == n), None)
    same = [p for p in passages if p.doc_id == c.doc and p.chunk.section == c.section
            and (not c.page or p.chunk.pages == c.page)]
    return next((p for p in same if M.quote_valid(c.quote, p.text)), same[0] if same else None)


def tokens_per_s(ans) -> float | None:
    """Generation speed: tokens written per second after the first one. ``generate`` also covers reading the
    prompt (most of it on a CPU), so when the first token's time is known it is taken out; else tokens / generate."""
    for source in (ans.timings, ans.signals):
        for key in ("tokens_per_s", "tokens_per_second", "tok_s"):
            if source.get(key):
                return float(source[key])
    tokens = next((ans.signals[k] for k in ("answer_tokens", "completion_tokens", "tokens") if ans.signals.get(k)), None)
    gen = ans.timings.get("generate")
    if not tokens or not gen:
        return None
    first = ans.timings.get("first_token")  # counted from the start of the answer: retrieval included
    if first is not None and tokens > 1:
        writing = gen - (first - ans.timings.get("retrieve", 0.0))
        if writing > 0:
            return (float(tokens) - 1) / writing
    return float(tokens) / gen


def checks(rec: QuestionRecord) -> dict[str, bool]:
    """Pass/fail per check for the per-question table (only checks that apply)."""
    out: dict[str, bool] = {}
    ours = rec["retrieval"].get(OURS, {}).get("scores", {})
    for level in M.LEVELS:
        if ours.get(f"{level}_hit@5") is not None:
            out[f"{level} hit@5"] = ours[f"{level}_hit@5"] == 1.0
    if ours.get("page_hit@5") is not None:
        out["page hit@5"] = ours["page_hit@5"] == 1.0
    a = rec.get("answer")
    if a:
        s = a["scores"]
        if s["key_fact_recall"] is not None:
            out["key facts"] = s["key_fact_recall"] >= CORRECT_KFR
        if s["citation_precision"] is not None:
            out["citations relevant"] = s["citation_precision"] == 1.0
        if s["quote_validity"] is not None:
            out["quotes verbatim"] = s["quote_validity"] == 1.0
        if s["grounding"] is not None:
            out["grounded"] = s["grounding"] == 1.0
        out["answer/refuse right"] = a["refused"] != rec["answerable"]
    return out


# --------------------------------------------------------------------------- summary

def summarize(records: list[QuestionRecord], retrieval_only: bool) -> Summary:
    groups = [{"persona": r["persona"], "lang": r["lang"], "kind": r.get("kind", "")} for r in records]
    by = ("persona", "lang") + (("kind",) if any(r.get("kind") for r in records) else ())
    systems = list(dict.fromkeys(name for r in records for name in r["retrieval"]))
    summary = Summary(retrieval={}, retrieval_latency={}, breakdown={}, coverage=Coverage(
        questions=len(records), with_gold_sources=sum(1 for r in records if r["gold_sources"]),
        with_fact_ids=sum(1 for r in records if r["fact_ids"]),
        with_key_facts=sum(1 for r in records if r["key_facts"]),
        unanswerable=sum(1 for r in records if not r["answerable"])))
    for name in systems:
        rows = [r["retrieval"][name]["scores"] for r in records]
        summary.retrieval[name] = {m: v["mean"] for m, v in M.mean_scores(rows).items()}
        summary.retrieval_latency[name] = M.latency_summary([r["retrieval"][name]["seconds"] for r in records])
    if OURS in systems:
        summary.breakdown["retrieval"] = M.breakdown([r["retrieval"][OURS]["scores"] for r in records], groups, by)
    answered = [r for r in records if r.get("answer")]
    if retrieval_only or not answered:
        return summary
    rows = [r["answer"]["scores"] for r in answered]
    summary.answer = {m: v["mean"] for m, v in M.mean_scores(rows).items()}
    summary.answer_n = {m: v["n"] for m, v in M.mean_scores(rows).items()}
    summary.breakdown["answer"] = M.breakdown(rows, [g for g, r in zip(groups, records) if r.get("answer")], by)
    summary.refusal = M.refusal_scores((r["answerable"], r["answer"]["refused"]) for r in answered)
    summary.outcomes = M.outcome_counts((r["answerable"], r["answer"].get("outcome")
                                         or ("not_found" if r["answer"]["refused"] else "answered")) for r in answered)
    stages = list(dict.fromkeys(s for r in answered for s in r["answer"]["timings"]))
    summary.latency = {s: M.latency_summary([r["answer"]["timings"].get(s) for r in answered]) for s in stages}
    summary.tokens_per_s = M.latency_summary([r["answer"]["tokens_per_s"] for r in answered])
    summary.calibration = calibration(answered)
    return summary


def calibration(answered: list[QuestionRecord]) -> Calibration | None:
    items = [(float(r["answer"]["signals"]["gate"]), r["answerable"],
              None if r["answer"]["refused"] else r["answer"]["correct"])
             for r in answered if "gate" in r["answer"]["signals"]]
    if not items:
        return None
    chosen = [r["answer"]["signals"]["threshold"] for r in answered if "threshold" in r["answer"]["signals"]]
    op = float(median(chosen)) if chosen else None
    sweep = sorted(set(SWEEP) | ({round(op, 4)} if op is not None else set()))
    rows = M.calibration(items, sweep)
    for row in rows:
        row["chosen"] = op is not None and abs(row["threshold"] - op) < 1e-9
    return Calibration(operating_threshold=op, curve=rows, n=len(items))


# --------------------------------------------------------------------------- CI gate

GATES = {  # name in thresholds.toml -> where the number lives in the summary
    "hit_at_5": ("retrieval", OURS, "doc_hit@5"),
    "fact_hit_at_5": ("retrieval", OURS, "fact_hit@5"),
    "mrr": ("retrieval", OURS, "doc_mrr"),
    "key_fact_recall": ("answer", "key_fact_recall"),
    "citation_precision": ("answer", "citation_precision"),
    "quote_validity": ("answer", "quote_validity"),
    "grounding": ("answer", "grounding"),
    "refusal_accuracy": ("refusal", "refusal_accuracy"),
}


def gate_failures(summary: Summary | Mapping[str, Any], gate: Mapping[str, float]) -> list[str]:
    """Metrics below their minimum (metrics that were not measured are skipped); ``summary``: a run's, or the
    ``summary`` of a report.json."""
    doc = summary.to_json() if isinstance(summary, Summary) else summary
    failures = []
    for name, minimum in gate.items():
        if name not in GATES:
            raise ValueError(f"thresholds.toml: unknown gate metric {name!r}; known: {', '.join(GATES)}")
        value: Any = doc
        for key in GATES[name]:
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None and value < minimum:
            failures.append(f"{name} = {value:.3f} < {minimum}")
    return failures
