"""Sentence x priority scores: embedding similarity as z-scores against off-topic text (docs/ALIGNMENT.md)."""

from __future__ import annotations

import re
import threading

import numpy as np

from .priorities import Priorities, load_priorities
from .sentences import split_clauses, split_sentences

# ninth round (docs/ALIGNMENT.md): per language, the threshold on a 0.05 grid with the highest dev strong recall
# whose dev false strong rate stays within 1.5% (half the 3% aim, a margin for fresh text), the higher one on a tie
STRONG_Z = 2.90  # a sentence is plainly about the priority
PARTIAL_Z = 2.55  # a sentence touches it: read the sentence
# Bulgarian sentences score lower z than English ones of the same topic: raising them by this much is the same as
# Bulgarian thresholds of STRONG_Z - 0.35 (2.55) and PARTIAL_Z - 0.35 (2.20), chosen on dev for Bulgarian
BG_OFFSET = 0.35
FOCUS_DELTA = 0.5  # see score_sentences
GENERIC_WEIGHT = 1.0
GENERIC_FREE = 1.75
# a clause of a sentence (docs/ALIGNMENT.md, fifth round) counts only for a priority within CLAUSE_WIN of the
# clause's best specific one, and at most CLAUSE_CAP below its sentence's own uncorrected score
CLAUSE_WIN = 0.15
CLAUSE_CAP = 0.2
# the clauses of a Bulgarian sentence (sixth round): a short Bulgarian piece lies close to some English phrase by
# chance, so it is compared with the Bulgarian phrases only; it counts only for one of its sentence's
# CLAUSE_TOP_BG best specific priorities; and, as its sentence scores further below it than an English sentence
# does, it is held at most CLAUSE_CAP_BG below its sentence's score (negative: up to 1.0 above it)
CLAUSE_TOP_BG = 2
CLAUSE_CAP_BG = -1.0
# tenth round: the EXAMPLE_K examples (examples file) nearest a proposal vote; a priority gains EXAMPLE_WEIGHT
# times (its votes - the votes against it) / EXAMPLE_K when that is positive (chosen by leave-one-round-out on dev)
EXAMPLE_K = 9
EXAMPLE_WEIGHT = 1.0

# Off-topic and boilerplate sentences: the null distribution each aspect's similarity is measured against.
BACKGROUND: tuple[str, ...] = (
    "The meeting is scheduled for Tuesday afternoon.",
    "Please sign and return the attached form.",
    "The weather was sunny with a light breeze.",
    "He scored twice in the second half of the match.",
    "Add two eggs and a cup of sugar to the bowl.",
    "The contract is governed by the laws of the country.",
    "She planted tomatoes and peppers in the garden.",
    "Our team consists of five people.",
    "The total budget of the project is 200,000 euro.",
    "This document describes the proposal.",
    "The project will last 24 months.",
    "We thank our partners for their support.",
    "Introduction and objectives of the project.",
    "The novel tells the story of a family in a small village.",
    "Prices rose by three percent last year.",
    "The cat slept on the sofa all day.",
    "The company was founded in 1998 and has 40 employees.",
    "Applicants must submit the documents before the deadline.",
    "The hotel offers breakfast from seven to ten.",
    "The river flooded the fields after heavy rain.",
    "Our shop sells shoes, bags and accessories.",
    "The choir rehearses every Thursday evening.",
    "Mix the flour with water and knead the dough.",
    "The board approved the annual financial statements.",
    "Срещата е насрочена за вторник следобед.",
    "Времето беше слънчево и топло.",
    "Бюджетът на проекта е 200 000 евро.",
    "Проектът ще продължи 24 месеца.",
    "Фирмата е основана през 1998 г. и има 40 служители.",
    "Добавете две яйца и чаша захар.",
    "Отборът спечели мача с два гола.",
    "Благодарим на партньорите за подкрепата.",
    # the rest of the English sentences in Bulgarian, so that both languages weigh alike in the background
    "Моля, подпишете и върнете приложения формуляр.",
    "Той вкара два гола през второто полувреме.",
    "Договорът се урежда от законите на страната.",
    "Тя засади домати и чушки в градината.",
    "Екипът ни се състои от петима души.",
    "Този документ описва предложението.",
    "Въведение и цели на проекта.",
    "Романът разказва историята на едно семейство в малко село.",
    "Цените се повишиха с три процента миналата година.",
    "Котката спа на дивана цял ден.",
    "Кандидатите трябва да подадат документите преди крайния срок.",
    "Хотелът предлага закуска от седем до десет часа.",
    "Реката наводни нивите след проливния дъжд.",
    "Магазинът ни продава обувки, чанти и аксесоари.",
    "Хорът репетира всеки четвъртък вечер.",
    "Смесете брашното с вода и омесете тестото.",
    "Съветът на директорите одобри годишните финансови отчети.",
)


class _Model:
    """Aspect vectors and their background statistics for one embedder and one set of priorities (computed once)."""

    def __init__(self, embedder, priorities: Priorities):
        self.aspects: list[tuple[int, str]] = [(i, a) for i, p in enumerate(priorities) for a in p.aspects]
        self.vectors = _unit(np.stack([np.asarray(embedder.embed_query(a), dtype=np.float32)
                                       for _, a in self.aspects]))
        bg = _unit(np.asarray(embedder.embed_passages(list(BACKGROUND)), dtype=np.float32))
        sims = self.vectors @ bg.T
        self.mu = sims.mean(axis=1)
        self.sd = np.maximum(sims.std(axis=1), 1e-3)
        self.owner = np.array([i for i, _ in self.aspects])
        self.bulgarian = np.array([a in priorities.items[i].aspects_bg for i, a in self.aspects])
        self.examples = priorities.examples
        ids = [p.id for p in priorities]
        self.example_vectors = _unit(np.asarray(embedder.embed_passages(
            [proposal_text(split_sentences(e.text)) for e in self.examples]), dtype=np.float32)) \
            if self.examples else np.zeros((0, 1), dtype=np.float32)
        self.example_for = np.array([[pid in e.strong for pid in ids] for e in self.examples], dtype=float)
        self.example_against = np.array([[pid in e.none for pid in ids] for e in self.examples], dtype=float)


_MODELS: dict[tuple[str, Priorities], _Model] = {}
_MODELS_LOCK = threading.Lock()
_MAX_MODELS = 8  # an edited priorities file is a new entry; old ones are dropped first


def _model(embedder, priorities: Priorities) -> _Model:
    key = (f"{getattr(embedder, 'name', type(embedder).__name__)}:{id(embedder)}", priorities)
    with _MODELS_LOCK:
        if key not in _MODELS:
            while len(_MODELS) >= _MAX_MODELS:
                del _MODELS[next(iter(_MODELS))]
            _MODELS[key] = _Model(embedder, priorities)
        return _MODELS[key]


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.atleast_2d(m)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def is_bulgarian(sentence: str) -> bool:
    """More Cyrillic than Latin letters (a Bulgarian sentence may name an English product)."""
    return len(re.findall("[\u0400-\u04ff]", sentence)) > len(re.findall("[A-Za-z]", sentence))


def proposal_text(sentences: list[str]) -> str:
    """What is compared with the examples: the proposal's sentences (no headings), one passage."""
    return " ".join(sentences)


def example_votes(sentences: list[str], embedder,
                  priorities: Priorities | None = None) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """Per priority: the gain from the proposal's ``EXAMPLE_K`` nearest examples, ``EXAMPLE_WEIGHT`` times
    max(0, (examples strong on it - examples that must stay none on it) / EXAMPLE_K), and the ids of those
    nearest examples that are strong on it (the evidence). Zero everywhere when there are no examples."""
    priorities = priorities or load_priorities()
    m = _model(embedder, priorities)
    n = len(priorities)
    if not m.examples or not sentences:
        return np.zeros(n), [()] * n
    v = _unit(np.asarray(embedder.embed_passages([proposal_text(sentences)]), dtype=np.float32))[0]
    k = min(EXAMPLE_K, len(m.examples))
    near = np.argsort(-(m.example_vectors @ v), kind="stable")[:k]
    vote = (m.example_for[near].sum(axis=0) - m.example_against[near].sum(axis=0)) / EXAMPLE_K
    why = [tuple(m.examples[j].id for j in near if m.example_for[j, i]) for i in range(n)]
    return EXAMPLE_WEIGHT * np.maximum(0.0, vote), why


def level(score: float, strong: float = STRONG_Z, partial: float = PARTIAL_Z) -> str:
    return "strong" if score >= strong else "partial" if score >= partial else "none"


def score_sentences(sentences: list[str], embedder,
                    priorities: Priorities | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per priority: best score over the sentences and the index of the sentence that reached it.

    Two corrections turn "near" into "about" (docs/ALIGNMENT.md):
    - focus: a priority trailing the sentence's best specific priority by more than ``FOCUS_DELTA``
      loses the excess, so a sentence about traffic lights counts for mobility, not for its neighbours;
    - genericness: a sentence whose mean z over the specific priorities other than its best one exceeds
      ``GENERIC_FREE`` (generic technology talk that is a bit like everything) loses ``GENERIC_WEIGHT`` times
      the excess; the best one is left out so that a sentence plainly about one topic is not called generic.
    A Bulgarian sentence's scores are then raised by ``BG_OFFSET`` (a per-language threshold).
    Umbrella areas (those with sub-priorities) take no part in the focus competition.
    The clauses of each sentence (``split_clauses``) are scored the same way, so that the second topic of a
    sentence about two wins its own focus contest; a clause counts only for the priorities it is mainly about
    (within ``CLAUSE_WIN`` of its best) and never above its sentence's uncorrected score less ``CLAUSE_CAP``;
    the index returned is then that of the clause's sentence. A Bulgarian sentence's clauses are compared with
    the Bulgarian phrases only, count only for one of the sentence's ``CLAUSE_TOP_BG`` best specific priorities
    and are held ``CLAUSE_CAP_BG`` (not ``CLAUSE_CAP``) below the sentence's score."""
    priorities = priorities or load_priorities()
    m = _model(embedder, priorities)
    n, ns = len(priorities), len(sentences)
    if not sentences:
        return np.full(n, -np.inf), np.full(n, -1)
    units, parent = list(sentences), list(range(ns))
    for j, sentence in enumerate(sentences):
        for clause in split_clauses(sentence):
            if clause not in units:
                units.append(clause)
                parent.append(j)
    sv = _unit(np.asarray(embedder.embed_passages(units), dtype=np.float32))
    z = ((m.vectors @ sv.T) - m.mu[:, None]) / m.sd[:, None]  # aspects x units
    bulgarian = np.array([is_bulgarian(t) for t in units])  # units[:ns] are the sentences themselves
    bg_sentence = bulgarian[:ns]
    bg_clause = np.concatenate([np.zeros(ns, dtype=bool), bg_sentence[parent[ns:]]])
    z[np.ix_(~m.bulgarian, bg_clause)] = -np.inf  # a Bulgarian sentence's clauses: Bulgarian phrases only
    per = np.full((n, len(units)), -np.inf)  # priorities x units
    for row, owner in enumerate(m.owner):
        per[owner] = np.maximum(per[owner], z[row])
    umbrellas = priorities.umbrellas
    specific = [i for i, p in enumerate(priorities) if p.id not in umbrellas]
    top = per[specific].max(axis=0)
    rest = (per[specific].sum(axis=0) - top) / max(1, len(specific) - 1)
    generic = GENERIC_WEIGHT * np.maximum(0.0, rest - GENERIC_FREE)
    eff = per - np.maximum(0.0, top[None, :] - per - FOCUS_DELTA) - generic[None, :]
    for i, p in enumerate(priorities):
        if p.id in umbrellas:
            eff[i] = per[i] - generic
    eff = eff + BG_OFFSET * bulgarian[None, :]
    if len(units) > ns:
        par = np.array(parent[ns:])
        cap = per[:, :ns] + BG_OFFSET * bulgarian[None, :ns] - np.where(bg_sentence, CLAUSE_CAP_BG, CLAUSE_CAP)
        own = per[:, ns:] >= top[None, ns:] - CLAUSE_WIN
        place = np.zeros((n, ns), dtype=int)  # each specific priority's place in its sentence, 0 = best
        place[specific] = (-per[specific, :ns]).argsort(axis=0, kind="stable").argsort(axis=0)
        own &= (place < CLAUSE_TOP_BG)[:, par] | ~bg_sentence[par][None, :]
        eff[:, ns:] = np.where(own, np.minimum(eff[:, ns:], cap[:, par]), -np.inf)
    arg = eff.argmax(axis=1)
    return eff[np.arange(n), arg], np.array(parent)[arg]
