"""The evaluation end to end: a tiny corpus indexed with the real embedder and Chroma, every retrieval
system, and the three report files; plus answer scoring and reporting on hand-made Answer objects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import make_pdf
from evals.datasets import GoldQuestion, GoldSource
from evals.report import write_reports
from evals.runner import EvalConfig, calibration, checks, score_answer, summarize

EVIL = '<script>alert("x")</script> & <b>bold</b>'


def write_corpus(folder: Path) -> Path:
    folder.mkdir()
    (folder / "fees.md").write_text(
        "---\ntitle: Membership fees of the Example Cluster\ndoc_type: cluster\n---\n"
        "# Membership fees of the Example Cluster\n\n## Annual fee\n\n"
        "The annual membership fee of the Example Cluster is 8 250 BGN for companies and 1 200 BGN for "
        "universities. It is paid every January. <!-- R1 -->\n\n## Discounts\n\n"
        "Start-ups founded less than two years ago pay half of the annual fee. <!-- R2 -->\n", encoding="utf-8")
    (folder / "history.md").write_text(
        "---\ntitle: History of the Example Cluster\ndoc_type: cluster\n---\n# History of the Example Cluster\n\n"
        "## Founding\n\nThe Example Cluster was founded in 2012 in Sofia by eleven software companies and "
        "Sofia University. <!-- R3 -->\n\n## Label\n\nIn 2019 the cluster received the bronze label of the "
        "European Cluster Excellence Initiative. <!-- R4 -->\n", encoding="utf-8")
    make_pdf(folder / "priorities.pdf", [
        "Innovation strategy of Sofia. Introduction: the city supports research and technology transfer.",
        "Priority areas: information and communication technologies, creative industries, "
        "mechatronics and clean technologies, and healthy life and biotechnology.",
    ], title="Sofia innovation priorities")
    return folder


def write_gold(path: Path) -> Path:
    rows = [
        {"id": "fee", "split": "test", "question": "How much is the annual membership fee for companies?",
         "key_facts": ["8250 BGN"], "gold_sources": [{"doc": "fees.md", "section": "Annual fee"}],
         "fact_ids": ["R1"], "persona": "member", "lang": "en", "reference_answer": "8 250 BGN a year."},
        {"id": "founded", "split": "test", "question": "When was the Example Cluster founded and by whom?",
         "gold_sources": [{"doc": "history.md"}], "fact_ids": ["R3"], "persona": "committee", "lang": "en"},
        {"id": "priorities", "split": "test", "question": "What are the priority areas of the Sofia strategy?",
         "gold_sources": [{"doc": "*priorities*", "page": 2}], "persona": "evaluator", "lang": "en"},
        {"id": "evil", "split": "test", "question": f"Какъв е бюджетът за 2030 г.? {EVIL}", "answerable": False,
         "persona": "member", "lang": "bg", "unknown_field": True},
        {"id": "dev-only", "split": "dev", "question": "Who chairs the board?", "gold_sources": [{"doc": "x.md"}]},
    ]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def test_retrieval_only_run_writes_three_reports(tmp_path, embedder):
    from ingestion.config import Settings
    from evals.runner import run_eval

    corpus = write_corpus(tmp_path / "corpus")
    gold = write_gold(tmp_path / "gold.jsonl")
    settings = Settings.from_env(embed_model=embedder.name, threads=2)
    out = tmp_path / "report"
    result = run_eval(EvalConfig(gold, corpus_dir=corpus, out_dir=out, retrieval_only=True, split="test",
                                 progress=False), settings=settings)

    assert {p.name for p in out.iterdir()} >= {"report.json", "report.md", "report.html"}
    data = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert data["meta"]["split"] == "test" and data["meta"]["questions"] == 4
    assert data["meta"]["dataset"] == str(gold) and data["meta"]["peak_memory_mb"] > 0
    assert [q["id"] for q in data["questions"]] == ["fee", "founded", "priorities", "evil"]
    assert set(data["summary"]["retrieval"]) == {"bm25", "dense", "hybrid", "llamaindex-default"}
    hybrid = data["summary"]["retrieval"]["hybrid"]
    assert hybrid["doc_hit@5"] == 1.0  # three tiny documents: every gold source is in the top five
    assert hybrid["fact_hit@5"] == 1.0 and hybrid["doc_mrr"] > 0.5
    assert data["summary"]["retrieval"]["llamaindex-default"]["doc_hit@5"] >= 2 / 3
    fee = data["questions"][0]["retrieval"]["hybrid"]
    assert fee["passages"][0]["doc"] == "fees.md" and "R1" in fee["passages"][0]["fact_ids"]
    assert data["questions"][0]["checks"]["doc hit@5"] is True
    assert data["summary"]["coverage"]["unanswerable"] == 1
    assert "answer" not in data["summary"]
    assert set(data["summary"]["breakdown"]["retrieval"]["persona"]) == {"member", "committee", "evaluator"}

    md = (out / "report.md").read_text(encoding="utf-8")
    assert str(gold) in md and "split: test" in md and "| hybrid (ours) |" in md

    html = (out / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r"src='data:image/png;base64,[A-Za-z0-9+/=]{200,}'", html)) >= 2
    assert "<script" not in html and "<b>bold" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "Какъв е бюджетът" in html and "split: test" in html
    assert "http" not in re.sub(r"data:image/png;base64,[^']+", "", html)  # self-contained: no external links
    doc = json.loads(json.dumps(result.to_json(), ensure_ascii=False, default=str))
    assert doc["meta"].pop("files") == [str(out / n) for n in ("report.json", "report.md", "report.html")]
    assert doc == data  # the typed result is what report.json holds (which does not list itself)


class CountingEmbedder:
    """The real embedder, counting the passages it is asked to embed."""

    def __init__(self, inner):
        self.inner, self.name, self.passages = inner, inner.name, 0

    def embed_passages(self, texts):
        self.passages += len(texts)
        return self.inner.embed_passages(texts)

    def embed_query(self, text):
        return self.inner.embed_query(text)


def test_llamaindex_baseline_index_is_kept_and_rebuilt_when_a_document_changes(tmp_path, embedder):
    """The baseline embeds the corpus again in its own 1,024-token nodes, so its index is kept; the same
    documents load it without embedding, an edited document builds a new one that replaces the old."""
    from evals.baselines import LlamaIndexDefault
    from ingestion.readers import read_document

    corpus = write_corpus(tmp_path / "corpus")
    docs = [read_document(p) for p in sorted(corpus.iterdir())]
    cache = tmp_path / "cache"
    question = "How much is the annual membership fee for companies?"

    first_emb = CountingEmbedder(embedder)
    first = LlamaIndexDefault(docs, first_emb, cache_dir=cache)
    assert first_emb.passages > 0
    again_emb = CountingEmbedder(embedder)
    again = LlamaIndexDefault(docs, again_emb, cache_dir=cache)
    assert again_emb.passages == 0  # loaded, not embedded
    got, want = again.retrieve(question, 2), first.retrieve(question, 2)
    assert [(r.doc, r.heading_path, round(s, 5)) for r, s in got] == [(r.doc, r.heading_path, round(s, 5)) for r, s in want]
    assert got[0][0].doc == "fees.md" and "R1" in got[0][0].fact_ids

    (corpus / "fees.md").write_text((corpus / "fees.md").read_text().replace("8 250", "9 100"), encoding="utf-8")
    edited_emb = CountingEmbedder(embedder)
    edited = LlamaIndexDefault([read_document(p) for p in sorted(corpus.iterdir())], edited_emb, cache_dir=cache)
    assert edited_emb.passages > 0
    assert "9 100" in edited.retrieve(question, 2)[0][0].text
    assert not list(cache.glob("*.part")) and len(list(cache.iterdir())) == 1


def test_a_run_can_be_done_in_parts_and_resumed(tmp_path, embedder):
    """An answer run is slow on a CPU, so evaluators run it in parts: scored questions are kept per question,
    reused only by the same code and settings, and a stopped run says what is missing."""
    import dataclasses

    from ingestion.config import Settings
    from evals.runner import RECORDS, run_eval

    corpus = write_corpus(tmp_path / "corpus")
    gold = write_gold(tmp_path / "gold.jsonl")
    settings = Settings.from_env(embed_model=embedder.name, threads=2)
    out = tmp_path / "report"
    base = EvalConfig(gold, corpus_dir=corpus, out_dir=out, retrieval_only=True, split="test", progress=False)
    resumed = dataclasses.replace(base, resume=True, budget_seconds=0)  # nothing new may be asked
    first = run_eval(base, settings=settings)
    lines = (out / RECORDS).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 and first.meta.partial is None and first.meta.reused == 0

    again = run_eval(resumed, settings=settings)  # nothing left to ask
    assert again.meta.reused == 4 and again.meta.partial is None
    assert [q["retrieval"]["hybrid"]["scores"] for q in again.questions] == \
        [q["retrieval"]["hybrid"]["scores"] for q in first.questions]

    # an interrupted run: one record missing, a torn last line; no time left to ask it again
    (out / RECORDS).write_text("\n".join(lines[:3]) + "\n" + lines[3][:40], encoding="utf-8")
    part = run_eval(resumed, settings=settings)
    assert part.meta.reused == 3 and part.to_json()["meta"]["partial"] == {"scored": 3, "of": 4}
    assert len(part.questions) == 3
    assert "PARTIAL" in (out / "report.md").read_text(encoding="utf-8")

    # other settings: nothing may be reused
    other = dataclasses.replace(settings, top_k=settings.top_k + 1)
    with pytest.raises(ValueError, match="no question was scored"):
        run_eval(resumed, settings=other)
    full = run_eval(dataclasses.replace(base, resume=True), settings=other)
    assert full.meta.reused == 0 and len(full.questions) == 4

    # one language only (--lang): the report says so
    bg = run_eval(dataclasses.replace(base, lang="bg", out_dir=tmp_path / "bg"), settings=settings)
    assert [q["lang"] for q in bg.questions] == ["bg"] and "bg questions only" in bg.meta.split
    with pytest.raises(ValueError, match="language 'de'"):
        run_eval(dataclasses.replace(base, lang="de", out_dir=tmp_path / "de"), settings=settings)


# --------------------------------------------------------------------------- answers without a model

def _answer(text, cited, refused=False, gate=0.8):
    from assistant.types import Answer, Citation, Passage
    from ingestion.types import Chunk

    def chunk(doc, heads, facts):
        return Chunk(chunk_id=f"{doc}::1", doc_id=doc, title=doc, path=doc, doc_type="cluster", language="en",
                     text="", start=0, end=0, heading_path=heads, page_start=None, page_end=None, source_urls=(),
                     content_hash="", doc_hash="", doc_chunks=1, embed_model="m", fact_ids=facts)

    passages = [Passage(chunk=chunk("fees.md", ("Annual fee",), ("R1",)), n=1, score=0.9,
                        text="The annual membership fee is 8 250 BGN for companies. It is paid every January."),
                Passage(chunk=chunk("history.md", ("Founding",), ("R3",)), n=2, score=0.5,
                        text="The Example Cluster was founded in 2012 in Sofia.")]
    # like assistant.cite: citations are numbered in answer order, not by passage number
    citations = [Citation(n=i, doc=passages[n - 1].doc_id, title="", page="", section=passages[n - 1].chunk.section,
                          quote=q, source_url="", score=0.0) for i, (n, q) in enumerate(cited, start=1)]
    return Answer(question="q", text=text, citations=citations, refused=refused, passages=passages,
                  timings={"retrieve": 0.05, "generate": 1.5, "total": 1.6},
                  signals={"gate": gate, "threshold": 0.5, "tokens": 30.0})


def test_answer_scoring_and_full_report(tmp_path):
    fee = GoldQuestion(id="fee", question="Fee <for> companies?", key_facts=("8250 BGN", "January|Jan"),
                       gold_sources=(GoldSource("fees.md", section="Annual fee"),), fact_ids=("R1",),
                       persona="member", reference_answer="8 250 BGN, paid in January.")
    ans = score_answer(fee, _answer("Companies pay 8,250 BGN a year, every January, since 2015 [1][2].",
                                    [(1, "The annual membership fee is 8 250 BGN for companies."),
                                     (2, "founded in 2013")]))
    s = ans["scores"]
    assert s["key_fact_recall"] == 1.0 and ans["correct"] is True
    assert s["citation_precision"] == 0.5  # history.md is not a gold source for this question
    assert s["quote_validity"] == 0.5  # "founded in 2013" is not in passage 2
    assert ans["missing"] == ["2015"] and 0 < s["grounding"] < 1
    assert ans["tokens_per_s"] == pytest.approx(20.0)  # no first-token time: tokens / generate
    timed = _answer("8,250 BGN [1].", [(1, "8 250 BGN")])
    timed.timings.update(first_token=0.55)  # 0.5 s reading the prompt, then 29 tokens in 1.0 s
    assert score_answer(fee, timed)["tokens_per_s"] == pytest.approx(29.0)

    founded = GoldQuestion(id="f", question="When?", gold_sources=(GoldSource("history.md"),), key_facts=("2012",))
    only_second = score_answer(founded, _answer("It was founded in 2012 [1].", [(2, "founded in 2012 in Sofia")]))
    assert only_second["citations"][0]["n"] == 1 and only_second["citations"][0]["doc"] == "history.md"
    assert only_second["scores"]["citation_precision"] == 1.0 and only_second["scores"]["quote_validity"] == 1.0

    unans = GoldQuestion(id="u", question="Budget for 2030?", answerable=False, lang="bg", persona="committee")
    refused_answer = _answer("I cannot find this in the documents.", [], refused=True, gate=0.2)
    refused_answer.draft, refused_answer.removed_sentences = "The 2030 budget is 5 million. [1]", [
        "The 2030 budget is 5 million. (numbers not in the cited passage: 5)"]
    refused = score_answer(unans, refused_answer)
    assert refused["draft"].startswith("The 2030 budget") and len(refused["removed"]) == 1
    assert refused["correct"] is True and refused["scores"]["grounding"] is None

    records = []
    for q, a in ((fee, ans), (unans, refused)):
        rec = {"id": q.id, "question": q.question, "split": "", "persona": q.persona, "lang": q.lang,
               "answerable": q.answerable, "gold_sources": [], "fact_ids": list(q.fact_ids),
               "key_facts": list(q.key_facts), "retrieval": {}, "answer": a}
        rec["checks"] = checks(rec)
        records.append(rec)
    summary = summarize(records, retrieval_only=False)
    assert summary.refusal["refusal_accuracy"] == 1.0
    assert summary.latency["total"]["p50"] == pytest.approx(1.6)
    cal = calibration(records)
    assert cal.operating_threshold == 0.5 and any(r["chosen"] for r in cal.curve)
    chosen = next(r for r in cal.curve if r["chosen"])
    assert chosen["answered_correct"] == 0.5 and chosen["refused"] == 0.5

    result = {"meta": {"dataset": "hand-made", "split": "all", "questions": 2, "retrieval_only": False,
                       "systems": [], "ours": "hybrid", "k": 5, "embed_model": "m", "index": "-", "collection": "-",
                       "started": "now"}, "summary": summary.to_json(), "questions": records}
    write_reports(result, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    # latency, outcomes and calibration
    assert "Refusal calibration" in html and html.count("data:image/png;base64,") == 3 and "alt='Outcomes'" in html
    assert "Fee &lt;for&gt; companies?" in html and "not in cited text: 2015" in html
    assert "removed by the citation check: The 2030 budget is 5 million." in html
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "(chosen)" in md and "key_fact_recall" in md


def test_outcomes_are_scored_counted_and_reported(tmp_path):
    """An unconfirmed outcome is scored on its quoted evidence, a "not in the documents" over passages that hold the
    answer counts as false, and the report has the outcome table, column and bar."""
    from assistant.types import Citation

    fee = GoldQuestion(id="fee", question="Fee?", key_facts=("8250 BGN", "January|Jan"), persona="member")
    founded = GoldQuestion(id="f", question="When?", key_facts=("2012",), persona="committee")
    unans = GoldQuestion(id="u", question="Budget for 2030?", answerable=False, persona="member")
    quoted = _answer("I could not confirm an answer from the documents. …", [], refused=True, gate=0.2)
    quoted.outcome = "unconfirmed"
    quoted.evidence = [Citation(n=1, doc="fees.md", title="", page="", section="Annual fee", source_url="", score=0.5,
                                quote="The annual membership fee is 8 250 BGN for companies.", passage_n=1)]
    unconfirmed = score_answer(fee, quoted)
    assert unconfirmed["outcome"] == "unconfirmed" and unconfirmed["evidence"][0]["doc"] == "fees.md"
    assert unconfirmed["scores"]["key_fact_recall"] == 0.0  # the answer alone states nothing
    assert unconfirmed["scores"]["answer_or_evidence_recall"] == 0.5  # the quote states the fee, not the month
    assert unconfirmed["scores"]["false_not_found"] == 0.0
    missed = score_answer(founded, _answer("The documents do not answer this question.", [], refused=True, gate=0.1))
    assert missed["outcome"] == "not_found" and missed["scores"]["false_not_found"] == 1.0  # passage 2 says 2012
    right = score_answer(unans, _answer("The documents do not answer this question.", [], refused=True, gate=0.1))
    assert right["scores"]["false_not_found"] is None and right["scores"]["answer_or_evidence_recall"] is None

    records = []
    for q, a in ((fee, unconfirmed), (founded, missed), (unans, right)):
        rec = {"id": q.id, "question": q.question, "split": "", "persona": q.persona, "lang": q.lang,
               "answerable": q.answerable, "gold_sources": [], "fact_ids": [], "key_facts": list(q.key_facts),
               "retrieval": {}, "answer": a}
        rec["checks"] = checks(rec)
        records.append(rec)
    summary = summarize(records, retrieval_only=False)
    assert summary.outcomes["answerable"] == {"answered": 0, "unconfirmed": 1, "not_found": 1}
    assert summary.outcomes["unanswerable_share"]["not_found"] == 1.0
    assert summary.answer["false_not_found"] == 0.5 and summary.answer["answer_or_evidence_recall"] == 0.25
    assert summary.refusal["refusal_recall"] == 1.0  # both outcomes are refusals
    result = {"meta": {"dataset": "hand-made", "split": "all", "questions": 3, "retrieval_only": False,
                       "systems": [], "ours": "hybrid", "k": 5, "embed_model": "m", "index": "-", "collection": "-",
                       "started": "now"}, "summary": summary.to_json(), "questions": records}
    write_reports(result, tmp_path)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<th>outcome</th>" in html and "<td>unconfirmed (passage quoted)</td>" in html
    assert "<td>not in the documents</td>" in html and "alt='Outcomes'" in html
    assert "“The annual membership fee is 8 250 BGN for companies.”" in html
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Outcomes (questions)" in md and "answer_or_evidence_recall" in md and "false_not_found" in md


def test_a_broken_evals_dependency_fails_loudly_instead_of_dropping_the_eval_command():
    import subprocess
    import sys

    code = "import sys; sys.modules['evals.schema'] = None; import assistant.cli"  # as if a dependency were broken
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "cannot load the commands in evals.cli" in run.stderr, run.stderr[-2000:]
