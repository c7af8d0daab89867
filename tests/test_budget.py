"""The passage budget (assistant/budget.py): passage sets under it pass untouched; over it, long passages are cut to
the window that best matches the question, keep their label, and the whole set stays within the budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import budget as B
from assistant import prompts
from assistant.types import Passage
from ingestion.config import Settings
from ingestion.types import Chunk

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


def passage(text: str, n: int = 1, title: str = "Apple Inc. 10-Q 2023 Q3", section: str = "Results of Operations",
            page: int | None = 27) -> Passage:
    chunk = Chunk(chunk_id=f"c{n}", doc_id="2023 Q3 AAPL.pdf", title=title, path="2023 Q3 AAPL.pdf", doc_type="pdf",
                  language="en", text=text, start=0, end=len(text), heading_path=(section,) if section else (),
                  page_start=page, page_end=page, source_urls=(), content_hash="", doc_hash="", doc_chunks=1,
                  embed_model="")
    return Passage(chunk=chunk, text=text, score=1.0, n=n)


FILLER = [
    "The Company designs, manufactures and markets smartphones, personal computers, tablets and wearables.",
    "Operating expenses grew because of higher headcount-related expenses and infrastructure costs.",
    "The Company believes its existing balances of cash will be sufficient to satisfy its working capital needs.",
    "Foreign currency movements had an unfavourable effect on the results in most geographic segments.",
    "The Company repurchased shares of its common stock under the programme approved by its Board.",
    "Tax contingencies are evaluated each quarter, and uncertain positions are recorded when they are probable.",
]
ANSWER = "iPhone net sales were $39,669 million for the three months ended July 1, 2023."


def long_text(repeats: int = 8, answer_at: int = 30) -> str:
    sentences = [f"{s[:-1]} (note {i})." for i in range(repeats) for s in FILLER]
    sentences.insert(answer_at, ANSWER)
    return "\n".join(" ".join(sentences[i:i + 3]) for i in range(0, len(sentences), 3))


def test_a_passage_set_under_the_budget_is_returned_unchanged():
    ps = [passage("A Bronze label is valid for two years.", 1), passage("A Gold label costs EUR 8,250.", 2)]
    before = [(p.text, p.chunk) for p in ps]
    out = B.fit(ps, "How long is a Bronze label valid?", 700)
    assert out is ps and [(p.text, p.chunk) for p in out] == before
    assert B.fit(ps, "anything", 0) is ps  # 0: no limit


def test_a_long_passage_is_cut_around_the_best_matching_sentence_and_keeps_its_label():
    text = long_text()
    p = passage(text)
    assert B.estimate_tokens(text) > 600
    [out] = B.fit([p], "What were Apple's iPhone net sales in the quarter ended July 1, 2023?", 200)
    assert ANSWER in out.text
    assert out.text in text and out.text == out.text.strip()  # a verbatim slice: quotes from it stay checkable
    assert len(out.text) < len(text) / 3
    assert out.label() == p.label() and "Results of Operations" in prompts.passages_block([out])
    assert out.chunk is p.chunk and p.text == text  # the retrieved passage itself is not changed


def test_the_window_follows_the_question():
    text = long_text()
    q_tax = "How are uncertain tax contingencies evaluated each quarter?"
    cut = B.cut(text, q_tax, 60)
    assert "Tax contingencies are evaluated" in cut and ANSWER not in cut


@pytest.mark.parametrize("budget", [250, 450, 700])
def test_the_whole_set_stays_within_the_budget_with_more_for_earlier_passages(budget):
    ps = [passage(long_text(answer_at=5 + 7 * n), n, section=f"Part {n}") for n in (1, 2, 3)]
    out = B.fit(ps, "What were iPhone net sales?", budget)
    assert B.passage_tokens(out) <= budget
    assert [p.n for p in out] == [1, 2, 3]
    frames = sum(B.frame_tokens(p) for p in ps)
    shares = B.allocate([B.estimate_tokens(p.text) for p in ps], budget - frames, B.rank_weights(3))
    assert shares[0] > shares[1] > shares[2]  # earlier passages get more
    assert all(0 < B.estimate_tokens(p.text) <= share for p, share in zip(out, shares))
    assert all(ANSWER in p.text for p in out)


def test_a_short_passage_keeps_its_text_and_leaves_the_rest_to_the_long_one():
    short = passage("A first-time Gold assessment costs EUR 8,250 excluding VAT.", 1, section="Prices")
    long = passage(long_text(), 2)
    out = B.fit([short, long], "What were iPhone net sales?", 300)
    assert out[0] is short
    assert B.passage_tokens(out) <= 300 and B.passage_tokens(out) > 250  # the short one's unused share is used


def test_units_are_verbatim_and_long_lines_are_split_into_word_groups():
    row = " ".join(f"{1000 + i:,}" for i in range(120))  # a table line with no sentence end
    text = "Net sales by category.\n" + row + "\nEnd. Next sentence here."
    units = B.split_units(text)
    assert all(text[u.start:u.end].strip() == text[u.start:u.end] != "" for u in units)
    assert [text[u.start:u.end] for u in units][-2:] == ["End.", "Next sentence here."]
    assert all(B.estimate_tokens(text[u.start:u.end]) <= B.MAX_UNIT_TOKENS for u in units)


def test_allocation_shares_by_rank_and_hands_on_what_a_small_item_leaves():
    assert B.allocate([100, 100], 500, [1, 1]) == [100, 100]
    assert B.allocate([1000, 1000, 1000], 300, [3, 2, 1]) == [150, 100, 50]
    assert B.allocate([20, 1000, 1000], 300, [1, 1, 1]) == [20, 140, 140]


def test_settings_expose_the_budget():
    assert Settings().passage_tokens > 0
    assert Settings.from_env({"SOFIA_QA_PASSAGE_TOKENS": "500"}).passage_tokens == 500
    assert "SOFIA_QA_PASSAGE_TOKENS" in Settings.help()
    with pytest.raises(ValueError, match="SOFIA_QA_PASSAGE_TOKENS"):
        Settings.from_env({"SOFIA_QA_PASSAGE_TOKENS": "many"})


def test_the_estimate_tracks_the_models_own_tokenizer():
    """Against the bundled model's tokenizer (the vocabulary alone: fast to load), on our corpus and on a
    figures-heavy table like a 10-Q's: close, and rarely below it."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from assistant.llm import bundled_model_path

    vocab = llama_cpp.Llama(model_path=str(bundled_model_path(Settings.from_env().model_cache)), vocab_only=True,
                            verbose=False)
    real = lambda t: len(vocab.tokenize(t.encode(), add_bos=False, special=True))  # noqa: E731
    table = "\n".join(f"Products {q} $ {1000 + 37 * q:,} $ {2000 + 53 * q:,} {q * 3}.{q} %" for q in range(40))
    texts = [f.read_text(encoding="utf-8") for f in sorted(CORPUS.glob("*.md"))] + [table]
    for text in texts:
        ratio = B.estimate_tokens(text) / real(text)
        assert 0.95 <= ratio <= 1.3, (text[:60], ratio)
