"""Write a run as ``report.json`` (every number), ``report.md`` and a self-contained ``report.html``.

The HTML embeds its plots as base64 PNGs and HTML-escapes every piece of text."""

from __future__ import annotations

import base64
import io
import json
from html import escape
from pathlib import Path

RETRIEVAL_COLUMNS = ("doc_hit@1", "doc_hit@3", "doc_hit@5", "doc_hit@10", "doc_recall@5", "doc_mrr", "doc_ndcg@10",
                     "fact_hit@5", "fact_recall@5", "fact_mrr",
                     "page_hit@1", "page_hit@5", "page_hit@10", "page_ndcg@10")  # page_*: only where gold names pages
PAGE_ONLY = ("citation_page_accuracy",)  # answer metrics shown only when some gold source names a page
ANSWER_COLUMNS = ("key_fact_recall", "token_f1", "citation_precision", "quote_validity", "grounding",
                  "answer_or_evidence_recall", "false_not_found")
OUTCOME_LABELS = {"answered": "answered", "unconfirmed": "unconfirmed (passage quoted)",
                  "not_found": "not in the documents"}


def write_reports(result: dict, out_dir) -> list[Path]:
    """``result``: the report.json document (``EvalResult.to_json()``); returns the three paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "report.html"]
    paths[0].write_text(json.dumps(result, ensure_ascii=False, indent=2, default=str), encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    paths[2].write_text(html(result, plots(result)), encoding="utf-8")
    return paths


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _title(meta: dict) -> str:
    part = meta.get("partial")
    count = f"{part['scored']} of {meta['questions']} questions: PARTIAL" if part else f"{meta['questions']} questions"
    return f"sofia-qa evaluation: {meta['dataset']} (split {meta['split']}, {count})"


def _tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(caption, header, rows) of every summary table, shared by Markdown and HTML."""
    s, meta = result["summary"], result["meta"]
    tables = []
    cols = [c for c in RETRIEVAL_COLUMNS if any(m.get(c) is not None for m in s["retrieval"].values())]
    tables.append(("Retrieval (mean over questions with gold sources / fact ids)", ["system", *cols, "p50 s", "p95 s"],
                   [[name + (" (ours)" if name == meta["ours"] else ""), *[fmt(m.get(c)) for c in cols],
                     fmt(s["retrieval_latency"][name]["p50"]), fmt(s["retrieval_latency"][name]["p95"])]
                    for name, m in s["retrieval"].items()]))
    if "answer" in s:
        tables.append(("Answers (full assistant)", ["metric", "mean", "questions"],
                       [[c, fmt(s["answer"].get(c)), fmt(s["answer_n"].get(c))] for c in ANSWER_COLUMNS + PAGE_ONLY
                        if c not in PAGE_ONLY or s["answer_n"].get(c)]))
        tables.append(("Refusal (refusal = positive class)", ["metric", "value"],
                       [[k, fmt(v)] for k, v in s["refusal"].items()]))
        if s.get("outcomes"):
            oc = s["outcomes"]
            tables.append(("Outcomes (questions)", ["outcome", "answerable", "unanswerable", "share of unanswerable"],
                           [[label, fmt(oc["answerable"][o]), fmt(oc["unanswerable"][o]),
                             fmt(oc["unanswerable_share"][o])] for o, label in OUTCOME_LABELS.items()]))
        lat = [[stage, fmt(v["p50"]), fmt(v["p95"]), fmt(v["mean"])] for stage, v in s["latency"].items()]
        lat.append(["generated tokens/s (after the first)", fmt(s["tokens_per_s"]["p50"], 1), fmt(s["tokens_per_s"]["p95"], 1),
                    fmt(s["tokens_per_s"]["mean"], 1)])
        tables.append(("Latency per stage (seconds)", ["stage", "p50", "p95", "mean"], lat))
    for part, groups in s.get("breakdown", {}).items():
        wanted = ("doc_hit@5", "fact_hit@5", "doc_mrr") if part == "retrieval" else ANSWER_COLUMNS
        for key, values in groups.items():
            rows = [[value, fmt(max((m["n"] for m in ms.values()), default=0)),
                     *[fmt(ms.get(c, {}).get("mean")) for c in wanted]] for value, ms in values.items()]
            tables.append((f"{part.capitalize()} by {key}", [key, "n", *wanted], rows))
    cov = s["coverage"]
    tables.append(("Dataset coverage", ["item", "questions"], [[k, str(v)] for k, v in cov.items()]))
    return tables


def _meta_lines(meta: dict) -> list[str]:
    part = meta.get("partial")
    return [f"dataset: {meta['dataset']}", f"split: {meta['split']}", f"questions: {meta['questions']}"
            + (f" (partial: {part['scored']} scored; `--resume` goes on)" if part else "")
            + (f" ({meta['reused']} reused from an earlier run of the same code)" if meta.get("reused") else ""),
            f"mode: {'retrieval only' if meta['retrieval_only'] else 'retrieval + full assistant'}",
            f"systems: {', '.join(meta['systems'])} (ours: {meta['ours']}), k = {meta['k']}",
            f"embedding model: {meta['embed_model']}; index: {meta['index']} / {meta['collection']}",
            *( [f"corpus: {meta['corpus']} ({meta['ingest']})"] if meta.get("corpus") else []),
            f"started: {meta['started']}; took {meta.get('seconds', 0):.1f} s; "
            f"peak memory {meta.get('peak_memory_mb', 0):.0f} MB",
            *[f"note: {k}: {v}" for k, v in meta.get("notes", {}).items()]]


def _answer_cell(rec: dict) -> str:
    a = rec.get("answer")
    if not a:
        return ""
    outcome = a.get("outcome") or ("not_found" if a["refused"] else "answered")  # older records lack it
    return ("" if outcome == "answered" else f"[{OUTCOME_LABELS.get(outcome, outcome)}] ") + a["text"]


def _outcome_cell(rec: dict) -> str:
    a = rec.get("answer")
    if not a:
        return ""
    return OUTCOME_LABELS.get(a.get("outcome") or ("not_found" if a["refused"] else "answered"), "")


def _retrieved_cell(rec: dict, ours: str) -> str:
    got = rec["retrieval"].get(ours, {}).get("passages", [])
    return "; ".join(f"{p['doc']}{' > ' + p['section'] if p['section'] else ''}"
                     f"{' p.' + p['pages'] if p['pages'] else ''}" for p in got)


# --------------------------------------------------------------------------- Markdown

def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [f"# {_title(meta)}", ""] + [f"- {_md_cell(m)}" for m in _meta_lines(meta)] + [""]
    for caption, header, rows in _tables(result):
        lines += [f"## {caption}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows] + [""]
    cal = result["summary"].get("calibration")
    if cal:
        lines += ["## Refusal calibration", "", f"operating threshold: {fmt(cal['operating_threshold'])}", "",
                  "| threshold | answered correctly | answered wrongly | refused | answered, unknown |",
                  "|---|---|---|---|---|"]
        lines += [f"| {fmt(r['threshold'], 2)}{' (chosen)' if r['chosen'] else ''} | {fmt(r['answered_correct'])} | "
                  f"{fmt(r['answered_wrong'])} | {fmt(r['refused'])} | {fmt(r['answered_unknown'])} |"
                  for r in cal["curve"]] + [""]
    failed = [r for r in result["questions"] if not all(r["checks"].values())]
    lines += [f"## Questions with a failed check ({len(failed)} of {len(result['questions'])})", ""]
    lines += [f"- **{_md_cell(r['id'])}** {_md_cell(r['question'])} — failed: "
              f"{', '.join(k for k, v in r['checks'].items() if not v)}" for r in failed]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- plots

def plots(result: dict) -> dict[str, str]:
    """Base64 PNGs: metric bars per system, latency histogram, refusal calibration curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = result["summary"]
    out: dict[str, str] = {}
    cols = [c for c in ("doc_hit@1", "doc_hit@5", "doc_mrr", "doc_ndcg@10", "fact_hit@5", "fact_mrr", "page_hit@5",
                        "page_ndcg@10")
            if any(m.get(c) is not None for m in s["retrieval"].values())]
    if cols:
        fig, ax = plt.subplots(figsize=(8, 3.6))
        width = 0.8 / max(1, len(s["retrieval"]))
        for i, (name, m) in enumerate(s["retrieval"].items()):
            ax.bar([j + i * width for j in range(len(cols))], [m.get(c) or 0.0 for c in cols], width, label=name)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cols))], cols)
        ax.set_ylim(0, 1.2)
        ax.set_title("Retrieval metrics per system")
        ax.legend(fontsize=8, ncol=len(s["retrieval"]), loc="upper center")
        out["Retrieval metrics per system"] = _png(fig, plt)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    if s.get("latency", {}).get("total"):
        values = [r["answer"]["timings"].get("total") for r in result["questions"] if r.get("answer")]
        ax.hist([v for v in values if v is not None], bins=20)
        ax.set_title("Answer latency (total, seconds)")
    else:
        series = {name: [r["retrieval"][name]["seconds"] for r in result["questions"]] for name in s["retrieval_latency"]}
        top = max((max(v) for v in series.values() if v), default=1.0) or 1.0
        bins = [top * i / 20 for i in range(21)]
        for name, values in series.items():
            ax.hist(values, bins=bins, histtype="step", linewidth=1.5, label=name)
        ax.legend(fontsize=8)
        ax.set_title("Retrieval latency per system (seconds)")
    ax.set_xlabel("seconds")
    ax.set_ylabel("questions")
    out["Latency histogram"] = _png(fig, plt)
    if s.get("outcomes"):
        fig, ax = plt.subplots(figsize=(8, 2.6))
        groups = ("answerable", "unanswerable")
        left = [0.0, 0.0]
        for o, label in OUTCOME_LABELS.items():
            counts = [s["outcomes"][g][o] for g in groups]
            ax.barh(groups, counts, left=left, label=label)
            left = [x + c for x, c in zip(left, counts)]
        ax.set_xlabel("questions")
        ax.set_title("Outcomes")
        ax.legend(fontsize=8, loc="lower right")
        out["Outcomes"] = _png(fig, plt)
    cal = s.get("calibration")
    if cal:
        fig, ax = plt.subplots(figsize=(8, 3.4))
        xs = [r["threshold"] for r in cal["curve"]]
        for key, label in (("answered_correct", "answered correctly"), ("answered_wrong", "answered wrongly"),
                           ("refused", "refused"), ("answered_unknown", "answered, unknown")):
            ax.plot(xs, [r[key] for r in cal["curve"]], marker=".", label=label)
        if cal["operating_threshold"] is not None:
            ax.axvline(cal["operating_threshold"], color="k", linestyle="--", label="operating point")
        ax.set_xlabel("gate threshold")
        ax.set_ylabel("fraction of questions")
        ax.set_title("Refusal calibration")
        ax.legend(fontsize=8)
        out["Refusal calibration"] = _png(fig, plt)
    return out


def _png(fig, plt) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- HTML

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;
margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;font-size:.9em}
th{background:#f3f3f3}.pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}td.q{max-width:28em}
td.a{max-width:36em;white-space:pre-wrap}"""


def _html_table(header, rows) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html(result: dict, images: dict[str, str]) -> str:
    meta = result["meta"]
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(_title(meta))}</title>"
             f"<style>{_CSS}</style></head><body><h1>{escape(_title(meta))}</h1><ul>"]
    parts += [f"<li>{escape(m)}</li>" for m in _meta_lines(meta)] + ["</ul>"]
    for caption, data in images.items():
        parts.append(f"<h2>{escape(caption)}</h2><img alt='{escape(caption, quote=True)}' "
                     f"src='data:image/png;base64,{data}'>")
    for caption, header, rows in _tables(result):
        parts.append(f"<h2>{escape(caption)}</h2>{_html_table(header, rows)}")
    parts.append("<h2>Per question</h2><table><tr><th>id</th><th>question</th><th>outcome</th><th>answer</th>"
                 "<th>citations / retrieved</th><th>checks</th></tr>")
    for r in result["questions"]:
        a = r.get("answer")
        cites = ("<br>".join(escape(f"[{c['n']}] {c['doc']} {c['section']} {c['page']}: \u201c{c['quote']}\u201d"
                                    + ("" if c["quote_valid"] else " (quote not in passage)"))
                             for c in a["citations"]) if a else escape(_retrieved_cell(r, meta["ours"])))
        if a and a.get("evidence"):  # an unconfirmed outcome: its quoted sentences are its sources
            cites = "<br>".join(escape(f"[{c['n']}] {c['doc']} {c['section']} {c['page']}: \u201c{c['quote']}\u201d")
                                for c in a["evidence"])
        checks = "<br>".join(f"<span class='{'pass' if ok else 'fail'}'>{'✓' if ok else '✗'} {escape(name)}</span>"
                             for name, ok in r["checks"].items())
        missing = f"<br><i>not in cited text: {escape(', '.join(a['missing']))}</i>" if a and a["missing"] else ""
        if a and a.get("removed"):  # optional: records from older runs (reused by --resume) lack it
            missing += "<br><i>removed by the citation check: " + escape("; ".join(a["removed"])) + "</i>"
        parts.append(f"<tr><td>{escape(r['id'])}<br>{escape(r['persona'])} {escape(r['lang'])}</td>"
                     f"<td class='q'>{escape(r['question'])}</td><td>{escape(_outcome_cell(r))}</td>"
                     f"<td class='a'>{escape(_answer_cell(r))}{missing}</td>"
                     f"<td>{cites}</td><td>{checks}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
