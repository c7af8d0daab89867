"""Page-level scoring: page hit@k and nDCG@10 by page, citation page accuracy, and `sofia-qa eval` on a small set of
multi-page PDFs built here whose gold names printed page numbers."""

from __future__ import annotations

import json
import math

from conftest import make_report_pdf, run_cli
from evals import metrics as M
from evals.datasets import GoldSource
from evals.report import markdown

# three reports with page labels from 101 (their first physical page shows "101"), a running header and footer
LABEL = 101
TOPICS = {
    "tourism.pdf": ["hotel beds and overnight stays of foreign visitors", "the Vitosha mountain ski lifts and trails",
                    "museum tickets sold at the National History Museum", "congress tourism in the National Palace"],
    "transport.pdf": ["the third metro line from Ovcha Kupel to Krasno Selo", "electric buses bought for the city",
                      "bicycle lanes along Tsarigradsko Shose", "parking zones blue and green"],
    "water.pdf": ["the Iskar dam reservoir level in August", "leaking pipes replaced by Sofiyska Voda",
                  "the Kubratovo waste water treatment plant", "drinking water hardness in Lozenets"],
}


def _page(topic: str) -> str:
    return (f"This page reports on {topic}. The municipal council reviewed {topic} in its annual session and "
            f"approved a plan for {topic} with a separate budget line.")


def _corpus(folder):
    folder.mkdir()
    for name, topics in TOPICS.items():
        pages = [[f"Sofia Municipality annual report on {name[:-4]}."], *[[_page(t)] for t in topics]]
        make_report_pdf(folder / name, pages, header=f"Sofia {name[:-4]} report 2024", footer="Page {n}",
                        label_start=LABEL)
    return folder


def test_page_scores_need_doc_and_page():
    refs = [M.Ref("a.pdf", page_start=3, page_end=4), M.Ref("b.pdf", page_start=7, page_end=7)]
    got = M.page_scores(refs, [GoldSource("b*", page=7)])
    assert got["page_hit@1"] == 0.0 and got["page_hit@3"] == 1.0
    assert abs(got["page_ndcg@10"] - 1 / math.log2(3)) < 1e-9  # found at rank 2
    assert M.page_scores(refs, [GoldSource("a.pdf", page=4)])["page_hit@1"] == 1.0  # inside the range 3-4
    assert M.page_scores(refs, [GoldSource("a.pdf", page=7)])["page_hit@10"] == 0.0  # right page, wrong doc
    assert set(M.page_scores(refs, [GoldSource("b.pdf")]).values()) == {None}  # no page in the gold: not scored


def test_citation_page_accuracy():
    gold = [GoldSource("water.pdf", page=2), GoldSource("tourism.pdf")]
    cited = [("water.pdf", "2"), ("water.pdf", "3"), ("water.pdf", "1-2"), ("tourism.pdf", "")]
    assert M.citation_page_accuracy(cited, gold) == 0.5
    assert M.citation_page_accuracy(cited, [GoldSource("water.pdf")]) is None  # no gold page
    assert M.citation_page_accuracy([], gold) is None


def test_eval_cli_reports_page_hits_on_printed_page_numbers(tmp_path):
    corpus = _corpus(tmp_path / "corpus")
    rows = []
    for name, topics in TOPICS.items():
        for physical, topic in enumerate(topics, start=2):  # after the cover
            q = f"What did the council decide about {topic}?"
            rows.append({"id": f"right-{name}-{physical}", "question": q,
                         "gold_sources": [{"doc": name, "page": physical + LABEL - 1}]})
            # the physical page number: what a citation must not show when the PDF labels its pages
            rows.append({"id": f"wrong-{name}-{physical}", "question": q,
                         "gold_sources": [{"doc": name, "page": physical}]})
    dataset = tmp_path / "pages.jsonl"
    dataset.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    out = tmp_path / "report"
    run = run_cli("eval", "--retrieval-only", "--dataset", str(dataset), "--corpus", str(corpus), "--out", str(out),
                  "--systems", "hybrid,bm25")
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    by_id = {r["id"]: r["retrieval"]["hybrid"]["scores"] for r in report["questions"]}
    right = [s for i, s in by_id.items() if i.startswith("right-")]
    wrong = [s for i, s in by_id.items() if i.startswith("wrong-")]
    assert all(s["page_hit@1"] == 1.0 for s in right), right
    assert all(s["page_hit@1"] == 0.0 for s in wrong), wrong  # physical page numbers would score these instead
    summary = report["summary"]["retrieval"]["hybrid"]
    assert summary["page_hit@5"] is not None and summary["page_ndcg@10"] is not None
    md = (out / "report.md").read_text(encoding="utf-8")
    assert "page_hit@5" in md and "page_ndcg@10" in md
    assert "page_hit@5" in (out / "report.html").read_text(encoding="utf-8")
    # a dataset without page gold shows no page column
    for r in report["questions"]:
        r["checks"].pop("page hit@5", None)
        for system in r["retrieval"].values():
            system["scores"] = {k: v for k, v in system["scores"].items() if not k.startswith("page_")}
    for system in report["summary"]["retrieval"].values():
        for k in [k for k in system if k.startswith("page_")]:
            system[k] = None
    assert "| page_hit@" not in markdown(report)
