"""Grounding: are an answer's numbers, dates and names in the passages it cites (pure, no models, no I/O)."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal, Sequence

from .metrics import contains, normalize, normalize_numbers

ClaimKind = Literal["date", "number", "name"]  # what an answer states that the cited text must hold

_MONTHS = ("january|february|march|april|may|june|july|august|september|october|november|december|"
           "януари|февруари|март|април|май|юни|юли|август|септември|октомври|ноември|декември")
_DATE = re.compile(
    r"\b\d{4}-\d{2}-\d{2}\b|\b\d{1,2}[./]\d{1,2}[./]\d{4}\b"
    rf"|\b(?:\d{{1,2}}\s+)?(?:{_MONTHS})\s+\d{{4}}\b|\b(?:{_MONTHS})\s+\d{{1,2}},?\s+\d{{4}}\b",
    re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)?%?")
_WORD = re.compile(r"[^\W\d_][\w'\-]*")
_CITE = re.compile(r"\[\d+(?:\s*[,\-]\s*\d+)*\]")
_SENTENCE_END = re.compile(r"[.!?:;\n]\s*$")


def claims(answer: str) -> list[tuple[ClaimKind, str]]:
    """(kind, text) of the checkable items in an answer: dates, numbers, capitalised names.

    A capitalised word that starts a sentence is not taken as a name on its own (it is dropped from
    the front of a longer run) unless it is an acronym like ``CSKC`` or ``RIS3``. Citation markers like ``[2]`` are ignored.
    """
    text = _CITE.sub(" ", unicodedata.normalize("NFKC", answer or ""))
    items: list[tuple[ClaimKind, str]] = []
    for m in _DATE.finditer(text):
        items.append(("date", m.group(0)))
    text = _DATE.sub(" ", text)
    text = normalize_numbers(text)
    for m in _NUMBER.finditer(text):
        items.append(("number", m.group(0).rstrip("%")))
    run: list[str] = []
    run_start = prev_end = 0

    def flush():
        acronym = run and (run[0].isupper() and len(run[0]) > 1 or any(ch.isdigit() for ch in run[0]))
        words = run[1:] if run and not acronym and _sentence_start(text, run_start) else run
        if words:
            items.append(("name", " ".join(words)))

    for m in _WORD.finditer(text):
        word = m.group(0)
        if word[0].isupper():
            if run and text[prev_end:m.start()].strip():  # punctuation between words breaks the run
                flush()
                run = []
            if not run:
                run_start = m.start()
            run.append(word)
        elif run:
            flush()
            run = []
        prev_end = m.end()
    if run:
        flush()
    return list(dict.fromkeys(items))


def _sentence_start(text: str, pos: int) -> bool:
    before = text[:pos]
    return not before.strip() or _SENTENCE_END.search(before) is not None


# Small numbers a passage may spell out (en, bg). The metric keeps its own table on purpose: it must not
# import the system's citation check, which it is there to measure.
SPELLED = {
    "1": ("one", "един", "една", "едно"), "2": ("two", "два", "две"), "3": ("three", "три"),
    "4": ("four", "четири"), "5": ("five", "пет"), "6": ("six", "шест"), "7": ("seven", "седем"),
    "8": ("eight", "осем"), "9": ("nine", "девет"), "10": ("ten", "десет"), "11": ("eleven", "единадесет"),
    "12": ("twelve", "дванадесет"), "15": ("fifteen", "петнадесет"), "20": ("twenty", "двадесет"),
}


# A Bulgarian answer to a question about English passages translates what it cites: its months and a few names
# are grounded by their English form. The metric keeps this table itself (the corpus glossary adds the rest).
BG_MONTHS = dict(zip("януари февруари март април май юни юли август септември октомври ноември декември".split(),
                     "january february march april may june july august september october november december".split()))
# (inflected forms match as in the glossary: "българските" is "български", see ``_same_word``)
BG_NAMES = {"българия": ("Bulgaria",), "български": ("Bulgarian",), "българска": ("Bulgarian",), "софия": ("Sofia",),
            "мсп": ("SME", "SMEs"), "ес": ("EU",), "европейски": ("European",), "европейска": ("European",)}
# words an acronym's letters may step over in its spelled-out form ("ISSS": Innovation Strategy for Smart Specialisation)
_LINKERS = frozenset("and of for the in on to за на и в".split())
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")
_ALPHA_RUN = re.compile(r"[^\W\d_]+")


def spelled_out(acronym: str, text: str) -> bool:
    """Is an acronym of three or more letters (``CSKC``) written out in ``text`` (as written, not normalised) as
    the capital initials of consecutive words ("Cluster Sofia – Knowledge City"), small lower-case linking words
    allowed between them ("Innovation Strategy for Smart Specialisation")? Capitals only, so that three
    ordinary words do not spell an acronym by chance."""
    letters = acronym.upper()
    if len(letters) < 3 or not letters.isalpha():
        return False
    words = _ALPHA_RUN.findall(unicodedata.normalize("NFKC", text))
    for i, first in enumerate(words):
        if first[0] != letters[0]:
            continue
        k, j = 0, i
        while k < len(letters) and j < len(words):
            if words[j][0] == letters[k]:
                k, j = k + 1, j + 1
            elif k and words[j] in _LINKERS:
                j += 1
            else:
                break
        if k == len(letters):
            return True
    return False


def parse_glossary(text: str) -> list[tuple[frozenset[str], tuple[str, ...]]]:
    """Entries of a Bulgarian–English glossary in the corpus's format, as (Bulgarian words, English names):
    ``- **Клъстер София град на знанието (КСГЗ)** — Cluster Sofia – Knowledge City (CSKC), the ...`` gives the
    Bulgarian words of the bold term and its bracket, and the English names before the first comma or "see",
    split at ";" and "/", with any acronym in brackets, and the leading capitalised words of each, as names of
    their own."""
    entries = []
    for m in re.finditer(r"^\s*-\s+\*\*(?P<bg>.+?)\*\*(?P<rest>.*?)\s+—\s+(?P<en>.+)$", text, re.MULTILINE):
        bg = m.group("bg") + " " + m.group("rest")
        lead = re.split(r",|;\s*see\b|\s\(\[", m.group("en"), maxsplit=1)[0]
        names: list[str] = []
        for alt in re.split(r"[;/]", lead):
            names += [a.strip(" .\"'“”„") for a in re.findall(r"\(([^)]*)\)", alt)]
            names.append(re.sub(r"\([^)]*\)", "", alt).strip(" .\"'“”„"))
        words = frozenset(w.casefold() for w in _ALPHA_RUN.findall(bg)
                          if _CYRILLIC.search(w) and w.casefold() not in _LINKERS)
        # "General Assembly of the members" is found as "General Assembly": its leading capitalised words (two or more)
        names += [caps.group(0) for n in names if (caps := re.match(r"[A-Z][\w&-]*(?:\s+[A-Z][\w&-]*)+", n))]
        names = [n for n in dict.fromkeys(names) if n]
        if words and names:
            entries.append((words, tuple(names)))
    return entries


def _same_word(a: str, b: str) -> bool:
    """Bulgarian inflects names ("Общинският" of "Общински", "Общото" of "Общо"): a word of four letters or more
    matches a longer one that starts with it; shorter ones (acronyms like "ЕС") must be equal."""
    short, long_ = sorted((a, b), key=len)
    return short == long_ or (len(short) >= 4 and long_.startswith(short))


def _name_found(name: str, norm_sources: str, raw: str) -> bool:
    return contains(norm_sources, name) or (name.isupper() and spelled_out(name, raw))


def _translated(words: list[str], norm_sources: str, raw: str, glossary) -> bool:
    """Cyrillic words of a name grounded by their English form: each through ``BG_NAMES``, or all of them
    through one glossary entry whose English name is in the sources."""
    folded = [w.casefold() for w in words]
    if all(any(_same_word(w, word) and _name_found(n, norm_sources, raw) for word, names in BG_NAMES.items()
               for n in names) for w in folded):
        return True
    return any(all(any(_same_word(w, b) for b in bg) for w in folded) and any(_name_found(n, norm_sources, raw) for n in names)
               for bg, names in glossary)


def _claim_found(kind: ClaimKind, item: str, norm_sources: str, raw: str = "", glossary=()) -> bool:
    """Is one claim of the answer in the sources? (``norm_sources``: ``normalize`` of ``raw``, the cited text.)"""
    if kind == "name":  # a possessive is the name itself: "OPIC's budget" is grounded by "OPIC"
        words = [re.sub(r"'s$", "", w) for w in _WORD.findall(item.replace("\u2019", "'"))]
        left = [w for w in words if not re.search(rf"(?<!\w){re.escape(w.casefold())}(?!\w)", norm_sources)
                and not (w.isupper() and spelled_out(w, raw))]  # "CSKC" spelled out counts
        return not left or (all(_CYRILLIC.search(w) for w in left) and _translated(left, norm_sources, raw, glossary))
    if kind == "date":
        english = " ".join(BG_MONTHS.get(p.casefold(), p) for p in item.split())
        if contains(norm_sources, item) or contains(norm_sources, english):
            return True
        parts = re.findall(r"\d+|[^\W\d_]+", english)  # every component (day, month, year) is there
        return all(contains(norm_sources, p.lstrip("0") or p) for p in parts)
    # "5 members" is grounded by a passage that says "five members"
    return contains(norm_sources, item) or any(
        re.search(rf"(?<!\w){w}(?!\w)", norm_sources) for w in SPELLED.get(item, ()))


def grounding(answer: str, cited_texts: Sequence[str], glossary=()) -> tuple[float | None, list[str]]:
    """Fraction of the answer's numbers, dates and names found in the cited passages' text, and
    the missing ones. None when the answer has nothing checkable. A name also counts as found when it is an
    acronym the passage spells out ("CSKC" for "Cluster Sofia – Knowledge City"), and a Bulgarian month or name
    when its English form is there (``glossary``: ``parse_glossary`` of the corpus's glossary, if it has one)."""
    items = claims(answer)
    if not items:
        return None, []
    raw = "\n".join(cited_texts)
    norm_sources = normalize(raw)
    missing = [item for kind, item in items if not _claim_found(kind, item, norm_sources, raw, glossary)]
    return 1.0 - len(missing) / len(items), missing
