"""Gold questions: the project's JSONL and the sec-10-q benchmark CSV -> ``GoldQuestion``.

JSONL fields (unknown ones are ignored): id, split, question, reference_answer, answerable,
key_facts (alternatives separated by ``|``), gold_sources [{doc, section?, page?}], fact_ids,
persona, lang. Only ``question`` is required; a missing optional field just skips the metrics
that need it. A malformed line raises ``DatasetError`` naming the file, line and field.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from ingestion.errors import SofiaError

DEFAULT_DATASET = Path(__file__).resolve().parent / "datasets" / "sofia_gold.jsonl"

Split = Literal["dev", "test"]  # the development part (for tuning) and the test part (for reporting only)
SPLITS: tuple[Split, ...] = get_args(Split)
SplitChoice = Literal["dev", "test", "all"]  # a filter: one part, or every question


class DatasetError(SofiaError, ValueError):
    kind = "dataset"


@dataclass(frozen=True)
class GoldSource:
    doc: str  # a file name or an fnmatch glob ("*2023 Q3 AAPL*")
    section: str | None = None
    page: int | None = None


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    question: str
    split: Split | Literal[""] = ""  # "" when the dataset has no splits
    reference_answer: str = ""
    answerable: bool = True
    key_facts: tuple[str, ...] = ()
    gold_sources: tuple[GoldSource, ...] = ()
    fact_ids: tuple[str, ...] = ()
    persona: str = ""
    lang: str = "en"
    kind: str = ""  # e.g. sec-10-q "Question Type"
    chunk_type: str = ""  # e.g. sec-10-q "Source Chunk Type"


def load_dataset(path, split: SplitChoice | None = None) -> list[GoldQuestion]:
    """Read a ``.jsonl`` or ``.csv`` dataset; keep one split (None or "all" keeps every question).

    Questions without a split (a JSONL line without ``split``) pass any split filter; the benchmark CSV's
    questions get one by row (``csv_split``).
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such dataset file")
    if path.suffix.lower() == ".csv":
        questions = _load_csv(path)
    else:
        questions = _load_jsonl(path)
    if split and split != "all":
        questions = [q for q in questions if not q.split or q.split == split]
    return questions


# --------------------------------------------------------------------------- JSONL

def _load_jsonl(path: Path) -> list[GoldQuestion]:
    out: list[GoldQuestion] = []
    seen: set[str] = set()
    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip() or line.lstrip().startswith("//"):
                continue
            where = f"{path}:{lineno}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(raw, dict):
                raise DatasetError(f"{where}: each line must be a JSON object")
            q = _question(raw, where, default_id=f"line{lineno}")
            if q.id in seen:
                raise DatasetError(f"{where}: field 'id': duplicate id {q.id!r}")
            seen.add(q.id)
            out.append(q)
    return out


def _question(raw: dict, where: str, default_id: str) -> GoldQuestion:
    def text(name: str, default: str = "", required: bool = False) -> str:
        value = raw.get(name)
        if value is None:
            if required:
                raise DatasetError(f"{where}: field {name!r} is missing")
            return default
        if not isinstance(value, (str, int)) or isinstance(value, bool):
            raise DatasetError(f"{where}: field {name!r} must be a string, not {type(value).__name__}")
        return str(value)

    def strings(name: str) -> tuple[str, ...]:
        value = raw.get(name)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DatasetError(f"{where}: field {name!r} must be a list of strings")
        return tuple(v for v in value if v.strip())

    question = text("question", required=True)
    if not question.strip():
        raise DatasetError(f"{where}: field 'question' is empty")
    answerable = raw.get("answerable", True)
    if not isinstance(answerable, bool):
        raise DatasetError(f"{where}: field 'answerable' must be true or false")
    split = text("split")
    if split and split not in SPLITS:
        raise DatasetError(f"{where}: field 'split' must be {' or '.join(map(repr, SPLITS))}, not {split!r}")
    return GoldQuestion(
        id=text("id", default_id), question=question, split=split, reference_answer=text("reference_answer"),
        answerable=answerable, key_facts=strings("key_facts"), gold_sources=_sources(raw.get("gold_sources"), where),
        fact_ids=strings("fact_ids"), persona=text("persona"), lang=text("lang", "en") or "en",
    )


def _sources(value, where: str) -> tuple[GoldSource, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DatasetError(f"{where}: field 'gold_sources' must be a list")
    out = []
    for i, s in enumerate(value):
        name = f"gold_sources[{i}]"
        if isinstance(s, str):
            s = {"doc": s}
        if not isinstance(s, dict) or not isinstance(s.get("doc"), str) or not s["doc"].strip():
            raise DatasetError(f"{where}: field {name!r} needs a 'doc' string")
        section = s.get("section")
        if section is not None and not isinstance(section, str):
            raise DatasetError(f"{where}: field '{name}.section' must be a string")
        page = s.get("page")
        if page is not None:
            try:
                page = int(page)
            except (TypeError, ValueError):
                raise DatasetError(f"{where}: field '{name}.page' must be a page number, not {page!r}") from None
        out.append(GoldSource(doc=s["doc"].strip(), section=(section or "").strip() or None, page=page))
    return tuple(out)


# --------------------------------------------------------------------------- sec-10-q CSV

CSV_COLUMNS = ("Question", "Source Docs", "Question Type", "Source Chunk Type", "Answer")


def csv_split(row: int) -> Split:
    """The split of the CSV's ``row``-th question (1-based): every other question, odd rows ``dev``, even rows
    ``test``. The CSV has no split of its own; alternating rows keeps each filing and question type in both."""
    if row < 1:
        raise ValueError(f"CSV question rows count from 1, not {row}")
    return "dev" if row % 2 == 1 else "test"


def _load_csv(path: Path) -> list[GoldQuestion]:
    out = []
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in ("Question", "Source Docs", "Answer") if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
        for i, row in enumerate(reader, start=1):
            question = (row.get("Question") or "").strip()
            if not question:
                raise DatasetError(f"{path}:{reader.line_num}: field 'Question' is empty")
            globs = [g.strip() for g in (row.get("Source Docs") or "").split(",") if g.strip()]
            out.append(GoldQuestion(
                id=f"{path.stem}-{i:03d}", question=question, split=csv_split(i), reference_answer=(row.get("Answer") or "").strip(),
                answerable=True, gold_sources=tuple(GoldSource(doc=g) for g in globs),
                kind=(row.get("Question Type") or "").strip(), chunk_type=(row.get("Source Chunk Type") or "").strip(),
                lang="en",
            ))
    return out
