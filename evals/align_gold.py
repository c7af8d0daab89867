"""The alignment gold set (``datasets/align_gold.jsonl``): proposals with the priorities each must and must not reach.

One JSON object per line: ``id``, ``split`` (dev/test), ``lang`` (en/bg), ``kind``, ``length``, ``text``,
``must_strong`` (priority ids that must be ``strong``), ``must_partial`` (at least ``partial``) and ``must_none``
(must stay ``none``); a priority in none of the three lists is not judged. A malformed line raises
``DatasetError`` naming the file, the line and the field; evals/datasets/README.md describes the set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Collection, Literal

from .datasets import SPLITS, DatasetError

ALIGN_GOLD = Path(__file__).resolve().parent / "datasets" / "align_gold.jsonl"
LANGS = ("en", "bg")
KINDS = ("single", "multi", "generic_ict", "ecosystem", "offtopic")
LENGTHS = ("short", "long")
LISTS = ("must_strong", "must_partial", "must_none")

Expect = Literal["strong", "partial", "none"]  # what a labelled (proposal, priority) pair must reach


@dataclass(frozen=True)
class AlignCase:
    id: str
    split: str
    lang: str
    kind: str  # single, multi, generic_ict, ecosystem or offtopic
    length: str  # short (one or two sentences) or long (a proposal with headings and boilerplate)
    text: str
    must_strong: tuple[str, ...]
    must_partial: tuple[str, ...]  # at least partial; strong is also right
    must_none: tuple[str, ...]

    def expected(self, priority_id: str) -> Expect | None:
        """The level a priority must reach (``none``: must stay none); None when the pair is not judged."""
        if priority_id in self.must_strong:
            return "strong"
        if priority_id in self.must_partial:
            return "partial"
        if priority_id in self.must_none:
            return "none"
        return None


def load_align_gold(path: Path | str = ALIGN_GOLD, *, split: str | None = None, lang: str | None = None,
                    priority_ids: Collection[str] | None = None) -> list[AlignCase]:
    """The cases of ``path`` (``split``/``lang``: only those; None or "all": every one). ``priority_ids``: the ids
    a list may name (default: any); a bad line raises ``DatasetError`` with file, line and field."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the alignment gold set: {exc.strerror or exc}") from None
    cases: list[AlignCase] = []
    seen: set[str] = set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{where}: not valid JSON: {exc.msg}") from None
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: a line must be a JSON object")
        case = _case(row, where, priority_ids)
        if case.id in seen:
            raise DatasetError(f'{where}: field "id": "{case.id}" is used twice')
        seen.add(case.id)
        cases.append(case)
    if not cases:
        raise DatasetError(f"{path}: the alignment gold set has no proposals")
    return [c for c in cases if split in (None, "all", c.split) and lang in (None, c.lang)]


def _case(row: dict, where: str, priority_ids: Collection[str] | None) -> AlignCase:
    def text(name: str, choices: tuple[str, ...] | None = None) -> str:
        value = row.get(name)
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f'{where}: field "{name}" must be a non-empty string')
        if choices and value not in choices:
            raise DatasetError(f'{where}: field "{name}" must be one of {", ".join(choices)}, not "{value}"')
        return value

    def ids(name: str) -> tuple[str, ...]:
        value = row.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DatasetError(f'{where}: field "{name}" must be a list of priority ids')
        unknown = [v for v in value if priority_ids is not None and v not in priority_ids]
        if unknown:
            raise DatasetError(f'{where}: field "{name}": unknown priority "{unknown[0]}"')
        return tuple(value)

    lists = {name: ids(name) for name in LISTS}
    for a, b in (("must_strong", "must_partial"), ("must_strong", "must_none"), ("must_partial", "must_none")):
        both = set(lists[a]) & set(lists[b])
        if both:
            raise DatasetError(f'{where}: field "{b}": "{sorted(both)[0]}" is also in "{a}"')
    return AlignCase(id=text("id"), split=text("split", SPLITS), lang=text("lang", LANGS),
                     kind=text("kind", KINDS), length=text("length", LENGTHS), text=text("text"), **lists)
