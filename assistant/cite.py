"""Citations assigned after generation, with exact quotes, and the check that drops unsupported sentences.

The model's own ``[n]`` markers are a hint, not trusted: each answer sentence is matched to the
passage sentences by meaning (multilingual embeddings, so a Bulgarian answer finds its English
passage) and by shared numbers. A sentence whose numbers do not all appear in its cited passage,
or that no passage supports, is removed; so is a sentence that only points at a passage ("This is stated
in passage [2].") or restates the question (as a question, or in its words with nothing added), and a
sentence that leans on a removed one ("This fee is paid by ...") goes with it, and so does a sentence written a
second time. A small figure must stand in the passage beside a word it stands beside in the answer ("1 project"
over "Priority Axis 1" is a figure about something else), and an answer to "how many ...?" or "which year ...?"
that gives no figure of its own answers nothing. Citations the model writes in words ("(Passage 1)") count as
markers. All functions here except ``assign_citations`` are pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Callable, Sequence

import numpy as np

from .types import Citation, Passage, is_glossary

_MARK = re.compile(r"\s*\[(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\]")
# the model also cites in words: "(Passage 1)", "in passage [2]", "passages 1 and 3", "пасаж 2"
_WORD_MARK = re.compile(r"\s*\(?\b(?:passages?|пасажи?|пасажа|откъс[а-я]*)\s*\[?(\d{1,2}(?!\d)(?:\]?\s*(?:,|;|and|и)\s*\[?\d{1,2}(?!\d))*)\]?\)?",
                        re.IGNORECASE)
# words that say where an answer is without saying anything ("This is stated in passage [2].")
_META_WORDS = frozenset("""this that these it its is are was were be been stated mentioned described given shown found
    written listed noted explained in on of the a an to as per see above below here there also both same figure
    information answer fact facts passage passages text document documents source sources according which from
    provided taken comes
    they them those and
    това тази този е са се посочено посочена споменато споменава описано описана дадено в във на от пасаж пасажа
    пасажи откъс откъса текста документа документите източника информацията според и те двата двете""".split())
# "This requirement is stated in the passage.": a pointer whatever noun it points with
# (the object may be the stripped marker itself: "This model is described in [1]." leaves "... described in.")
_POINTER = re.compile(r"^(?:this|that|these|the|it|its|they|both)\b(?:\s+[^\W\d_]+){0,3}\s+(?:is|are|was|were)\s+"
                      r"(?:stated|mentioned|described|given|shown|found|written|listed|noted|set out)\s+"
                      r"(?:in|by|from)(?:\s+(?:the\s+)?(?:passages?|documents?|text|sources?))?\W*$", re.IGNORECASE)
# a sentence that opens with one of these leans on the sentence before it ("This fee is paid by ...")
_ANAPHORA = frozenset("this that these those it its they their such това тази този тези той тя те".split())
_SENT_END = re.compile(r"(?<=[.!?…])[\"'»”)]*\s+(?=[\"'«“(]*[A-ZА-Я0-9])")
# a number stands on its own: the digits of a name ("RIS3", "S3", "BG16RFOP002") are part of the name; a comma or
# point joins digits only when digits follow it at once, a space only before a group of three ("40 400"), so
# "September 30, 2022" and "1, 2 and 3" are separate numbers, not "30,2022" and "1,2"
_NUM = re.compile(r"(?<!\w)\d(?:[.,](?=\d)|\s(?=\d{3}(?!\d))|\d)*")
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_WORD_OR_NUM = re.compile(r"[^\W_]+", re.UNICODE)
_CAP = re.compile(r"\b[A-Z][A-Za-z&\-]{2,}\b")

SUPPORT_MIN = 0.80  # e5 cosine between an answer sentence and its best passage sentence (chosen on the dev split)
# how a finished sentence ends (a citation marker counts: "... in 2015 [2]")
_CLOSED = re.compile(r"[.!?…:;)\]\"'»”]\s*$")
# a marker the model had begun when it was stopped ("... in 2015 [2"): the sentence itself was done
_DANGLING = re.compile(r"\s*\[\d{0,2}\s*$")
NEAR_BEST = 0.05  # a passage this close to the best one's support may be cited instead (a marker, a sentence before)
GLOSSARY_MARGIN = 0.05  # a document passage this close to a glossary passage's support is cited instead


# a full stop that ends an initial or an abbreviation, not a sentence: "D. Foray", "Prof. Ivanov", "et al. The"
_NOT_AN_END = re.compile(r"(?:^|[\s(])(?:[A-ZА-Я]|Prof|Dr|Mr|Mrs|Ms|St|Art|al|e\.g|i\.e|vs|cf|проф|д-р|напр|т\.е|чл|ал)\.$")


def split_sentences(text: str) -> list[str]:
    """Sentences of a short answer (or of a passage); list items count as sentences."""
    out: list[str] = []
    for line in re.split(r"\n+", text.strip()):
        line = line.strip().lstrip("-*• ").strip()
        if not line:
            continue
        pieces: list[str] = []
        for piece in (s.strip() for s in _SENT_END.split(line)):
            if not piece:
                continue
            if pieces and _NOT_AN_END.search(pieces[-1]):
                pieces[-1] += " " + piece
            else:
                pieces.append(piece)
        out.extend(pieces)
    return out


def markers(sentence: str) -> list[int]:
    """Passage numbers the sentence claims, as ``[1]``, ``[1, 3]`` or in words ("(Passage 2)")."""
    found = [int(n) for pattern in (_MARK, _WORD_MARK) for m in pattern.finditer(sentence)
             for n in re.findall(r"\d{1,2}", m.group(1))]
    return list(dict.fromkeys(found))


def strip_markers(sentence: str) -> str:
    """The sentence without its citation markers; "(Passage 1)" goes too, so "Passage" is not taken for a name,
    and so does a marker the model began but never closed ("... Association [3")."""
    out = _DANGLING.sub("", _WORD_MARK.sub("", _MARK.sub("", sentence)))
    return re.sub(r"\s+([.,;:!?])", r"\1", out).strip()


def says_nothing(sentence: str) -> bool:
    """A sentence that only points at the passages ("This is stated in passage [2].") carries no answer."""
    body = strip_markers(sentence)
    if re.search(r"\d", body):
        return False
    return all(w.lower() in _META_WORDS for w in _WORD.findall(body)) or bool(_POINTER.match(body))


def leans_back(sentence: str) -> bool:
    """Does the sentence open with a word that refers to the sentence before it ("This fee ...", "It ...")?"""
    words = _WORD.findall(strip_markers(sentence)[:40])
    return bool(words) and words[0].lower() in _ANAPHORA


def is_question(sentence: str) -> bool:
    """The question restated, not an answer to it."""
    return strip_markers(sentence).rstrip("\"'»” ").endswith("?")


# words that carry no answer when an answer sentence repeats the question with them ("The majority of the board is
# needed ..." for "What majority of the board is needed ...?"). Yes, no and not are not among them: they answer.
_FILLER = frozenset("""the a an of to in on for is are was were be been by and or with as at from that this it its which
    what who whom whose how when where why does do did can could should would will shall may must has have had any
    there their they than then so such into about per
    на в във за от и или с със се е са бил била било ли как какво какви кой коя кое кои колко кога къде защо
    това този тази тези то той тя те към по при до""".split())


def restates(sentence: str, question: str) -> bool:
    """Does the sentence only repeat the question's own words (no new word, number or "yes")?

    One new word ("Berlin", "43", "Yes") is usually the answer; none is a restated question or a pointer
    ("drafted in [2].") (docs/PERFORMANCE-HISTORY.md).
    """
    asked = {w.lower() for w in _WORD_OR_NUM.findall(question)}
    said = [w.lower() for w in _WORD_OR_NUM.findall(strip_markers(sentence))]
    return bool(said) and all(w in asked or w in _FILLER for w in said)


# a figure this small recurs in a passage about other things ("Priority Axis 1", "at least 7 members"), so its
# neighbours must agree; a longer one (a registration number, a budget, a year) is specific enough on its own
SMALL_FIGURE = 1000
FIGURE_WINDOW = 4  # words on each side of a figure that say what it counts (chosen on the dev split)
_TOKEN = re.compile(r"\d[\d\s.,]*\d|\d|[^\W\d_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04FF]")


def _neighbours(text: str, number: str, window: int = FIGURE_WINDOW) -> list[set[str]]:
    """For each place ``number`` stands in ``text``: the first four letters of the content words around it."""
    tokens = _TOKEN.findall(text)
    out = []
    for i, tok in enumerate(tokens):
        if tok[0].isdigit() and normalise_number(tok) == number:
            around = tokens[max(0, i - window): i] + tokens[i + 1: i + 1 + window]
            out.append({w.lower()[:4] for w in around if not w[0].isdigit() and w.lower() not in _FILLER})
    return out


def figures_about_something_else(sentence: str, sources: Sequence[str], question: str = "") -> set[str]:
    """Small figures of the sentence that the sources hold only beside other words ("There was 1 project" over
    "Priority Axis 1"). A figure the question gives, one the sources spell out, and one whose neighbours are in
    another script than the sources' (a Bulgarian answer over an English passage) are not judged."""
    body = strip_markers(sentence)
    text = " ".join(sources)
    out = set()
    for n in numbers(body) - numbers(question):
        if not (n.isdigit() and int(n) < SMALL_FIGURE):
            continue
        mine = set().union(*_neighbours(body, n))
        theirs = _neighbours(text, n)
        scripts = {bool(_CYRILLIC.search(w)) for w in mine}
        if not theirs or not any(bool(_CYRILLIC.search(w)) in scripts for t in theirs for w in t):
            continue
        if not any(mine & t for t in theirs):
            out.add(n)
    return out


# questions whose answer is a figure: an answer without one answers something else. Not "how much" (it may be "free")
# or "when" (it may be "after registration")
_ASKS_FIGURE = re.compile(r"\b(?:how many|(?:what|which) year|what (?:percentage|share)|колко|(?:коя|която) година|"
                          r"какъв процент)\b", re.IGNORECASE)
# an answer of "none", "no ..." or "free" gives its figure in words
_NONE_WORDS = re.compile(r"(?<!\w)(?:no|none|zero|free|нито|няма|нула|безплатн\w*)(?!\w)", re.IGNORECASE)


def gives_figure(sentences: Sequence[str], question: str) -> bool:
    """Does an answer to a question that asks for a figure give one the question does not (digits, a number word,
    or "none")? Answers to other questions always do."""
    if not _ASKS_FIGURE.search(question):
        return True
    asked = numbers(question)
    for s in sentences:
        body = strip_markers(s)
        if numbers(body) - asked or _NONE_WORDS.search(body):
            return True
        if any(n not in asked and _spelled_out(n, [body]) for n in NUMBER_WORDS):
            return True
    return False


def normalise_number(raw: str) -> str:
    """40,400 / 40 400 / 40400 -> 40400; 2.5 stays 2.5; a trailing full stop is dropped."""
    s = raw.strip().rstrip(".,")
    s = re.sub(r"(?<=\d)[\s,](?=\d{3}\b)", "", s)
    s = re.sub(r"(?<=\d)\.(?=\d{3}\b)", "", s) if re.fullmatch(r"\d{1,3}(\.\d{3})+", s) else s
    return s.replace(" ", "")


def numbers(text: str) -> set[str]:
    return {normalise_number(m.group(0)) for m in _NUM.finditer(_MARK.sub(" ", text))} - {""}


# small numbers a passage may spell out ("five priority areas") while the answer writes digits ("5 areas")
NUMBER_WORDS = {
    "1": ("one", "един", "една", "едно"), "2": ("two", "два", "две"), "3": ("three", "три"),
    "4": ("four", "четири"), "5": ("five", "пет"), "6": ("six", "шест"), "7": ("seven", "седем"),
    "8": ("eight", "осем"), "9": ("nine", "девет"), "10": ("ten", "десет"), "11": ("eleven", "единадесет"),
    "12": ("twelve", "дванадесет"), "15": ("fifteen", "петнадесет"), "20": ("twenty", "двадесет"),
}


def _spelled_out(n: str, sources: Sequence[str]) -> bool:
    words = NUMBER_WORDS.get(n, ())
    return any(re.search(rf"(?<!\w){w}(?!\w)", s, re.IGNORECASE) for w in words for s in sources)


def ungrounded_numbers(sentence: str, sources: Sequence[str]) -> set[str]:
    have = set().union(*(numbers(s) for s in sources)) if sources else set()
    joined = " ".join(normalise_number(s) for s in sources)
    return {n for n in numbers(sentence) if n not in have and n not in joined and not _spelled_out(n, sources)}


def ungrounded_names(sentence: str, sources: Sequence[str]) -> set[str]:
    """Capitalised Latin-script words (names, acronyms) that no source mentions; the first word is exempt."""
    body = strip_markers(sentence)
    words = _CAP.findall(body)
    if words and body.startswith(words[0]):
        words = words[1:]
    hay = " ".join(sources).lower()
    return {w for w in words if w.lower() not in hay}


class Problem(Enum):
    """Why the check removed an answer sentence; the value is the message people read (``SentenceCheck.problem``)."""

    REPEATED = "it repeats an earlier sentence"
    CUT_OFF = "it was cut off at the length limit"
    SAYS_NOTHING = "it only points at a passage, it says nothing"
    QUESTION = "it is a question, not an answer"
    RESTATES_QUESTION = "it only repeats the question"
    NUMBERS_NOT_IN_PASSAGE = "numbers not in the cited passage: {detail}"
    FIGURE_ABOUT_ELSE = "in the cited passage {detail} counts something else"
    NO_FIGURE = "the question asks for a figure and the answer gives none"
    UNSUPPORTED = "no passage supports it (best similarity {detail})"
    NAMES_NOT_IN_PASSAGE = "names not in the cited passage: {detail}"
    LEANS_ON_REMOVED = "it refers back to a removed sentence"
    LIST_MISSING = "it announces a list that does not follow"


# a sentence removed for one of these states something nobody said, so a sentence leaning on it goes too
_INVENTED = frozenset({Problem.NUMBERS_NOT_IN_PASSAGE, Problem.FIGURE_ABOUT_ELSE, Problem.NAMES_NOT_IN_PASSAGE,
                       Problem.LEANS_ON_REMOVED})


@dataclass
class SentenceCheck:
    sentence: str
    cited: list[int]  # passage numbers finally cited
    support: float
    quote: str
    kind: Problem | None = None  # why the sentence was removed (None = kept)
    detail: str = ""  # what the message names: the missing numbers or names, the best similarity

    @property
    def problem(self) -> str:
        """Why the sentence was removed, for people ("" = kept)."""
        return self.kind.value.format(detail=self.detail) if self.kind else ""

    def remove(self, kind: Problem, detail: str = "") -> None:
        self.kind, self.detail = kind, detail


def assign_citations(answer: str, passages: Sequence[Passage], question: str,
                     embed: Callable[[list[str]], np.ndarray], support_min: float = SUPPORT_MIN,
                     cut_off: bool = False) -> tuple[str, list[Citation], list[SentenceCheck]]:
    """Keep the supported sentences of ``answer`` and cite for each the passage that supports it.
    ``cut_off``: the model stopped at its token limit, so a last sentence with no closing punctuation is unfinished."""
    sentences = [s for s in split_sentences(answer) if strip_markers(s)]
    if not sentences or not passages:
        return "", [], []
    by_n = {p.n: p for p in passages}
    p_sents = [(p.n, s) for p in passages for s in split_sentences(p.text)]
    vecs = embed([strip_markers(s) for s in sentences] + [s for _, s in p_sents])
    a_vec, s_vec = vecs[: len(sentences)], vecs[len(sentences):]
    sims = a_vec @ s_vec.T  # answer sentence x passage sentence
    checks: list[SentenceCheck] = []
    claim_removed = False  # the previous sentence was removed for a number or name no passage has
    seen: set[str] = set()  # the words of the sentences already checked
    for i, sent in enumerate(sentences):
        best_for = {}
        for j, (n, _) in enumerate(p_sents):
            if sims[i, j] > best_for.get(n, (-1, -1))[0]:
                best_for[n] = (float(sims[i, j]), j)
        claimed = [n for n in markers(sent) if n in by_n]
        ranked = sorted(best_for, key=lambda n: -best_for[n][0])
        # the model's marker wins when that passage supports the sentence nearly as well as the best one
        chosen = [n for n in claimed if best_for[n][0] >= max(support_min, best_for[ranked[0]][0] - NEAR_BEST)]
        # "This was funded by ..." goes on about the sentence before it, so it keeps that sentence's source when
        # the source supports it nearly as well as the best passage
        if not chosen and checks and checks[-1].kind is None and leans_back(sent):
            before = checks[-1].cited[0]
            if best_for.get(before, (-1.0, 0))[0] >= max(support_min, best_for[ranked[0]][0] - NEAR_BEST):
                chosen = [before]
        if not chosen and ranked:
            chosen = [ranked[0]]
        # a glossary entry restates a fact to translate its terms: the document that states the fact is the source
        # (a Bulgarian answer shares Bulgarian words with the glossary, so the glossary often scores a little higher)
        if is_glossary(by_n[chosen[0]].chunk):
            floor = max(support_min, best_for[chosen[0]][0] - GLOSSARY_MARGIN)
            chosen = next(([m] for m in ranked if not is_glossary(by_n[m].chunk) and best_for[m][0] >= floor), chosen)
        n = chosen[0]
        support, j = best_for[n]
        check = SentenceCheck(sentence=strip_markers(sent), cited=chosen, support=support, quote=p_sents[j][1])
        # the numbers must be in the cited passage itself, not only in the question: "in 2022 it was 0.75%" over a
        # passage about 2017 restates the asked year over another year's figure
        missing_numbers = ungrounded_numbers(check.sentence, [by_n[c].text for c in chosen])
        # a number found in another passage: cite that passage instead of dropping the sentence
        if missing_numbers:
            for other in ranked:
                if other not in chosen and not ungrounded_numbers(check.sentence, [by_n[other].text]):
                    chosen, (support, j) = [other], best_for[other]
                    check = SentenceCheck(check.sentence, chosen, support, p_sents[j][1])
                    missing_numbers = set()
                    break
        said = " ".join(_WORD_OR_NUM.findall(check.sentence.lower()))
        if said in seen:  # a small model caught in a loop writes the same sentence again
            check.remove(Problem.REPEATED)
        elif cut_off and i == len(sentences) - 1 and not (_CLOSED.search(sent) or _DANGLING.search(sent)):
            check.remove(Problem.CUT_OFF)
        elif says_nothing(sent):
            check.remove(Problem.SAYS_NOTHING)
        elif is_question(sent):
            check.remove(Problem.QUESTION)
        elif restates(sent, question):
            check.remove(Problem.RESTATES_QUESTION)
        elif missing_numbers:
            check.remove(Problem.NUMBERS_NOT_IN_PASSAGE, ", ".join(sorted(missing_numbers)))
        elif elsewhere := figures_about_something_else(check.sentence, [by_n[c].text for c in chosen], question):
            check.remove(Problem.FIGURE_ABOUT_ELSE, ", ".join(sorted(elsewhere)))
        elif support < support_min:
            check.remove(Problem.UNSUPPORTED, f"{support:.2f}")
        else:
            names = ungrounded_names(check.sentence, [by_n[c].text for c in chosen] + [by_n[c].chunk.title for c in chosen]
                                     + [question])
            if names:
                check.remove(Problem.NAMES_NOT_IN_PASSAGE, ", ".join(sorted(names)))
        # "EUCLES charges EUR 100,000 [3]. This fee is paid by the clusters." loses its subject with the first
        # sentence; the second alone would state something nobody said
        if check.kind is None and claim_removed and leans_back(sent):
            check.remove(Problem.LEANS_ON_REMOVED)
        # only an invented number or name counts: "Yes, it qualifies." can fall below the support bar while
        # the "It ..." after it speaks of the question's subject
        claim_removed = check.kind in _INVENTED
        seen.add(said)
        checks.append(check)
    kept = [c for c in checks if c.kind is None]
    # "The components of debt were as follows:" with no kept sentence after it announces what the answer lacks
    while kept and kept[-1].sentence.rstrip().endswith(":"):
        kept.pop().remove(Problem.LIST_MISSING)
    if kept and not gives_figure([c.sentence for c in kept], question):
        for c in kept:
            c.remove(Problem.NO_FIGURE)
        kept = []
    sentences_index = {c.sentence: i for i, c in enumerate(checks)}
    citations: list[Citation] = []
    order: dict[int, int] = {}
    text_parts = []
    for c in kept:
        nums = []
        for n in c.cited:
            if n not in order:
                order[n] = len(order) + 1
                p = by_n[n]
                # the quote is the sentence of *this* passage that best supports the answer sentence
                j = max((k for k, (pn, _) in enumerate(p_sents) if pn == n),
                        key=lambda k: sims[sentences_index[c.sentence], k])
                citations.append(Citation(
                    n=order[n], doc=p.doc_id, title=p.chunk.title, page=p.chunk.pages, section=p.chunk.section,
                    quote=p_sents[j][1], source_url=(p.chunk.source_urls or ("",))[0], score=round(p.score, 4),
                    passage_n=n))
            nums.append(order[n])
        text_parts.append(f"{c.sentence.rstrip()} " + "".join(f"[{k}]" for k in nums))
    return " ".join(text_parts).strip(), citations, checks
