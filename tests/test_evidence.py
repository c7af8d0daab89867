"""The three outcomes without a model: choosing the evidence to quote, deciding "not in the documents", the
``Answer`` that carries them, and how the Chat tab draws each (pure functions on hand-made passages)."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest

from assistant import evidence as E
from assistant import prompts
from assistant.types import Answer, Citation, Passage
from assistant.ui.render import answer_html
from ingestion.types import Chunk

ADDRESS = "Applications are sent to the Management Board at 8 Tsar Kaloyan St, Sofia."
FEE = "The annual membership fee is 8 250 BGN for companies."


def passage(n: int, text: str, doc: str = "membership.md") -> Passage:
    chunk = Chunk(chunk_id=f"{doc}::{n}", doc_id=doc, title="Membership", path=doc, doc_type="cluster",
                  language="en", text=text, start=0, end=len(text), heading_path=("Membership", "How to join"),
                  page_start=None, page_end=None, source_urls=("https://example.org/m",), content_hash="",
                  doc_hash="", doc_chunks=1, embed_model="m")
    return Passage(chunk=chunk, text=text, score=0.5, dense=0.8, n=n)


PASSAGES = [passage(1, f"# How to join\n\nMembership. {ADDRESS} The Board decides within a month."),
            passage(2, f"Fees. {FEE} It is paid every January.", doc="fees.md")]


def test_only_quotable_sentences_are_candidates():
    sentences = E.passage_sentences(PASSAGES)
    assert (1, ADDRESS) in sentences and (2, FEE) in sentences
    assert all(len(s.split()) >= E.MIN_WORDS for _, s in sentences)  # headings and one-word labels are not quoted
    assert not any(s.startswith("#") for _, s in sentences)
    assert not E.quotable("word " * 100 + ".")  # a run-on table row is not a sentence


STEPS = ("An organisation applies for membership in three steps:\n\n1. It reads the founding documents.\n"
         "2. It writes to the Management Board.\n3. The Board decides within one month.\n\nThe fee is due in January.")


def test_a_sentence_that_introduces_a_list_is_quoted_with_the_list():
    joined = ("An organisation applies for membership in three steps: 1. It reads the founding documents. "
              "2. It writes to the Management Board. 3. The Board decides within one month.")
    sentences = E.passage_sentences([passage(1, STEPS)])
    assert (1, joined) in sentences  # the list's items, not only the sentence that announces them
    assert (1, "An organisation applies for membership in three steps:") not in sentences
    assert (1, "The fee is due in January.") in sentences  # the paragraph after the list is not part of it
    assert (1, "It writes to the Management Board.") in sentences  # each item can still be quoted alone
    assert joined in " ".join(STEPS.split())  # the passage's own words, whitespace collapsed
    assert f"<mark>{joined}</mark>" in answer_html(Answer(
        question="q", text=prompts.unconfirmed_text("en", [joined]), refused=True, outcome="unconfirmed",
        evidence=[evidence_for(joined, passage(1, STEPS))], passages=[passage(1, STEPS)]))


def test_a_list_too_long_to_quote_leaves_its_introduction_alone():
    sentences = E.passage_sentences([passage(1, STEPS)], max_chars=100)
    assert (1, "An organisation applies for membership in three steps:") in sentences
    no_list = E.passage_sentences([passage(1, "Members get three things: advice, contacts and visibility.")])
    assert no_list == [(1, "Members get three things: advice, contacts and visibility.")]


def test_a_not_found_draft_gives_no_draft_sentences():
    assert E.draft_sentences("NOT_FOUND") == []
    assert E.draft_sentences("Send it to the Board [1]. It takes a month [1].") == ["Send it to the Board.",
                                                                                      "It takes a month."]


def test_draft_support_and_question_similarity_are_weighed():
    sentences = [(1, "a"), (1, "b"), (2, "c")]
    draft = np.array([[0.9, 0.1, 0.2]])  # the draft is closest to "a"
    question = np.array([0.2, 0.3, 1.0])  # the question is closest to "c"
    assert E.score_candidates(sentences, draft, question, draft_weight=1.0)[0].sentence == "a"
    assert E.score_candidates(sentences, draft, question, draft_weight=0.0)[0].sentence == "c"
    half = E.score_candidates(sentences, draft, question, draft_weight=0.5)
    assert half[0].score == pytest.approx(0.6) and [c.sentence for c in half] == ["c", "a", "b"]
    # no draft (the model said NOT_FOUND): the question alone decides, whatever the weight
    assert E.score_candidates(sentences, None, question, draft_weight=1.0)[0].sentence == "c"


def test_a_second_sentence_only_when_it_scores_close_to_the_first():
    ranked = E.score_candidates([(1, "a"), (1, "b"), (2, "c")], None, np.array([0.90, 0.88, 0.70]))
    assert [c.sentence for c in E.pick(ranked, 2, 0.05)] == ["a", "b"]
    assert [c.sentence for c in E.pick(ranked, 2, 0.01)] == ["a"]
    assert [c.sentence for c in E.pick(ranked, 1, 1.0)] == ["a"]
    assert E.pick([], 2, 1.0) == []


def test_not_found_needs_both_signals():
    assert E.nothing_close(p_not_found=0.95, top_dense=0.70, p_min=0.5, dense_max=0.8)
    assert not E.nothing_close(p_not_found=0.95, top_dense=0.90, p_min=0.5, dense_max=0.8)  # a passage is close
    assert not E.nothing_close(p_not_found=0.10, top_dense=0.70, p_min=0.5, dense_max=0.8)  # the model sees an answer


def test_evidence_citations_name_their_passage_and_quote_it_verbatim():
    ranked = E.score_candidates(E.passage_sentences(PASSAGES), None,
                                np.array([1.0 if s == FEE else 0.1 for _, s in E.passage_sentences(PASSAGES)]))
    [c] = E.as_citations(E.pick(ranked, 2, 0.05), PASSAGES)
    assert (c.n, c.passage_n, c.doc, c.quote) == (1, 2, "fees.md", FEE)
    assert c.quote in PASSAGES[1].text and c.source_url == "https://example.org/m"


def test_choose_evidence_with_a_real_embedder(embedder):
    cites = E.choose_evidence("How much is the annual fee for a company?", "NOT_FOUND", PASSAGES,
                              embedder.embed_passages, embedder.embed_query)
    assert cites and cites[0].quote == FEE and cites[0].passage_n == 2
    drafted = E.choose_evidence("How do I apply?", "You write to the Board at Tsar Kaloyan St [1].", PASSAGES,
                                embedder.embed_passages, embedder.embed_query)
    assert drafted[0].quote == ADDRESS


def test_outcome_and_refused_agree():
    assert Answer(question="q", text="x", refused=True).outcome == "not_found"  # a refusal made without an outcome
    assert Answer(question="q", text="x", refused=True, outcome="unconfirmed").refused
    with pytest.raises(ValueError, match="outcome 'unconfirmed' is not an answer"):
        Answer(question="q", text="x", outcome="unconfirmed")
    degraded = Answer(question="q", text="x", outcome="unconfirmed", model_failure="model server down")
    assert not degraded.refused and degraded.to_json()["outcome"] == "unconfirmed"


def evidence_for(quote: str, p: Passage) -> Citation:
    return Citation(n=1, doc=p.doc_id, title=p.chunk.title, page="", section=p.chunk.section, quote=quote,
                    source_url="", score=0.5, passage_n=p.n)


@pytest.mark.parametrize("language", ["en", "bg"])
def test_the_chat_tab_draws_each_outcome(language):
    ev = [evidence_for(ADDRESS, PASSAGES[0])]
    unconfirmed = answer_html(Answer(question="q", text=prompts.unconfirmed_text(language, [ADDRESS]), refused=True,
                                     outcome="unconfirmed", evidence=ev, passages=PASSAGES, language=language))
    assert "sqa-unconfirmed" in unconfirmed and "sqa-refused" not in unconfirmed
    assert prompts.UNCONFIRMED[language] in unconfirmed and f"<mark>{ADDRESS}</mark>" in unconfirmed
    assert unconfirmed.count("sqa-evidence") == 1 and "fees.md" in unconfirmed  # the other passage, unmarked
    assert prompts.REFUSAL[language] not in unconfirmed
    not_found = answer_html(Answer(question="q", text=prompts.REFUSAL[language], refused=True, outcome="not_found",
                                   passages=PASSAGES, language=language))
    assert "sqa-not-found" in not_found and "<mark>" not in not_found and "sqa-evidence" not in not_found
    answered = answer_html(Answer(question="q", text="Write to the Board [1].", passages=PASSAGES, language=language,
                                  citations=[evidence_for(ADDRESS, PASSAGES[0])]))
    assert "sqa-unconfirmed" not in answered and "sqa-refused" not in answered and "<mark>" in answered


def test_cards_of_an_unconfirmed_answer_never_share_a_number():
    """Two quotes from the first passage are [1] and [2] in the text; the other passage's card must not be [2]."""
    second = "The Board decides within a month."
    ev = [evidence_for(ADDRESS, PASSAGES[0]), replace(evidence_for(second, PASSAGES[0]), n=2)]
    html = answer_html(Answer(question="q", text=prompts.unconfirmed_text("en", [ADDRESS, second]), refused=True,
                              outcome="unconfirmed", evidence=ev, passages=PASSAGES))
    numbers = re.findall(r'sqa-card-n">\[(\d+)\]', html)
    assert numbers == ["1", "2", "3"], numbers


def test_unconfirmed_text_says_so_then_quotes_with_numbers():
    text = prompts.unconfirmed_text("bg", [ADDRESS, FEE])
    lines = text.splitlines()
    assert lines[0] == prompts.UNCONFIRMED["bg"] and lines[1] == f"“{ADDRESS}” [1]" and lines[2] == f"“{FEE}” [2]"
    assert "do not answer" not in prompts.unconfirmed_text("en", [FEE])
