"""Fusing the dense and BM25 lists: pure functions, checked on hand-made ranked lists.

Chunks are real ``Chunk`` objects; the lists stand for what each retriever returned, best first.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from assistant.retrieve import (DENSE_BASE, dense_share, fuse, list_confidence, prefer_latest, prefer_named_quarter, quarters,
                                rank, zfuse)
from ingestion.types import Chunk

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))  # scripts/ is not a package
from fusion_variants import rrf, rsf  # noqa: E402


def chunk(name: str, doc: str = "a.md", start: int = 0) -> Chunk:
    return Chunk(chunk_id=f"{doc}::{name}", doc_id=doc, title=doc, path=doc, doc_type="reference", language="en",
                 text=f"text of {name}", start=start, end=start + 10, heading_path=(name,), page_start=None,
                 page_end=None, source_urls=(), content_hash=name, doc_hash="h", doc_chunks=9, embed_model="m")


A, B, C, D = (chunk(n) for n in "abcd")


def order(rows) -> list[str]:
    return [r[0].chunk_id.split("::")[1] for r in rows]


def test_rrf_rewards_agreement_and_keeps_scores_in_0_1():
    dense = [(A, 0.91), (B, 0.90), (C, 0.89)]
    lexical = [(B, 14.0), (D, 9.0), (A, 2.0)]
    rows = rrf(dense, lexical, k=60)
    assert order(rows) == ["b", "a", "d", "c"]  # b: ranks 2 and 1; a: ranks 1 and 3; d, c: one list each
    assert all(0.0 < r[1] <= 1.0 for r in rows)
    by = {r[0].chunk_id: r for r in rows}
    assert by[B.chunk_id][2] == 0.90 and by[B.chunk_id][3] == 1.0  # the cosine and the relative BM25 score stay
    assert by[D.chunk_id][2] == 0.0  # not found by the dense retriever: no cosine


def test_rrf_first_in_both_lists_scores_one():
    (top, *_), = [rrf([(A, 0.8), (B, 0.7)], [(A, 3.0), (C, 1.0)])]
    assert top[0] is A and top[1] == pytest.approx(1.0)


@pytest.mark.parametrize("fusion", [fuse, rrf, rsf, zfuse])
def test_an_empty_list_leaves_the_other_in_its_order(fusion):
    dense = [(C, 0.8), (A, 0.7), (B, 0.6)]
    assert order(fusion(dense, [])) == ["c", "a", "b"]
    assert order(fusion([], [(B, 5.0), (A, 1.0)])) == ["b", "a"]
    assert fusion([], []) == []
    assert fusion(dense, [])[0][1] == pytest.approx(1.0)  # the best of a lone list scores 1


def test_rank_numbers_passages_and_keeps_the_cosine_as_dense():
    passages = rank("which?", [(A, 0.83), (B, 0.80)], [(B, 4.0)], k=2)
    assert [p.n for p in passages] == [1, 2]
    assert {p.chunk.chunk_id: p.dense for p in passages} == {A.chunk_id: 0.83, B.chunk_id: 0.80}
    assert all(0.0 <= p.score <= 1.0 for p in passages)


def test_list_confidence_is_scale_free():
    flat = [(c, 0.81 - i * 0.001) for i, c in enumerate((A, B, C, D))]
    assert list_confidence(flat) == pytest.approx(list_confidence([(c, s * 1000) for c, s in flat]))
    assert list_confidence([(A, 1.0)]) == 0.0 and list_confidence([(A, 2.0), (B, 2.0)]) == 0.0
    assert dense_share([], []) == pytest.approx(DENSE_BASE)  # neither stands out: the base weight


def test_a_confident_lexical_list_wins_over_a_flat_dense_list():
    # the question names something only one passage holds: BM25 finds it far above the rest, while the dense
    # hits are about equally likely and rank it sixth
    right = chunk("right", doc="b.md")
    dense = [(chunk(f"d{i}", doc="c.md", start=100 * i), 0.812 - 0.001 * i) for i in range(10)]
    dense[5] = (right, dense[5][1])
    lexical = [(right, 25.0)] + [(chunk(f"l{i}", doc="d.md", start=100 * i), 2.0) for i in range(9)]
    assert dense_share(dense, lexical) < DENSE_BASE  # the peaked lexical list pulls the weight its way
    assert fuse(dense, lexical)[0][0] is right
    assert rrf(dense, lexical)[0][0] is right
    assert rank("Which firm reported 12.9 billion in Q2 2023?", dense, lexical, k=1)[0].chunk is right
    assert rank("Which firm reported 12.9 billion in Q2 2023?", dense, lexical, k=1)[0].score == pytest.approx(1.0)


def test_a_confident_dense_list_wins_over_a_flat_lexical_list():
    right = chunk("right", doc="b.md")
    dense = [(right, 0.90)] + [(chunk(f"d{i}", doc="c.md", start=100 * i), 0.80) for i in range(9)]
    lexical = [(chunk(f"l{i}", doc="d.md", start=100 * i), 5.0 - 0.01 * i) for i in range(10)]
    assert dense_share(dense, lexical) > DENSE_BASE
    assert fuse(dense, lexical)[0][0] is right


def test_the_latest_report_of_a_series_comes_first_when_the_question_asks_for_it():
    from dataclasses import replace

    old_q = replace(chunk("margin", "2022 Q3 AAPL.pdf"), period="quarterly period ended June 25, 2022")
    new_q = replace(chunk("margin", "2023 Q3 AAPL.pdf"), period="quarterly period ended July 1, 2023")
    other = replace(chunk("sales", "2022 Q3 AMZN.pdf"), period="quarterly period ended September 30, 2022")
    plain = chunk("fees", "membership.md")  # no period: never moved
    rows = [(old_q, 1.0, 0.9, 0.8), (other, 0.7, 0.6, 0.5), (plain, 0.6, 0.5, 0.4), (new_q, 0.5, 0.4, 0.3)]
    moved = prefer_latest("What was Apple's gross margin in the latest 10-Q?", rows)
    # Apple's newest report takes the first of Apple's places; Amazon's report and the undated file keep theirs
    assert [r[0].doc_id for r in moved] == ["2023 Q3 AAPL.pdf", "2022 Q3 AMZN.pdf", "membership.md", "2022 Q3 AAPL.pdf"]
    assert prefer_latest("What was Apple's gross margin in Q3 2022?", rows) == rows
    assert [r[0].doc_id for r in prefer_latest("Какъв е маржът в последния отчет?", rows)][0] == "2023 Q3 AAPL.pdf"


def test_the_report_of_the_quarter_a_question_names_comes_first_in_its_series():
    q3 = chunk("debt", "2023 Q3 MSFT.pdf")
    q1 = chunk("debt", "2023 Q1 MSFT.pdf")
    other = chunk("debt", "2023 Q3 INTC.pdf")
    plain = chunk("fees", "membership.md")  # names no quarter: never moved
    rows = [(q3, 1.0, 0.9, 0.8), (plain, 0.8, 0.7, 0.6), (other, 0.7, 0.6, 0.5), (q1, 0.5, 0.4, 0.3)]
    moved = prefer_named_quarter("What did Microsoft say about its debt in the Q1 2023 10-Q?", rows)
    # the Q1 report takes Microsoft's first place; Intel's report (no Q1 2023 among its files here) and the
    # undated file keep their places
    assert [r[0].doc_id for r in moved] == ["2023 Q1 MSFT.pdf", "membership.md", "2023 Q3 INTC.pdf", "2023 Q3 MSFT.pdf"]
    assert prefer_named_quarter("What did Microsoft say about its debt?", rows) == rows
    assert prefer_named_quarter("How did the debt change in Q2 2022?", rows) == rows  # no report of that quarter
    assert quarters("the 2023 Q2 report, Q3 of 2022 and Q4-2021") == {(2023, 2), (2022, 3), (2021, 4)}
    assert quarters("10-Q filed in 2023; Q5 2023") == set()
