"""Proposal text -> the sentences that are compared with the priorities."""

from __future__ import annotations

import re

MAX_SENTENCES = 400  # a long proposal is cut here (embedding 400 sentences takes a few seconds)
MAX_SENTENCE_CHARS = 500
MIN_WORDS = 5  # shorter pieces are titles and headings ("Smart Mobility Sofia"), not evidence

SENT_END = re.compile(r"(?<=[.!?;])\s+(?=[\"'(«„A-ZА-Я0-9])")
BULLET = re.compile(r"^\s*(?:[#>*\-+•]+|\d+[.)])\s*")
# a full stop after one of these does not end a sentence ("the square of Св. Александър Невски", "ул. Граф Игнатиев",
# "e.g. Sofia"); words that often close a sentence ("etc.", "и др.", "и т.н.") are left out on purpose
ABBREVIATIONS = frozenset({
    "св.", "ул.", "бул.", "пл.", "гр.", "с.", "кв.", "ж.к.", "ж.к", "бл.", "вх.", "ет.", "ап.", "обл.", "р-н.",
    "т.е.", "напр.", "т.нар.", "вкл.", "вж.", "чл.", "ал.", "проф.", "доц.", "акад.", "инж.", "арх.", "д-р.", "г.",
    "st.", "e.g.", "i.e.", "dr.", "mr.", "mrs.", "ms.", "prof.", "no.", "nos.", "vs.", "approx.", "ave.", "blvd.",
    "rd.", "sq.", "mt.", "fig.", "ca.", "cf.", "incl.", "ul.", "bul.", "pl.",
})
INITIAL = re.compile(r"^[A-ZА-Я]\.$")  # "J. Smith", "Г. Иванов"


def _ends_in_abbreviation(piece: str) -> bool:
    words = piece.split()
    if not words:
        return False
    last = words[-1].lstrip("\"'(«„")
    if last.lower() == "г." and len(words) > 1 and words[-2].isdigit():
        return False  # "... до 2027 г." usually closes a sentence
    return last.lower() in ABBREVIATIONS or bool(INITIAL.match(last))


def _sentence_pieces(block: str) -> list[str]:
    """A block -> its sentences: SENT_END, except after an abbreviation or an initial."""
    out: list[str] = []
    for piece in SENT_END.split(block):
        if out and _ends_in_abbreviation(out[-1]):
            out[-1] += " " + piece
        else:
            out.append(piece)
    return out

CLAUSE_MIN_WORDS = 4  # a shorter piece ("trams", "с двуфакторен вход") is joined to its neighbour
# a sentence's first piece of this many words or more (and under CLAUSE_MIN_WORDS) is also a clause of its own: a
# head noun phrase that names what is built ("Облачна платформа, в която ...", "Роботизирана ръка с камера ...")
CLAUSE_HEAD_MIN_WORDS = 2
# where a sentence about two topics usually turns from one to the other (English and Bulgarian)
CLAUSE_WORDS = ("and", "with", "while", "so that", "but", "which", "where", "whose", "who", "over", "through",
                "using", "и", "с", "със", "а", "като", "които", "която", "който", "което", "така че", "но", "чрез",
                "където")
CLAUSE_BREAK = re.compile(r"(\s*[;:,]\s+|\s+(?:" + "|".join(re.escape(w) for w in sorted(CLAUSE_WORDS, key=len,
                                                                                          reverse=True)) + r")\s+)",
                          re.IGNORECASE)


def split_sentences(text: str) -> list[str]:
    """Proposal text -> sentences: lines first (headings, list items), then sentence ends.

    A paragraph wrapped over several lines is joined back; headings and list items stay separate.
    Markdown headings and pieces under ``MIN_WORDS`` words (titles, page numbers) are dropped;
    duplicates are kept once."""
    blocks: list[str] = []
    joinable = False
    for raw in (text or "").splitlines():
        if not raw.strip():
            joinable = False
            continue
        if raw.lstrip().startswith("#"):  # a Markdown heading is a title, not a sentence
            joinable = False
            continue
        marker = BULLET.match(raw)
        is_item = bool(marker and marker.group(0).strip())
        line = BULLET.sub("", raw).strip() if is_item else raw.strip()
        if joinable and not is_item and not blocks[-1].endswith((".", "!", "?", ":", ";")):
            blocks[-1] += " " + line
        else:
            blocks.append(line)
        joinable = True
    out: list[str] = []
    for block in blocks:
        for s in _sentence_pieces(block):
            s = " ".join(s.split()).strip(" ;")
            if len(s.split()) >= MIN_WORDS:
                out.append(s[:MAX_SENTENCE_CHARS])
    return list(dict.fromkeys(out))[:MAX_SENTENCES]


def split_clauses(sentence: str, min_words: int = CLAUSE_MIN_WORDS) -> list[str]:
    """A sentence -> its clauses of at least ``min_words`` words, split at ``;:,`` and linking words.

    A piece shorter than ``min_words`` is joined to the next one (the last to the one before), separator
    included, so a list of nouns stays together. A sentence that gives fewer than two clauses yields [],
    except for its head: a first piece of ``CLAUSE_HEAD_MIN_WORDS`` words or more but under ``min_words``, followed
    by a break, is also given as a clause of its own (seventh round, docs/ALIGNMENT.md), first."""
    parts = CLAUSE_BREAK.split(sentence)
    pieces, seps = parts[0::2], parts[1::2]
    head = pieces[0].strip(" ,;:")
    head = [head] if len(pieces) > 1 and CLAUSE_HEAD_MIN_WORDS <= len(head.split()) < min_words else []
    out: list[str] = []
    for i, piece in enumerate(pieces):
        short_last = i == len(pieces) - 1 and len(piece.split()) < min_words
        if out and (len(out[-1].split()) < min_words or short_last):
            out[-1] += seps[i - 1] + piece
        else:
            out.append(piece)
    if len(out) > 1 and len(out[-1].split()) < min_words:
        last = out.pop()
        out[-1] += " " + last
    out = [" ".join(c.split()).strip(" ,;:") for c in out]
    return head + ([c for c in out if len(c.split()) >= min_words] if len(out) > 1 else [])
