"""Domain objects of answering: what retrieval returns and what an answer carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

from ingestion.types import Chunk

Language = Literal["en", "bg"]  # the language of a question or an answer: English or Bulgarian
# what became of a question: a checked answer; no confirmed answer but quoted passage sentences most likely to answer
# it; or nothing in the documents close to it (only then does the assistant say the documents do not answer)
Outcome = Literal["answered", "unconfirmed", "not_found"]
GLOSSARY = "glossary"  # the ``doc_type`` of a term list (front matter ``doc_type: glossary``)


def is_glossary(chunk: Chunk) -> bool:
    """A glossary translates terms; it restates facts whose source is another document."""
    return chunk.doc_type == GLOSSARY


@dataclass
class Passage:
    """A retrieved piece of text (one chunk, or neighbouring chunks merged), numbered for the prompt."""

    chunk: Chunk  # the first chunk; ``text`` may extend over merged neighbours
    text: str
    score: float  # fused retrieval score, 0..1
    dense: float = 0.0  # cosine similarity, 0 when not found by the dense retriever
    bm25: float = 0.0  # BM25 score normalised by the query's best, 0 when not found by BM25
    chunk_ids: tuple[str, ...] = ()
    facts: tuple[str, ...] = ()  # fact ids (<!-- R12 -->) of every merged chunk
    n: int = 0  # 1-based number in the prompt

    @property
    def doc_id(self) -> str:
        return self.chunk.doc_id

    @property
    def fact_ids(self) -> tuple[str, ...]:
        return self.facts or self.chunk.fact_ids

    def label(self) -> str:
        where = self.chunk.section or (f"p. {self.chunk.pages}" if self.chunk.pages else "")
        return f"{self.chunk.title}{' > ' + where if where else ''}"


@dataclass
class Citation:
    """A source of an answer: the passage, where it is, and the exact sentence that supports the answer."""

    n: int
    doc: str
    title: str
    page: str  # "" for documents without pages, "3" or "3-4" for PDFs
    section: str
    quote: str  # the exact supporting sentence(s) from the passage
    source_url: str
    score: float
    passage_n: int = 0  # the passage's number in the prompt (``Passage.n``)

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class Retrieved:
    """Streamed by ``Assistant.ask_stream`` as soon as the passages are found, before the model reads them
    (reading takes most of an answer's time on a laptop CPU), so a user sees the sources at once."""

    passages: list[Passage]


@dataclass
class Answer:
    """The checked answer (or refusal) to a question, with its citations, passages, timings and gate signals."""

    question: str
    text: str
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    passages: list[Passage] = field(default_factory=list)  # what the model saw (closest passages on refusal)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    notice: str = ""  # e.g. degraded mode, truncated question
    language: Language = "en"
    standalone_question: str = ""
    signals: dict[str, float] = field(default_factory=dict)  # gate inputs, for evaluation and calibration
    removed_sentences: list[str] = field(default_factory=list)  # dropped by the grounding check
    draft: str = ""  # the model's raw answer before the gate and the citation check (for evaluation)
    draft_cut_off: bool = False  # the model was stopped at its token limit in mid-draft
    model_failure: str = ""  # why the model gave no answer (degraded mode: passages only); "" when it did
    # "unconfirmed" and "not_found" are refusals (``refused``); degraded mode is "unconfirmed" with ``refused`` False,
    # as before, because its passages are shown as its citations
    outcome: Outcome = "answered"
    evidence: list[Citation] = field(default_factory=list)  # unconfirmed: the quoted sentences, verbatim

    def __post_init__(self) -> None:
        if self.refused and self.outcome == "answered":
            self.outcome = "not_found"  # a refusal built without an outcome: the one refusal there was before outcomes
        if not self.refused and self.outcome != "answered" and not self.model_failure:
            raise ValueError(f"Answer: outcome {self.outcome!r} is not an answer, but refused is False")

    def to_json(self) -> dict:
        return {
            "answer": self.text,
            "citations": [c.to_json() for c in self.citations],
            "refused": self.refused,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "notice": self.notice,
            "language": self.language,
            "standalone_question": self.standalone_question,
            "signals": {k: round(v, 5) for k, v in self.signals.items()},
            "passages": [{"n": p.n, "doc": p.doc_id, "title": p.chunk.title, "section": p.chunk.section,
                          "page": p.chunk.pages, "score": round(p.score, 4), "text": p.text,
                          "chunk_ids": list(p.chunk_ids), "fact_ids": list(p.fact_ids)} for p in self.passages],
            "removed_sentences": self.removed_sentences,
            "draft": self.draft,
            "draft_cut_off": self.draft_cut_off,
            "model_failure": self.model_failure,
            "outcome": self.outcome,
            "evidence": [c.to_json() for c in self.evidence],
        }
