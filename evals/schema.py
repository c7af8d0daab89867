"""Typed configuration and results of an evaluation run; ``to_json`` gives the shape report.json has on disk."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TypedDict

from .baselines import SYSTEMS
from .datasets import DEFAULT_DATASET, GoldQuestion, SplitChoice

KS = (1, 3, 5, 10)  # hit, recall and nDCG are scored at each cut-off; the report's headline is nDCG@10


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how. The index and models come from ``Settings``, passed beside it."""

    dataset: Path | str | Sequence[GoldQuestion] = DEFAULT_DATASET  # a .jsonl / .csv file, or questions in memory
    corpus_dir: Path | None = None  # index this folder into its own collection under ``out_dir`` first
    out_dir: Path = Path("reports/eval")
    limit: int | None = None  # at most this many questions, spread evenly over the dataset
    retrieval_only: bool = False  # score retrieval only: no language model
    split: SplitChoice | None = None  # None or "all": every question
    lang: str | None = None  # only the questions in this language
    systems: tuple[str, ...] = SYSTEMS
    k: int = max(KS)  # passages each system retrieves per question
    resume: bool = False  # reuse the records in ``out_dir`` scored by the same code and settings
    budget_seconds: float | None = None  # stop asking new questions after this long
    progress: bool = True  # a progress bar on stderr
    write: bool = True  # write records.jsonl and the three report files into ``out_dir``


# --------------------------------------------------------------------------- per question (JSON records)
# Per-question records stay plain dicts: they are appended to records.jsonl, read back by --resume and by
# ``evals.recite``. These TypedDicts name their fields.

class SystemRetrieval(TypedDict):
    seconds: float
    scores: dict[str, float | None]  # "doc_hit@5", "fact_mrr", ...
    passages: list[dict[str, Any]]  # doc, section, pages, fact_ids, score


class AnswerRecord(TypedDict):
    text: str
    refused: bool
    correct: bool | None
    citations: list[dict[str, Any]]
    scores: dict[str, float | None]  # key_fact_recall, token_f1, citation_precision, quote_validity, grounding
    missing: list[str]
    timings: dict[str, float]
    tokens_per_s: float | None
    draft: str
    draft_cut_off: bool
    removed: list[str]
    signals: dict[str, float]
    outcome: str  # assistant.types.Outcome: answered, unconfirmed or not_found
    evidence: list[dict[str, Any]]  # an unconfirmed outcome's quoted sentences with doc, section and page


class QuestionRecord(TypedDict, total=False):
    id: str
    question: str
    split: str
    persona: str
    lang: str
    answerable: bool
    kind: str
    reference_answer: str
    key_facts: list[str]
    fact_ids: list[str]
    gold_sources: list[dict[str, Any]]
    retrieval: dict[str, SystemRetrieval]
    answer: AnswerRecord | None
    checks: dict[str, bool]


class Stats(TypedDict):
    p50: float | None
    p95: float | None
    mean: float | None
    n: int


# --------------------------------------------------------------------------- the run

@dataclass
class Partial:
    """A run stopped by its time budget: how many questions were scored of how many."""

    scored: int
    of: int


@dataclass
class RunMeta:
    dataset: str
    questions: int
    limit: int | None
    split: str  # as the report shows it, e.g. "test, bg questions only"
    retrieval_only: bool
    systems: list[str]
    ours: str
    k: int
    embed_model: str
    index: str
    collection: str
    corpus: str | None
    ingest: str | None  # the ingest summary of a --corpus run
    started: str
    setup_seconds: float
    python: str
    notes: dict[str, str]
    fingerprint: str
    reused: int
    partial: Partial | None
    seconds: float = 0.0
    peak_memory_mb: float = 0.0
    files: list[str] | None = None  # set once the reports are written, so report.json does not list itself

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.files is None:
            del out["files"]
        return out


@dataclass
class Coverage:
    questions: int
    with_gold_sources: int
    with_fact_ids: int
    with_key_facts: int
    unanswerable: int


@dataclass
class Calibration:
    """The refusal sweep around the gate's operating threshold (rows: ``metrics.calibration``)."""

    operating_threshold: float | None
    curve: list[dict[str, Any]]
    n: int


@dataclass
class Summary:
    """Means over the questions; the answer fields are None (and left out of the JSON) for a retrieval-only run."""

    retrieval: dict[str, dict[str, float | None]]  # system -> metric -> mean
    retrieval_latency: dict[str, Stats]
    breakdown: dict[str, dict[str, dict[str, dict]]]  # "retrieval"/"answer" -> group key -> value -> mean_scores
    coverage: Coverage
    answer: dict[str, float | None] | None = None
    answer_n: dict[str, int] | None = None
    refusal: dict[str, float | None] | None = None
    latency: dict[str, Stats] | None = None  # per stage of the answer
    tokens_per_s: Stats | None = None
    calibration: Calibration | None = None
    # answered / unconfirmed / not_found among answerable and unanswerable questions (metrics.outcome_counts)
    outcomes: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        if self.answer is None:
            for name in ("answer", "answer_n", "refusal", "latency", "tokens_per_s", "calibration", "outcomes"):
                del out[name]
        return out


@dataclass
class EvalResult:
    meta: RunMeta
    summary: Summary
    questions: list[QuestionRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The report.json document: ``meta``, ``summary`` and the per-question records."""
        return {"meta": self.meta.to_json(), "summary": self.summary.to_json(), "questions": self.questions}
