"""The alignment evaluation as ``report.json``, ``report.md`` and a self-contained ``report.html`` (a bar chart of
strong / partial recall and false strong rate per language, the per-priority and per-proposal tables)."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from .report import _png  # one way to draw a chart into the HTML

RATES = ("strong_recall", "partial_recall", "strong_precision", "partial_precision", "false_strong_rate",
         "false_match_rate")


def write_align_reports(result: dict, out_dir) -> list[Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "report.html"]
    paths[0].write_text(json.dumps(result, ensure_ascii=False, indent=2), encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    paths[2].write_text(html(result, chart(result)), encoding="utf-8")
    return paths


def _fmt(v, n: int | None = None, d: int | None = None) -> str:
    text = "–" if v is None else f"{v:.3f}"
    return f"{text} ({n}/{d})" if n is not None and d else text


def _title(meta: dict) -> str:
    return f"sofia-qa alignment evaluation: split {meta['split']}, {meta['proposals']} proposals"


def tables(result: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(caption, header, rows) of the summary tables, shared by Markdown and HTML."""
    s = result["summary"]
    by_lang = [[lang, str(m["proposals"]), _fmt(m["strong_recall"], m["strong_hit"], m["must_strong"]),
                _fmt(m["partial_recall"], m["match_hit"], m["must_match"]),
                _fmt(m["strong_precision"], m["got_strong_ok"], m["got_strong"]),
                _fmt(m["partial_precision"], m["got_match_ok"], m["got_match"]),
                _fmt(m["false_strong_rate"], m["false_strong"], m["must_none"]),
                _fmt(m["false_match_rate"], m["false_match"], m["must_none"]), f"{m['passed']}/{m['proposals']}"]
               for lang, m in s.items()]
    head = ["strong recall", "partial recall", "strong precision", "partial precision", "false strong",
            "false match (>= partial)"]
    per = []
    for pid, langs in result["per_priority"].items():
        for lang, m in langs.items():
            if m["must_match"] or m["must_none"]:
                per.append([pid, lang, _fmt(m["strong_recall"], m["strong_hit"], m["must_strong"]),
                            _fmt(m["partial_recall"], m["match_hit"], m["must_match"]),
                            _fmt(m["strong_precision"], m["got_strong_ok"], m["got_strong"]),
                            _fmt(m["partial_precision"], m["got_match_ok"], m["got_match"]),
                            _fmt(m["false_strong_rate"], m["false_strong"], m["must_none"])])
    return [("By language", ["language", "proposals", *head, "passed"], by_lang),
            ("Per priority", ["priority", "language", *head[:5]], per)]


def _expected_cell(case: dict) -> str:
    want = case["expected"]
    parts = [f"{k} strong" for k, v in want.items() if v == "strong"]
    parts += [f"{k} ≥partial" for k, v in want.items() if v == "partial"]
    none = [k for k, v in want.items() if v == "none"]
    if none:
        parts.append("none: " + ", ".join(none))
    return "; ".join(parts)


def _got_cell(case: dict) -> str:
    hits = [f"{p} {lvl} ({case['scores'][p]:.1f})" for p, lvl in case["got"].items() if lvl != "none"]
    return ", ".join(hits) or "nothing"


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _meta_lines(meta: dict) -> list[str]:
    return [f"dataset: {meta['dataset']} (split {meta['split']}, language {meta['lang']})",
            f"commit {meta['commit']}, started {meta['started']}, took {meta['seconds']} s",
            f"priorities: {meta['priorities_file']}; embedder {meta['embed_model']}; thresholds strong >= "
            f"{meta['thresholds']['strong']}, partial >= {meta['thresholds']['partial']}",
            "rates count labelled (proposal, priority) pairs; (hits/pairs) after each rate"]


def markdown(result: dict) -> str:
    meta = result["meta"]
    lines = [f"# {_title(meta)}", ""] + [f"- {_md(m)}" for m in _meta_lines(meta)] + [""]
    for caption, header, rows in tables(result):
        lines += [f"## {caption}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_md(c) for c in row) + " |" for row in rows] + [""]
    lines += ["## Per proposal", "", "| id | lang | kind | expected | got | result |", "|---|---|---|---|---|---|"]
    for c in result["cases"]:
        verdict = "pass" if c["pass"] else "FAIL: " + "; ".join(c["failures"])
        lines.append(f"| {c['id']} | {c['lang']} | {c['kind']} | {_md(_expected_cell(c))} | {_md(_got_cell(c))} "
                     f"| {_md(verdict)} |")
    return "\n".join(lines) + "\n"


def chart(result: dict) -> str:
    """A base64 PNG: strong recall, partial recall and false strong rate for each language."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = ("strong_recall", "partial_recall", "strong_precision", "false_strong_rate")
    langs = list(result["summary"])
    fig, ax = plt.subplots(figsize=(8, 3.4))
    width = 0.8 / len(langs)
    for i, lang in enumerate(langs):
        ax.bar([j + i * width for j in range(len(shown))], [result["summary"][lang][k] or 0.0 for k in shown],
               width, label=lang)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(shown))], [k.replace("_", " ") for k in shown])
    ax.set_ylim(0, 1.15)
    ax.set_title("Alignment by language")
    ax.legend(fontsize=8, ncol=len(langs), loc="upper center")
    return _png(fig, plt)


_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;
margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .5em;vertical-align:top;font-size:.9em}
th{background:#f3f3f3}.pass{color:#176f2c}.fail{color:#b00020;font-weight:bold}td.t{max-width:36em}"""


def _table(header, rows) -> str:
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html(result: dict, png: str) -> str:
    meta = result["meta"]
    title = escape(_title(meta))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{_CSS}</style>"
             f"</head><body><h1>{title}</h1><ul>", *[f"<li>{escape(m)}</li>" for m in _meta_lines(meta)], "</ul>",
             f"<h2>Alignment by language</h2><img alt='alignment by language' src='data:image/png;base64,{png}'>"]
    for caption, header, rows in tables(result):
        parts.append(f"<h2>{escape(caption)}</h2>{_table(header, rows)}")
    parts.append("<h2>Per proposal</h2><table><tr><th>id</th><th>proposal</th><th>expected</th><th>got</th>"
                 "<th>result</th></tr>")
    for c in result["cases"]:
        verdict = ("<span class='pass'>✓ pass</span>" if c["pass"] else
                   "<span class='fail'>✗ " + "<br>".join(escape(f) for f in c["failures"]) + "</span>")
        parts.append(f"<tr><td>{escape(c['id'])}<br>{escape(c['lang'])} {escape(c['kind'])} {escape(c['length'])}"
                     f"</td><td class='t'>{escape(c['text'][:400])}</td><td>{escape(_expected_cell(c))}</td>"
                     f"<td>{escape(_got_cell(c))}</td><td>{verdict}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)
