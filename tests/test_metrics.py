"""Pure scoring functions and dataset loading on hand-made cases (no models)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evals import grounding as G
from evals import metrics as M
from evals.datasets import DatasetError, GoldSource, load_dataset
from evals.runner import gate_failures, load_thresholds, pick

SEC = Path(__file__).resolve().parent.parent.parent / "shared" / "benchmarks" / "sec-10-q"


# --------------------------------------------------------------------------- numbers and key facts

@pytest.mark.parametrize("text", ["40,400", "40 400", "40400", "40\u00a0400", "40\u202f400"])
def test_thousands_separators_are_one_number(text):
    assert M.normalize_numbers(text) == "40400"


def test_number_normalisation_keeps_decimals_and_lists():
    assert M.normalize_numbers("8 250 EUR") == "8250 EUR"
    assert M.normalize_numbers("1 000 000") == "1000000"
    assert M.normalize_numbers("3.5 and 3,5") == "3.5 and 3.5"
    assert M.normalize_numbers("1,234.56") == "1234.56"
    assert M.normalize_numbers("2021, 2022 and 2021 2027") == "2021, 2022 and 2021 2027"


def test_key_fact_recall_alternatives_case_and_numbers():
    answer = "The annual fee is 8 250 BGN and the cluster has 40,400 EUR of projects."
    assert M.key_fact_recall(answer, ["8250 bgn", "40 400|forty thousand", "CSKC|Knowledge City"]) == pytest.approx(2 / 3)
    assert M.key_fact_recall(answer, []) is None
    assert M.fact_present("Adopted in 2021.", "2021")


def test_key_fact_number_is_not_part_of_a_longer_number():
    assert not M.fact_present("It has 40400 members", "400")
    assert not M.fact_present("It costs 3.55 EUR", "3.5")
    assert M.fact_present("It costs 3.5 EUR.", "3.5")
    assert M.fact_present("RIS3 2021–2027", "2021-2027")  # dashes unified


def test_token_f1():
    assert M.token_f1("the Sofia strategy", "Sofia strategy") == 1.0
    assert M.token_f1("nothing here", "Sofia strategy") == 0.0
    assert M.token_f1("Sofia", "Sofia strategy") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert M.token_f1("anything", "") is None


# --------------------------------------------------------------------------- relevance

def ref(doc, heads=(), p0=None, p1=None, facts=(), text=""):
    return M.Ref(doc=doc, heading_path=tuple(heads), page_start=p0, page_end=p1, fact_ids=tuple(facts), text=text)


def test_doc_glob_and_section_matching():
    aapl = ref("2023 Q3 AAPL.pdf", p0=4, p1=5)
    assert M.source_matches(GoldSource("*2023 Q3 AAPL*"), aapl)
    assert M.source_matches(GoldSource("*aapl*"), aapl)  # case-insensitive
    assert not M.source_matches(GoldSource("*MSFT*"), aapl)
    assert M.source_matches(GoldSource("*AAPL*", page=5), aapl)
    assert not M.source_matches(GoldSource("*AAPL*", page=6), aapl)
    assert not M.source_matches(GoldSource("x.md", page=1), ref("x.md"))  # page asked, passage has none
    ris = ref("sofia-ris3.md", heads=("Sofia RIS3", "Priority areas", "ICT"))
    assert M.source_matches(GoldSource("sofia-ris3.md", section="Priority areas"), ris)
    assert M.source_matches(GoldSource("sofia-ris3.md", section="priority areas > ict"), ris)
    assert not M.source_matches(GoldSource("sofia-ris3.md", section="Budget"), ris)
    assert M.source_matches(GoldSource("sofia-ris3.md"), ref("sub/sofia-ris3.md"))  # file name of a nested doc
    long = M.Ref(doc="sofia-ris3.md", heading_path=("Intro",), more_paths=(("Budget",), ("Priority areas",)))
    assert M.source_matches(GoldSource("sofia-ris3.md", section="Budget"), long)  # a long passage spans sections


def test_retrieval_metrics_doc_level():
    sources = [GoldSource("a.md"), GoldSource("b.md")]
    refs = [ref("x.md"), ref("a.md"), ref("a.md"), ref("b.md")]
    assert M.hit_at_k(refs, 1, sources) == 0.0
    assert M.hit_at_k(refs, 2, sources) == 1.0
    assert M.recall_at_k(refs, 3, sources) == 0.5
    assert M.recall_at_k(refs, 4, sources) == 1.0
    assert M.mrr(refs, sources) == 0.5
    ndcg = M.ndcg_at_k(refs, 4, sources)
    ideal = 1 + 1 / M.math.log2(3)
    assert ndcg == pytest.approx((1 / M.math.log2(3) + 1 / M.math.log2(5)) / ideal)
    assert M.ndcg_at_k([ref("a.md"), ref("b.md")], 5, sources) == pytest.approx(1.0)
    assert M.hit_at_k(refs, 5) is None and M.mrr(refs) is None  # no gold: metric does not apply


def test_retrieval_metrics_fact_level_and_both_variants():
    refs = [ref("a.md", facts=("R1",)), ref("b.md", facts=("R7", "R8"))]
    scores = M.retrieval_scores(refs, [GoldSource("b.md")], ["R8", "R9"], ks=(1, 5))
    assert scores["doc_hit@1"] == 0.0 and scores["doc_mrr"] == 0.5
    assert scores["fact_hit@1"] == 0.0 and scores["fact_hit@5"] == 1.0
    assert scores["fact_recall@5"] == 0.5
    assert M.retrieval_scores(refs, [GoldSource("a.md")], [])["fact_mrr"] is None


def test_citation_precision_and_quotes():
    cited = [ref("a.md", facts=("R2",)), ref("z.md", facts=("R5",)), ref("q.md")]
    assert M.citation_precision(cited, [GoldSource("a.md")], ["R5"]) == pytest.approx(2 / 3)
    assert M.citation_precision([], [GoldSource("a.md")]) is None
    text = "The fee is 500 EUR.\n\nMembers  vote once a year."
    assert M.quote_valid("Members vote once a year.", text)  # whitespace runs are equal
    assert not M.quote_valid("Members vote twice a year.", text)
    assert not M.quote_valid("", text)
    assert M.quote_validity([("The fee is 500 EUR.", text), ("invented", text)]) == 0.5
    assert M.quote_validity([]) is None


def test_grounding_numbers_dates_names():
    sources = ["Cluster Sofia Knowledge City (CSKC) was founded on 15 March 2012 and has 40 400 members.",
               "The fee is 8,250 BGN per year."]
    frac, missing = G.grounding("CSKC was founded on 15 March 2012 and has 40,400 members [1]. "
                                "The fee is 8250 BGN [2].", sources)
    assert frac == 1.0 and missing == []
    frac, missing = G.grounding("It has 40400 members in Sofia and Plovdiv since 2014.", sources)
    assert frac == 0.5 and missing == ["2014", "Plovdiv"]
    frac, missing = G.grounding("It was set up by Sofia Municipality.", sources)
    assert missing == ["Sofia Municipality"]  # every word of a name must be in the cited text
    assert G.grounding("yes, it can.", sources) == (None, [])
    assert G.grounding("CSKC's fee is 8250 BGN; CSKC\u2019s members: 40400.", sources) == (1.0, [])
    assert G.grounding("The fee of Plovdiv's cluster is 8250 BGN.", sources)[1] == ["Plovdiv's"]


def test_grounding_accepts_a_number_the_passage_spells_out():
    sources = ["An initial-stage cluster needs at least seven members; the board has five seats."]
    assert G.grounding("It needs at least 7 members and the board has 5 seats [1].", sources) == (1.0, [])
    assert G.grounding("The board has 6 seats [1].", sources) == (0.0, ["6"])
    # a spelled-out word inside a longer word is not the number ("seventeen" is not "seven")
    assert G.grounding("It has 7 seats.", ["It has seventeen seats."]) == (0.0, ["7"])
    assert G.grounding("Клъстерът има 7 членове.", ["Клъстерът има седем членове."]) == (1.0, [])


def test_claims_skip_sentence_initial_words_but_keep_acronyms():
    items = G.claims("The strategy is new. CSKC has 12 members. Members meet in Sofia Tech Park.")
    names = [t for k, t in items if k == "name"]
    assert "The" not in names and "Members" not in names
    assert "CSKC" in names and "Sofia Tech Park" in names
    assert ("number", "12") in items
    assert ("date", "2024-05-01") in G.claims("Adopted on 2024-05-01.")


# --------------------------------------------------------------------------- refusal, latency, aggregation

def test_refusal_scores():
    outcomes = [(False, True), (False, False), (True, True), (True, False), (True, False)]
    s = M.refusal_scores(outcomes)
    assert s["refusal_precision"] == 0.5
    assert s["refusal_recall"] == 0.5
    assert s["refusal_accuracy"] == 3 / 5
    assert s["false_refusal_rate"] == pytest.approx(1 / 3)
    assert M.refusal_scores([])["refusal_accuracy"] is None


def test_calibration_sweep():
    items = [(0.9, True, True), (0.7, True, False), (0.2, False, None), (0.4, True, None)]
    rows = {r["threshold"]: r for r in M.calibration(items, [0.0, 0.5, 1.0])}
    assert rows[0.0] == {"threshold": 0.0, "answered_correct": 0.25, "answered_wrong": 0.5, "refused": 0.0,
                         "answered_unknown": 0.25}
    assert rows[0.5]["refused"] == 0.5 and rows[0.5]["answered_correct"] == 0.25
    assert rows[1.0]["refused"] == 1.0


def test_percentiles_and_aggregation():
    assert M.percentile([1, 2, 3, 4, 5], 50) == 3
    assert M.percentile([1, 2, 3, 4, 5], 95) == pytest.approx(4.8)
    assert M.percentile([], 50) is None
    assert M.latency_summary([0.1, None, 0.3])["n"] == 2
    rows = [{"x": 1.0, "y": None}, {"x": 0.0, "y": 0.5}, {"x": 1.0, "y": 1.0}]
    groups = [{"persona": "member", "lang": "en"}, {"persona": "member", "lang": "bg"}, {"persona": "", "lang": "en"}]
    assert M.mean_scores(rows)["y"] == {"mean": 0.75, "n": 2}
    b = M.breakdown(rows, groups)
    assert b["persona"]["member"]["x"]["mean"] == 0.5 and b["persona"]["-"]["x"]["n"] == 1
    assert b["lang"]["en"]["x"]["mean"] == 1.0


# --------------------------------------------------------------------------- datasets and gates

def test_load_jsonl_ignores_unknown_fields_and_filters_split(tmp_path):
    p = tmp_path / "gold.jsonl"
    rows = [{"id": "q1", "split": "dev", "question": "Who?", "key_facts": ["A|B"], "extra": 1,
             "gold_sources": [{"doc": "a.md", "section": "S", "page": "3"}], "persona": "member", "lang": "bg"},
            {"id": "q2", "split": "test", "question": "What?", "answerable": False}]
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    qs = load_dataset(p)
    assert [q.id for q in qs] == ["q1", "q2"]
    assert qs[0].gold_sources == (GoldSource("a.md", "S", 3),) and qs[0].lang == "bg"
    assert not qs[1].answerable and qs[1].key_facts == () and qs[1].lang == "en"
    assert [q.id for q in load_dataset(p, "test")] == ["q2"]
    assert len(load_dataset(p, "all")) == 2


@pytest.mark.parametrize("line,field", [('{"id": "x"}', "question"), ('{"question": "q", "answerable": "yes"}', "answerable"),
                                        ('{"question": "q", "gold_sources": [{"section": "s"}]}', "gold_sources[0]"),
                                        ('{"question": "q", "key_facts": "a", "fact_ids": [1]}', "fact_ids"),
                                        ('{"question": ', "JSON")])
def test_bad_line_names_file_line_and_field(tmp_path, line, field):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"question": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as err:
        load_dataset(p)
    assert f"{p}:2" in str(err.value) and field in str(err.value)


def test_load_csv_benchmark_format(tmp_path):
    p = tmp_path / "qna.csv"
    p.write_text("\ufeffQuestion,Source Docs,Question Type,Source Chunk Type,Answer\n"
                 'How did sales change?,*AAPL*,Multi-Doc RAG,Table,"Up,\nby 5%"\n'
                 "What was the margin?,*MSFT*,Single-Doc Single-Chunk RAG,Text,12%\n", encoding="utf-8")
    (q,) = load_dataset(p, "dev")  # odd rows are dev, even rows test
    assert [t.question for t in load_dataset(p, "test")] == ["What was the margin?"]
    assert len(load_dataset(p, "all")) == 2 and q.split == "dev"
    assert q.gold_sources == (GoldSource("*AAPL*"),) and q.reference_answer == "Up,\nby 5%"
    assert q.answerable and q.key_facts == () and q.kind == "Multi-Doc RAG"


@pytest.mark.skipif(not (SEC / "qna_data_mini.csv").is_file(), reason="sec-10-q benchmark not beside the repo")
def test_real_sec_10q_csv_loads():
    qs = load_dataset(SEC / "qna_data.csv")
    assert len(qs) > 100 and all(q.gold_sources for q in qs)
    dev, test = load_dataset(SEC / "qna_data.csv", "dev"), load_dataset(SEC / "qna_data.csv", "test")
    assert len(dev) + len(test) == len(qs) and abs(len(dev) - len(test)) <= 1
    assert not {q.id for q in dev} & {q.id for q in test}
    docs = [p.name for p in (SEC / "docs").glob("*.pdf")]
    assert all(any(M.doc_matches(s.doc, d) for d in docs) for q in qs for s in q.gold_sources)


def test_pick_spreads_and_gates():
    assert pick(list(range(10)), 3) == [0, 3, 6]
    assert pick(list(range(3)), None) == [0, 1, 2]
    t = load_thresholds()
    assert "hit_at_5" in t["gate"] and t["fast"]["limit"] > 0
    summary = {"retrieval": {"hybrid": {"doc_hit@5": 0.5}}, "answer": {"grounding": 0.9}}
    assert gate_failures(summary, {"hit_at_5": 0.8, "grounding": 0.8, "refusal_accuracy": 0.7}) == ["hit_at_5 = 0.500 < 0.8"]
    with pytest.raises(ValueError):
        gate_failures(summary, {"nonsense": 1})


def test_ref_of_merged_passage_covers_every_chunk_page():
    from types import SimpleNamespace as NS

    chunk = NS(doc_id="s.pdf", heading_path=(), page_start=1, page_end=1)
    passage = NS(chunk=chunk, chunk_ids=("s::a", "s::b"), fact_ids=(), text="page one\n\npage two")
    assert M.Ref.of(passage).page_end == 1  # the passage alone only knows its first chunk
    r = M.Ref.of(passage, {"s::a": (1, 1), "s::b": (2, 2)})
    assert (r.page_start, r.page_end) == (1, 2) and M.source_matches(GoldSource("s.pdf", page=2), r)


def test_grounding_accepts_an_acronym_the_passage_spells_out():
    sources = ["Cluster Sofia – Knowledge City holds the Bronze label of the European Secretariat for Cluster Analysis."]
    assert G.grounding("CSKC holds the Bronze label [1].", sources) == (1.0, [])
    assert G.grounding("ESCA awards it [1].", sources) == (1.0, [])
    # the letters must be the capital initials of consecutive words, in order
    assert G.grounding("CKSC holds the Bronze label [1].", sources) == (0.5, ["CKSC"])
    assert G.grounding("BGN holds it.", ["big green network holds it"])[1] == ["BGN"]  # lower case: not a name
    assert not G.spelled_out("EU", "European Union")  # two letters are too easy to find by chance


def test_grounding_of_a_bulgarian_answer_accepts_english_months_and_glossary_names():
    glossary = G.parse_glossary(
        "- **Клъстер София град на знанието (КСГЗ)** — Cluster Sofia – Knowledge City (CSKC), the cluster; see x.\n"
        "- **Общински гаранционен фонд** — Municipal Guarantee Fund, of Sofia.\n")
    assert glossary[0] == (frozenset({"клъстер", "софия", "град", "знанието", "ксгз"}),
                           ("CSKC", "Cluster Sofia – Knowledge City", "Cluster Sofia"))
    sources = ["In April 2019 Cluster Sofia – Knowledge City (CSKC) had 43 legal entities in Bulgaria.",
               "The Municipal Guarantee Fund covers up to 50% of a loan."]
    answer = "През април 2019 г. КСГЗ е имал 43 юридически лица в България [1]."
    assert G.grounding(answer, sources[:1], glossary) == (1.0, [])
    # without the glossary the acronym has no English form; the month and the country are the metric's own
    assert G.grounding(answer, sources[:1]) == (0.75, ["КСГЗ"])
    # an inflected form ("Общинският") of a glossary term, when the English name is in the cited passage
    assert G.grounding("Кредитът се покрива от Общинският фонд до 50% [2].", sources, glossary) == (1.0, [])
    assert G.grounding("Кредитът се покрива от Общинският фонд до 50% [1].", sources[:1], glossary)[1] == [
        "50", "Общинският"]
    # "Общото събрание" is "General Assembly of the members" in the glossary, "General Assembly" in the passage
    glossary += G.parse_glossary("- **Общо събрание** — General Assembly of the members; at CSKC it sets the fee.")
    assert G.grounding("Решението взе Общото събрание [1].", ["The General Assembly decided."], glossary) == (1.0, [])
    # a month that is not the one in the passage is still missing
    assert G.grounding("През май 2019 г. членовете са 43.", sources[:1], glossary)[1] == ["май 2019"]


def test_answer_or_evidence_recall_counts_the_quotes_only_for_an_unconfirmed_outcome():
    facts = ["8,250|8250", "January"]
    assert M.answer_or_evidence_recall("answered", "It costs EUR 8,250 in January.", [], facts) == 1.0
    assert M.answer_or_evidence_recall("unconfirmed", "I could not confirm ...", ["The fee is 8 250 euros."], facts) == 0.5
    assert M.answer_or_evidence_recall("not_found", "The documents do not answer 8250", ["8250"], facts) == 0.0
    assert M.answer_or_evidence_recall("answered", "anything", [], []) is None


def test_false_not_found_needs_half_the_key_facts_in_the_shown_passages():
    facts = ["Berlin", "2009", "ESCA"]
    assert M.false_not_found("not_found", ["ESCA is in Berlin."], facts) == 1.0  # two of three: the answer is there
    assert M.false_not_found("not_found", ["ESCA was founded", "in Brussels"], facts) == 0.0  # one of three
    assert M.false_not_found("unconfirmed", ["ESCA is in Berlin since 2009."], facts) == 0.0
    assert M.false_not_found("not_found", ["anything"], []) is None


def test_outcome_counts_split_answerable_and_unanswerable():
    out = M.outcome_counts([(True, "answered"), (True, "unconfirmed"), (False, "unconfirmed"), (False, "not_found"),
                            (False, "not_found"), (False, "answered")])
    assert out["answerable"] == {"answered": 1, "unconfirmed": 1, "not_found": 0}
    assert out["unanswerable"] == {"answered": 1, "unconfirmed": 1, "not_found": 2}
    assert out["unanswerable_share"]["not_found"] == 0.5 and M.outcome_counts([])["answerable_share"]["answered"] is None
