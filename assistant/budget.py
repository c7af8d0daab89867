"""A budget on what the model reads: at most a fixed number of passage tokens per prompt, whatever the corpus.

Reading the prompt is most of the wait for the first word on a CPU, and ``retrieve.merge_neighbours`` joins
touching chunks, so a long document gives long passages. ``fit`` leaves a passage set under the budget exactly as it
is; over it, the budget is shared out (earlier, better-ranked passages get more; a passage that needs less than its
share gives the rest to the others), and a passage longer than its share is cut to the contiguous window of its
sentences that best matches the question. The passage's label (title, section or page) is printed outside its text
(``prompts.passages_block``), so a cut passage keeps it; the window is a verbatim slice, so quotes stay checkable.

Pure functions; tokens are estimated from characters (``estimate_tokens``) so the budget holds for every model
backend, a server included. The value and the measurements behind it: docs/PERFORMANCE-HISTORY.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from .types import Passage

TokenCounter = Callable[[str], int]

# Weights fitted (least squares, non-negative) against the bundled model's own tokenizer on our corpus's chunks and
# checked on SEC-10-Q filing text: Qwen reads every digit as a token, most words as one, punctuation mostly alone.
# SAFETY scales the fit up so that an estimate rarely falls short of the real count.
_DIGIT, _CYRILLIC, _PUNCT = re.compile(r"\d"), re.compile(r"[\u0400-\u04FF]"), re.compile(r"[^\w\s]")
_W_DIGIT, _W_CYRILLIC, _W_PUNCT, _W_SPACE, _W_LETTER = 1.17, 0.24, 0.95, 0.92, 0.033
SAFETY = 1.05
# "[3] " before a passage's label and the blank line after its text (``prompts.passages_block``)
_FRAME_TOKENS = 6
# a unit longer than this is split into word groups, so one long table line cannot take a whole share
MAX_UNIT_TOKENS = 60

# every ". " ends a unit: a split after an abbreviation only makes the units finer, and the window stays verbatim
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+(?=\S)")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset(
    "a an the and or of to in on at for by with from as is are was were be been being what which who whom whose "
    "when where why how does do did has have had it its this that these those there their they them than then "
    "into over under about after before during per any all each much many more most can could would should will "
    "shall may might must not no yes if so such other also only own same both between up down out off again "
    "i you he she we me my our your his her".split())


def estimate_tokens(text: str) -> int:
    """The bundled model's token count for ``text``, estimated from its characters (calibrated, slightly high)."""
    digits = len(_DIGIT.findall(text))
    cyrillic = len(_CYRILLIC.findall(text))
    punct = len(_PUNCT.findall(text))
    spaces = sum(1 for ch in text if ch.isspace() and ch != "\n")
    letters = len(text) - digits - cyrillic - punct - spaces - text.count("\n")
    est = (_W_DIGIT * digits + _W_CYRILLIC * cyrillic + _W_PUNCT * punct + _W_SPACE * spaces
           + _W_LETTER * max(letters, 0))
    return math.ceil(SAFETY * est) if text else 0


@dataclass(frozen=True)
class Unit:
    """A sentence, a line (a list item, a table row) or a word group of a long line: ``text[start:end]``."""

    start: int
    end: int


def split_units(text: str, count: TokenCounter = estimate_tokens, max_tokens: int = MAX_UNIT_TOKENS) -> list[Unit]:
    """``text`` as units in order: lines, split at sentence ends, and any unit over ``max_tokens`` into word
    groups; whitespace between units is left out, so every unit is a verbatim, non-empty slice."""
    units: list[Unit] = []
    for line in re.finditer(r"[^\n]+", text):
        pos = line.start()
        for piece in _SENTENCE_END.split(line.group(0)):
            start = text.index(piece, pos) if piece else pos
            pos = start + len(piece)
            lead = len(piece) - len(piece.lstrip())
            piece = piece.strip()
            if not piece:
                continue
            start += lead
            units.extend(_word_groups(text, start, start + len(piece), count, max_tokens))
    return units


def _word_groups(text: str, start: int, end: int, count: TokenCounter, max_tokens: int) -> list[Unit]:
    if count(text[start:end]) <= max_tokens:
        return [Unit(start, end)]
    groups, g_start, g_end = [], None, None
    for m in re.finditer(r"\S+", text[start:end]):
        s, e = start + m.start(), start + m.end()
        if g_start is not None and count(text[g_start:e]) > max_tokens:
            groups.append(Unit(g_start, g_end))
            g_start = None
        if g_start is None:
            g_start = s
        g_end = e
    if g_start is not None:
        groups.append(Unit(g_start, g_end))
    return groups


def terms(text: str) -> set[str]:
    """The words of ``text`` that can match: lower-cased, stop words out, crudely stemmed (first five letters),
    numbers kept whole without their thousands separators ("8,250" and "8250" match)."""
    out = set()
    for w in _WORD.findall(re.sub(r"(?<=\d)[,.](?=\d{3}\b)", "", text.lower())):
        if w in STOPWORDS or (len(w) < 2 and not w.isdigit()):
            continue
        out.add(w if w.isdigit() else w[:5])
    return out


def score_units(question: str, texts: Sequence[str]) -> list[float]:
    """Lexical match of each unit with the question: the summed rarity (inverse unit frequency within ``texts``)
    of the question's terms the unit contains, so a word every line shares counts little."""
    wanted = terms(question)
    unit_terms = [terms(t) & wanted for t in texts]
    n = len(texts)
    df = {w: sum(1 for u in unit_terms if w in u) for w in wanted}
    idf = {w: math.log(1 + n / df[w]) for w in wanted if df[w]}
    return [sum(idf[w] for w in u) for u in unit_terms]


def best_window(sizes: Sequence[int], scores: Sequence[float], limit: int) -> tuple[int, int]:
    """The contiguous units ``[i, j)`` whose sizes sum to at most ``limit`` with the highest summed score; among
    equal ones, the window that has its matching units nearest its middle (context on both sides), then the earlier.
    At least one unit, even one over the limit (``split_units`` keeps units small)."""
    windows: list[tuple[int, int, float]] = []
    j, total, acc = 0, 0, 0.0
    for i in range(len(sizes)):
        if j < i:
            j, total, acc = i, 0, 0.0
        while j < len(sizes) and total + sizes[j] <= limit:
            total += sizes[j]
            acc += scores[j]
            j += 1
        windows.append((i, max(j, i + 1), acc if j > i else scores[i]))
        if j > i:
            total -= sizes[i]
            acc -= scores[i]
    top = max(w[2] for w in windows)

    def off_centre(w: tuple[int, int, float]) -> float:
        i, j, score = w
        if score <= 0:
            return 0.0
        centre = sum(k * scores[k] for k in range(i, j)) / score
        return abs(centre - (i + j - 1) / 2)

    best = min((w for w in windows if w[2] >= top - 1e-9), key=lambda w: (round(off_centre(w), 6), w[0]))
    return best[0], best[1]


def cut(text: str, question: str, limit: int, count: TokenCounter = estimate_tokens) -> str:
    """``text`` itself when it fits ``limit`` tokens; else the verbatim slice around the units that best match the
    question, grown to the limit ("" for a limit under two tokens)."""
    if count(text) <= limit:
        return text
    if limit < 2:
        return ""
    units = split_units(text, count, min(MAX_UNIT_TOKENS, limit - 1))  # so that any one unit fits
    if not units:
        return text[:0]
    texts = [text[u.start:u.end] for u in units]
    sizes = [count(t) + 1 for t in texts]  # + the joining space or newline
    i, j = best_window(sizes, score_units(question, texts), limit)
    return text[units[i].start:units[j - 1].end]


def rank_weights(n: int) -> list[float]:
    """Shares by rank: 1, 1/sqrt(2), 1/sqrt(3), ... (the best-ranked passage most often holds the answer)."""
    return [1 / math.sqrt(r) for r in range(1, n + 1)]


def allocate(sizes: Sequence[int], total: int, weights: Sequence[float]) -> list[int]:
    """Each item's share of ``total``: in proportion to ``weights``, except that an item needing less than its share
    gets what it needs and the rest goes to the others. Everything fits: ``sizes`` themselves."""
    if sum(sizes) <= total:
        return list(sizes)
    shares = [0] * len(sizes)
    open_, left = set(range(len(sizes))), total
    while open_:
        wsum = sum(weights[i] for i in open_)
        fits = [i for i in open_ if sizes[i] <= left * weights[i] / wsum]
        if not fits:
            for i in open_:
                shares[i] = int(left * weights[i] / wsum)
            break
        for i in fits:
            shares[i] = sizes[i]
            left -= sizes[i]
            open_.remove(i)
    return shares


def frame_tokens(p: Passage, count: TokenCounter = estimate_tokens) -> int:
    """What a passage costs besides its text: its number and label line (``prompts.passages_block``)."""
    return count(p.label()) + _FRAME_TOKENS


def passage_tokens(passages: Sequence[Passage], count: TokenCounter = estimate_tokens) -> int:
    """Estimated tokens of the passages as the prompt shows them, labels included."""
    return sum(frame_tokens(p, count) + count(p.text) for p in passages)


def fit(passages: list[Passage], question: str, budget: int, count: TokenCounter = estimate_tokens) -> list[Passage]:
    """The passages within ``budget`` tokens (labels included): the same list when they fit (or ``budget`` is 0:
    no limit); else each passage over its share (``allocate``) replaced by a copy cut around the question (``cut``).
    """
    if budget <= 0 or passage_tokens(passages, count) <= budget:
        return passages
    frames = [frame_tokens(p, count) for p in passages]
    sizes = [count(p.text) for p in passages]
    shares = allocate(sizes, max(budget - sum(frames), 0), rank_weights(len(passages)))
    return [p if share >= size else replace(p, text=cut(p.text, question, share, count))
            for p, size, share in zip(passages, sizes, shares)]
