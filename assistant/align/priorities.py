"""The strategy priorities as data: ``priorities.toml`` (or an edited copy) loaded and checked field by field."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, get_args

from ingestion.errors import SofiaError

DEFAULT_FILE = Path(__file__).with_name("priorities.toml")

Level = Literal["vertical priority area", "ICT sub-priority", "horizontal policy"]
LEVELS: tuple[str, ...] = get_args(Level)
SUB_LEVEL = "ICT sub-priority"  # the one level that belongs to a parent area
VERTICAL, HORIZONTAL = "vertical priority area", "horizontal policy"

_TOP_FIELDS = ("strategy_doc", "examples_file", "priority")
_EXAMPLE_FIELDS = ("id", "strong", "none", "text")
_FIELDS = ("id", "name", "level", "parent", "strategy_query", "aspects_en", "aspects_bg")
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class PrioritiesError(SofiaError, ValueError):
    """A priorities file that cannot be used; the message names the file, the priority and the field."""

    kind = "config"


@dataclass(frozen=True)
class Priority:
    id: str
    name: str
    level: Level
    aspects_en: tuple[str, ...]  # short phrases compared with the proposal's sentences
    aspects_bg: tuple[str, ...]
    strategy_query: str  # what is searched in the strategy to cite the priority
    parent: str | None = None  # sub-priorities: the id of their area

    @property
    def aspects(self) -> tuple[str, ...]:
        return self.aspects_en + self.aspects_bg


@dataclass(frozen=True)
class Example:
    """A proposal the committee has judged (examples file): it votes for its ``strong`` priorities and against its
    ``none`` ones when a new proposal is near it (docs/ALIGNMENT.md, tenth round)."""

    id: str
    text: str
    strong: tuple[str, ...]
    none: tuple[str, ...]


@dataclass(frozen=True)
class Priorities:
    """The checked contents of one priorities file, in file order (equal contents compare equal, wherever read)."""

    items: tuple[Priority, ...]
    strategy_doc: str  # preferred when several strategy documents answer a priority's strategy_query
    path: str = field(default="", compare=False)
    examples: tuple[Example, ...] = ()  # from the file named by ``examples_file`` (none when it names none)

    def __iter__(self) -> Iterator[Priority]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    @property
    def umbrellas(self) -> frozenset[str]:
        """Ids of the areas that have sub-priorities: scored as their best sub-priority, outside the focus contest."""
        return frozenset(p.parent for p in self.items if p.parent)

    def children(self, priority_id: str) -> list[int]:
        return [i for i, p in enumerate(self.items) if p.parent == priority_id]


def load_priorities(path: Path | str | None = None) -> Priorities:
    """Read and check a priorities file (default: the packaged ``priorities.toml``); raises ``PrioritiesError``."""
    path = Path(path) if path else DEFAULT_FILE
    data = _read_toml(path, "priorities file")
    priorities = parse_priorities(data, str(path))
    if "examples_file" not in data:
        return priorities
    name = _string(data, "examples_file", str(path))
    # next to the priorities file, else the packaged one's (an edited copy of the priorities alone keeps them)
    found = [f for f in (path.parent / name, DEFAULT_FILE.parent / name) if f.is_file()]
    if not found:
        raise PrioritiesError(f'{path}: field "examples_file": no file "{name}" next to it or beside the packaged '
                              f"priorities file")
    examples = load_examples(found[0], [p.id for p in priorities])
    return Priorities(items=priorities.items, strategy_doc=priorities.strategy_doc, path=priorities.path,
                      examples=examples)


def _read_toml(path: Path, what: str) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PrioritiesError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PrioritiesError(f"{path}: not UTF-8 text; save the {what} as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise PrioritiesError(f"{path}: not valid TOML: {exc}") from None


def load_examples(path: Path | str, priority_ids: list[str]) -> tuple[Example, ...]:
    """Read and check an examples file (``examples_file`` of the priorities file, relative to it); raises
    ``PrioritiesError`` naming the file, the example and the field."""
    path = Path(path)
    return parse_examples(_read_toml(path, "examples file"), str(path), priority_ids)


def parse_examples(data: dict, where: str, priority_ids: list[str]) -> tuple[Example, ...]:
    unknown = [k for k in data if k != "example"]
    if unknown:
        raise PrioritiesError(f'{where}: unknown field "{unknown[0]}" (the file has "example")')
    entries = data.get("example")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise PrioritiesError(f'{where}: field "example" must be a non-empty list of [[example]] tables')
    known = set(priority_ids)
    out: list[Example] = []
    first: dict[str, int] = {}
    for n, entry in enumerate(entries, 1):
        label = _entry_label(entry, f"{where}: example {n}", "id", _EXAMPLE_FIELDS, "an example")
        eid = _string(entry, "id", label)
        if eid in first:
            raise PrioritiesError(f'{label}: field "id": "{eid}" is already the id of example {first[eid]}')
        first[eid] = n
        text = _string(entry, "text", label)
        lists = {}
        for name in ("strong", "none"):
            value = entry.get(name)
            if name not in entry:
                raise PrioritiesError(f'{label}: field "{name}" is missing')
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PrioritiesError(f'{label}: field "{name}" must be a list of priority ids')
            for v in value:
                if v not in known:
                    raise PrioritiesError(f'{label}: field "{name}": unknown priority "{v}" (the priorities are '
                                          f'{_names(priority_ids)})')
            lists[name] = tuple(dict.fromkeys(value))
        both = [v for v in lists["strong"] if v in lists["none"]]
        if both:
            raise PrioritiesError(f'{label}: field "none": "{both[0]}" is also in "strong"')
        if not lists["strong"] and not lists["none"]:
            raise PrioritiesError(f'{label}: fields "strong" and "none" are both empty: the example votes for nothing')
        out.append(Example(id=eid, text=text, strong=lists["strong"], none=lists["none"]))
    return tuple(out)


def parse_priorities(data: dict, where: str) -> Priorities:
    """Checked ``Priorities`` from a parsed TOML document; ``where`` names the file in error messages (the
    examples file that ``examples_file`` names is read by ``load_priorities``)."""
    unknown = [k for k in data if k not in _TOP_FIELDS]
    if unknown:
        raise PrioritiesError(f'{where}: unknown field "{unknown[0]}" (the file has {_names(_TOP_FIELDS)})')
    strategy_doc = _string(data, "strategy_doc", where)
    if "examples_file" in data:
        _string(data, "examples_file", where)
    entries = data.get("priority")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise PrioritiesError(f'{where}: field "priority" must be a non-empty list of [[priority]] tables')
    items: list[Priority] = []
    first: dict[str, int] = {}
    for n, entry in enumerate(entries, 1):
        label = _entry_label(entry, f"{where}: priority {n}", "name", _FIELDS, "a priority")
        pid = _string(entry, "id", label)
        if not _ID.match(pid):
            raise PrioritiesError(f'{label}: field "id" must be lower-case letters, digits, "-" or "_", not {pid!r}')
        if pid in first:
            raise PrioritiesError(f'{label}: field "id": "{pid}" is already the id of priority {first[pid]}')
        first[pid] = n
        level = _string(entry, "level", label)
        if level not in LEVELS:
            raise PrioritiesError(f'{label}: field "level" must be one of {_names(LEVELS)}, not "{level}"')
        parent = _string(entry, "parent", label) if "parent" in entry else None
        if (parent is None) != (level != SUB_LEVEL):
            raise PrioritiesError(f'{label}: field "parent" is required for level "{SUB_LEVEL}" and only for it')
        items.append(Priority(id=pid, name=_string(entry, "name", label), level=level,
                              aspects_en=_strings(entry, "aspects_en", label),
                              aspects_bg=_strings(entry, "aspects_bg", label),
                              strategy_query=_string(entry, "strategy_query", label), parent=parent))
    levels = {p.id: p.level for p in items}
    for n, p in enumerate(items, 1):
        if p.parent is not None and levels.get(p.parent) != VERTICAL:
            raise PrioritiesError(f'{where}: priority {n} ("{p.name}"): field "parent": "{p.parent}" must be the id '
                                  f'of a priority with level "{VERTICAL}"')
    return Priorities(items=tuple(items), strategy_doc=strategy_doc, path=where)


def _entry_label(entry: dict, label: str, name_field: str, fields: tuple[str, ...], what: str) -> str:
    """How errors name one [[table]] of a file ("file: priority 3 ("Smart mobility")"), after checking that it has
    no field but ``fields``."""
    if isinstance(entry.get(name_field), str) and entry[name_field].strip():
        label += f' ("{entry[name_field].strip()}")'
    unknown = [k for k in entry if k not in fields]
    if unknown:
        raise PrioritiesError(f'{label}: unknown field "{unknown[0]}" ({what} has {_names(fields)})')
    return label


def _string(entry: dict, name: str, label: str) -> str:
    value = entry.get(name)
    if name not in entry:
        raise PrioritiesError(f'{label}: field "{name}" is missing')
    if not isinstance(value, str) or not value.strip():
        raise PrioritiesError(f'{label}: field "{name}" must be a non-empty string')
    return value.strip()


def _strings(entry: dict, name: str, label: str) -> tuple[str, ...]:
    value = entry.get(name)
    if name not in entry:
        raise PrioritiesError(f'{label}: field "{name}" is missing')
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise PrioritiesError(f'{label}: field "{name}" must be a non-empty list of strings')
    return tuple(v.strip() for v in value)


def _names(names) -> str:
    return ", ".join(f'"{n}"' for n in names)
