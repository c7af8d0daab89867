"""The reference-answer scorer (evals/reference_match.py): right, wrong or refused against a free-text reference."""

from __future__ import annotations

import json

import pytest

from evals import reference_match as R

IPHONE_REF = ("The total revenue generated from Apple's iPhone sales for the latest quarter ended July 1, 2023, was "
              "$39,669 million.\n\nSOURCE(S): 2023 Q3 AAPL.pdf")
ABSENT_REF = ("The provided 10-Q document does not contain specific information comparing the revenue from Intel's "
              "new product launches with its marketing and advertising expenses.\n\nSOURCE(S): 2023 Q3 INTC.pdf")


def texts(s: str) -> list[str]:
    return [f.text for f in R.figures(s)]


def test_figures_keep_amounts_and_leave_out_years_dates_quarters_and_markers():
    s = ("For the quarter ended July 1, 2023 (2023 Q3 AAPL.pdf) R&D was $7,442 million [2], against $6,797 million; "
         "the tax rate was 19%; 102,673,000 shares for $18.0 billion, or $0.10 per share, in the 10-Q.\n1. Next")
    assert texts(s) == ["$7,442 million", "$6,797 million", "19%", "102,673,000", "$18.0 billion", "$0.10"]


@pytest.mark.parametrize("a, b, same", [
    ("$39.7 billion", "$39,669 million", True),  # rounding of the less precise one
    ("$39,669", "$39,669 million", True),  # a table's figure in millions
    ("$1.5 billion", "$1,450 million", True),
    ("$45,963 million", "$39,669 million", False),
    ("19%", "19", False),  # a percentage is not a count
    ("12.2%", "12.5%", False),
])
def test_same_figure_across_scales_within_rounding(a, b, same):
    [fa], [fb] = R.figures(a), R.figures(b if b != "19" else "19 million")
    assert R.same_figure(fa, fb) is same


def test_an_answer_with_the_reference_figure_is_right_and_a_wrong_figure_is_wrong():
    right = R.judge("iPhone net sales were $39.7 billion in the quarter ended July 1, 2023 [1].", IPHONE_REF, False)
    assert right.verdict == "right" and right.shared == ("$39.7 billion",)
    wrong = R.judge("iPhone net sales were $45,963 million in the quarter [1].", IPHONE_REF, False)
    assert wrong.verdict == "wrong" and wrong.extra == ("$45,963 million",)
    mixed = R.judge("Sales were $39,669 million, against $40,665 million and $51,334 million before.", IPHONE_REF,
                    False)
    assert mixed.verdict == "wrong"  # more figures the reference lacks than figures it has


def test_a_refusal_is_refused_unless_the_reference_says_the_documents_do_not_answer():
    assert R.judge("", IPHONE_REF, True).verdict == "refused"
    absent = R.judge("", ABSENT_REF, True)
    assert absent.verdict == "right" and absent.reference_absent
    assert R.judge("The filing does not provide a breakdown by product launch.", ABSENT_REF, False).verdict == "right"
    assert R.judge("Marketing expenses were $1.2 billion [2].", ABSENT_REF, False).verdict == "wrong"


def test_without_figures_the_answers_own_words_must_be_the_references():
    ref = ("The factors include weakness in foreign currencies relative to the U.S. dollar, lower Products volume, "
           "and cost savings with a different Products mix.")
    q = "What are the major factors contributing to the change in Apple's gross margin?"
    good = R.judge("Gross margin was hit by weakness in foreign currencies and lower Products volume, partly offset by "
                   "cost savings and a different Products mix [1].", ref, False, q)
    assert good.verdict == "right"
    bad = R.judge("Gross margin changed because of new iPhone launches and higher advertising in China [1].", ref,
                  False, q)
    assert bad.verdict == "wrong"


def test_the_command_reads_a_report_and_counts(tmp_path, capsys):
    report = {"questions": [
        {"id": "q1", "question": "iPhone sales?", "reference_answer": IPHONE_REF,
         "answer": {"text": "They were $39,669 million [1].", "refused": False}},
        {"id": "q2", "question": "iPhone sales?", "reference_answer": IPHONE_REF,
         "answer": {"text": "I could not find it.", "refused": True}},
        {"id": "q3", "question": "Launch revenue?", "reference_answer": ABSENT_REF,
         "answer": {"text": "It was $2 billion [1].", "refused": False}},
        {"id": "q4", "question": "not answered in this run", "reference_answer": IPHONE_REF, "answer": None},
    ]}
    (tmp_path / "report.json").write_text(json.dumps(report), encoding="utf-8")
    assert R.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("right 1, wrong 1, refused 1 of 3")
    assert R.main([str(tmp_path / "missing")]) == 2
    assert "no such report" in capsys.readouterr().err
