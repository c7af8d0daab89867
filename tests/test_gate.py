"""The gate's fitted data and provenance, the citation check's problem types, and the glossary by its doc_type."""

from __future__ import annotations

import json

import numpy as np
import pytest

from assistant import prompts
from assistant.cite import Problem, SentenceCheck, assign_citations
from assistant.gate import FEATURES, GATE_FILE, PROVENANCE_KEYS, Gate
from assistant.retrieve import glossary_pairs, one_glossary_chunk
from assistant.types import Passage, is_glossary
from conftest import CORPUS
from ingestion.types import DOC_TYPES, Chunk


def chunk(doc_id: str, doc_type: str, text: str = "Text.", n: int = 1) -> Chunk:
    return Chunk(chunk_id=f"{doc_id}::{n}", doc_id=doc_id, title=doc_id, path=doc_id, doc_type=doc_type,
                 language="en", text=text, start=0, end=len(text), heading_path=("H",), page_start=None,
                 page_end=None, source_urls=(), content_hash="", doc_hash="", doc_chunks=1, embed_model="")


def test_the_fitted_gate_says_how_it_was_fitted():
    """gate.json is data: the fitted numbers with the model, prompts, dataset split and date they were fitted on."""
    gate = Gate.load()
    assert set(gate.weights) <= set(FEATURES) and 0.0 < gate.threshold < 1.0
    assert all(gate.provenance.get(k) not in (None, "") for k in PROVENANCE_KEYS), gate.provenance
    assert gate.provenance["split"] == "dev"  # never the test split
    # the signals were read under the prompts in use: a change to them needs a refit (python scripts/tune_gate.py)
    assert gate.provenance["prompts"] == prompts.fingerprint(), "prompts changed since the gate was fitted"


def test_gate_round_trip_and_unknown_signal(tmp_path):
    path = tmp_path / "gate.json"
    gate = Gate(weights={"p_not_found": -3.0, "top_dense": 0.5}, bias=2.0, threshold=0.4,
                provenance={"model": "m", "date": "2026-01-01"})
    gate.save(path)
    again = Gate.load(path)
    assert again == gate and again.score({"p_not_found": 0.1}) == gate.score({"p_not_found": 0.1})
    data = json.loads(GATE_FILE.read_text())
    data["weights"]["found_nf"] = -1.0
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="found_nf"):
        Gate.load(path)
    assert Gate.load(tmp_path / "missing.json") == Gate()  # no file: the untuned defaults


def test_problems_are_types_with_a_message_for_people():
    check = SentenceCheck("It costs 5.", [1], 0.9, "q")
    assert check.problem == "" and check.kind is None
    check.remove(Problem.NUMBERS_NOT_IN_PASSAGE, "5")
    assert check.kind is Problem.NUMBERS_NOT_IN_PASSAGE and check.problem == "numbers not in the cited passage: 5"
    check.remove(Problem.UNSUPPORTED, "0.71")
    assert check.problem == "no passage supports it (best similarity 0.71)"


def _embed(texts: list[str]) -> np.ndarray:
    """A toy embedder: sentences about the same topic word point the same way."""
    topics = ["fee", "board", "label"]
    out = np.array([[1.0 if t in s.lower() else 0.0 for t in topics] + [0.1] for s in texts])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_a_sentence_leaning_on_an_invented_number_goes_with_it():
    passages = [Passage(chunk=chunk("a.md", "cluster"), text="The fee is EUR 100 per year.", score=1.0, n=1)]
    text, _, checks = assign_citations("The fee is EUR 900 [1]. This fee is paid yearly [1].", passages,
                                       "What is the fee?", _embed)
    assert [c.kind for c in checks] == [Problem.NUMBERS_NOT_IN_PASSAGE, Problem.LEANS_ON_REMOVED] and text == ""


def test_a_sentence_announcing_a_list_goes_when_no_kept_sentence_follows_it():
    """SEC-10-Q dev qna_data-093 was answered with "The components of debt were as follows: [1]" and nothing else."""
    passages = [Passage(chunk=chunk("a.md", "cluster"), text="The board fee is listed below. The board fee: EUR 100.",
                        score=1.0, n=1)]
    text, _, checks = assign_citations("The board fee is as follows: [1]", passages, "What is the board fee?", _embed)
    assert [c.kind for c in checks] == [Problem.LIST_MISSING] and text == ""
    text, _, checks = assign_citations("The board fee is as follows: [1]\n- The board fee is EUR 100 [1].", passages,
                                       "What is the board fee?", _embed)
    assert [c.kind for c in checks] == [None, None] and "EUR 100" in text


def test_a_small_figure_must_count_in_the_passage_what_it_counts_in_the_answer():
    from assistant.cite import figures_about_something_else as elsewhere

    axis = ["Projects of the procedure belong to Priority Axis 1 and intervention field 063."]
    assert elsewhere("There was 1 project funded under the procedure.", axis) == {"1"}
    members = ["An initial-stage cluster needed at least 7 members registered under the Commerce Act."]
    assert elsewhere("A cluster needs at least 7 members.", members) == set()
    # a long figure is specific enough; a figure the question gives is no claim; other scripts are not judged
    assert elsewhere("Its BULSTAT is 177131294.", ["Registration code 177131294, Sofia."]) == set()
    assert elsewhere("There was 1 project funded.", axis, "Was 1 project funded?") == set()
    assert elsewhere("Има 1 финансиран проект.", axis) == set()


@pytest.mark.parametrize("answer, question, gives", [
    ("The cluster has members.", "How many members does the cluster have?", False),
    ("The cluster has 43 members.", "How many members does the cluster have?", True),
    ("The council has four representatives of industry.", "How many industry representatives sit on it?", True),
    ("No projects were funded.", "How many projects were funded?", True),
    ("The conference was held in the National Palace of Culture on 3-4 May.",
     "The conference on 3-4 May: which year was it held?", False),
    ("Конференцията е в НДК.", "През коя година е конференцията?", False),
    ("The fee is paid by members.", "Who pays the fee?", True),
])
def test_an_answer_to_how_many_or_which_year_must_give_a_figure_of_its_own(answer, question, gives):
    from assistant.cite import gives_figure

    assert gives_figure([answer], question) is gives


def test_an_answer_with_no_figure_for_a_how_many_question_is_declined_whole():
    passages = [Passage(chunk=chunk("a.md", "cluster"), text="The board meets every month.", score=1.0, n=1)]
    text, _, checks = assign_citations("The board meets every month [1].", passages,
                                       "How many board members are there?", _embed)
    assert [c.kind for c in checks] == [Problem.NO_FIGURE] and text == ""


def test_a_sentence_that_leans_back_keeps_the_source_of_the_sentence_before_it():
    a1, a2 = "The project cost BGN 100.", "This was funded by OPIC."
    p1, p2 = "The project cost BGN 100 and OPIC funded it.", "OPIC funds cluster projects."
    vectors = {a1: [0.243, 0.97, 0.0], a2: [0.0, 1.0, 0.0], p1: [0.243, 0.97, 0.0], p2: [0.0, 0.99, 0.141]}

    def embed(texts):
        out = np.array([vectors[t] for t in texts])
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    passages = [Passage(chunk=chunk("a.md", "cluster"), text=p1, score=1.0, n=1),
                Passage(chunk=chunk("b.md", "cluster", n=2), text=p2, score=0.9, n=2)]
    text, citations, _ = assign_citations(f"{a1} {a2}", passages, "What did the project cost?", embed)
    # p2 supports "This was funded by OPIC." a little better (0.99 against 0.97), but "This" is the project of p1
    assert text == f"{a1} [1] {a2} [1]" and [c.passage_n for c in citations] == [1]


def test_glossary_is_decided_by_doc_type_not_by_name():
    named = chunk("my-glossary-notes.md", "reference")
    typed = chunk("terms.md", "glossary", "- **клъстер** — cluster, a group of firms\n")
    assert "glossary" in DOC_TYPES and is_glossary(typed) and not is_glossary(named)
    assert glossary_pairs([named, typed]) == [(("клъс",), "cluster")]
    rows = [(typed, 0.9, 0.9, 0.0), (chunk("terms.md", "glossary", n=2), 0.8, 0.8, 0.0), (named, 0.7, 0.7, 0.0),
            (chunk("my-glossary-notes.md", "reference", n=2), 0.6, 0.6, 0.0)]
    kept = [r[0].chunk_id for r in one_glossary_chunk(rows)]
    assert kept == ["terms.md::1", "my-glossary-notes.md::1", "my-glossary-notes.md::2"]


def test_the_corpus_glossary_is_typed_as_one():
    from ingestion.readers import read_document

    assert read_document(CORPUS / "glossary-bg-en.md").doc_type == "glossary"


def test_the_prompts_fingerprint_follows_the_passage_layout(monkeypatch):
    """The fingerprint covers what the model reads, not only the instruction text: a new way of naming passages
    marks the gate (and the cached development signals of scripts/tune_gate.py) as read under other prompts."""
    before = prompts.fingerprint()
    assert prompts.fingerprint() == before
    monkeypatch.setattr(prompts, "passages_block", lambda passages: "\n\n".join(f"({p.n}) {p.text}" for p in passages))
    assert prompts.fingerprint() != before
