"""Proposal vs Sofia RIS3 priorities: text -> ``AlignmentReport`` (one row per priority).

For the cluster committee, who check that a proposal fits the strategy. No language model: every
number comes from the multilingual embedder, so the result is deterministic and fast.

How a row is scored
-------------------
Each priority is described by a few short *aspects* (English and Bulgarian phrases, e.g. "intelligent
transport and traffic management in the city"). The proposal is split into sentences. For every
aspect and sentence the cosine similarity (aspect embedded as a query, sentence as a passage) is
turned into a z-score against a fixed *background* of off-topic and boilerplate sentences
(``BACKGROUND``: recipes, weather, sports, "the project will last 24 months", ...):

    z = (cos(aspect, sentence) - mean_bg(aspect)) / std_bg(aspect)

because raw cosines of multilingual-e5 sit in a narrow band (0.75-0.90) whatever the topic, and some
aspects are "closer to everything" than others; the background removes both effects. A priority's
score is its best z over aspects and sentences, and the sentence that reached it is the evidence.

Two corrections make a sentence count for the priorities it is *about*, not those it is merely near
(``score_sentences``): a priority trailing the sentence's best one by more than ``FOCUS_DELTA`` loses
the excess, and a sentence of generic technology talk (high mean z over all priorities) is discounted.
Markdown headings and pieces under five words are not sentences: a title like "Smart Mobility Sofia"
otherwise matched "smart energy systems" and "smart spaces" on the word "smart" alone.

Thresholds (``STRONG_Z``, ``PARTIAL_Z``) and the two corrections were chosen together on eighteen
hand-written texts in English and Bulgarian, each with the priorities it must and must not match
(traffic platform x3, e-health app, SOC service, solar panels x2, VR museum, cluster events, SaaS
platform, generic software house, mixed e-health/security/startups; off-topic: three recipes, a
football club, a novel, a "Smart Bakery"): the priority a text is about scored 3.2-4.9 (3.0-3.3 for
the mixed text's multi-topic sentences); priorities a text must not match never went above 2.1.

- strong:  score >= 3.2  (a sentence is plainly about the priority)
- partial: score >= 2.5  (a sentence touches it: read the sentence)
- none:    below 2.5

"Informatics and ICT" is the umbrella of the eight ICT sub-priorities: its score is the best of its own
aspects and of its sub-priorities. The cited strategy passage for each row is retrieved from the index
with the ``doc_type`` filter "strategy", preferring ``sofia-ris3.md``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ingestion.config import Settings

from .types import Citation

STRONG_Z = 3.2
PARTIAL_Z = 2.5
FOCUS_DELTA = 0.5  # see score_sentences
GENERIC_WEIGHT = 1.0
GENERIC_FREE = 1.5
MAX_SENTENCES = 400  # a long proposal is cut here (embedding 400 sentences takes a few seconds)
MAX_SENTENCE_CHARS = 500
MIN_WORDS = 5  # shorter pieces are titles and headings ("Smart Mobility Sofia"), not evidence
STRATEGY_DOC = "sofia-ris3.md"
UMBRELLA = "ict"


@dataclass(frozen=True)
class Priority:
    id: str
    name: str
    level: str  # "vertical priority area", "ICT sub-priority" or "horizontal policy"
    aspects: tuple[str, ...]  # short phrases compared with the proposal's sentences
    query: str  # what is searched in the strategy to cite it
    parent: str | None = None


PRIORITIES: tuple[Priority, ...] = (
    Priority("ict", "Informatics and ICT", "vertical priority area", (
        "information and communication technologies (ICT)",
        "software development, digital platforms and digital services",
        "custom business software, mobile apps and web development",
        "informatics, computing and IT solutions",
        "информационни и комуникационни технологии, софтуер и дигитални услуги",
    ), "Sofia RIS3 priority area Informatics and ICT information and communication technologies"),
    Priority("mobility", "Smart urban living and mobility", "ICT sub-priority", (
        "urban mobility: getting around the city",
        "intelligent transport and traffic management in the city",
        "public transport, trip planning, shared and electric vehicles, parking",
        "интелигентен градски живот и мобилност, градски транспорт и трафик",
    ), "ICT sub-priorities smart urban living and mobility", "ict"),
    Priority("cps", "Cyber-physical systems", "ICT sub-priority", (
        "cyber-physical systems",
        "embedded systems, sensors and robots controlling physical machines",
        "industrial automation and Internet of Things devices",
        "киберфизични системи, вградени системи и роботика",
    ), "ICT sub-priorities cyber-physical systems", "ict"),
    Priority("cloud", "Future cloud technologies", "ICT sub-priority", (
        "future cloud technologies",
        "cloud computing platforms and software as a service",
        "distributed computing, big data storage and processing in data centres",
        "облачни технологии и изчисления в облака",
    ), "ICT sub-priorities future cloud technologies", "ict"),
    Priority("networking", "Future networking solutions", "ICT sub-priority", (
        "future networking solutions",
        "5G, telecommunication networks and broadband internet",
        "wireless communication and network infrastructure",
        "бъдещи мрежови решения, далекосъобщителни мрежи и 5G",
    ), "ICT sub-priorities future networking solutions", "ict"),
    Priority("health", "Health and healthy lifestyle", "ICT sub-priority", (
        "health and healthy lifestyle",
        "digital health, e-health and telemedicine for patients and doctors",
        "patients, doctors and hospitals supported by digital tools",
        "fitness, sport, nutrition and a healthy way of life",
        "здраве и здравословен начин на живот, електронно здравеопазване",
    ), "ICT sub-priorities health and healthy lifestyle", "ict"),
    Priority("security", "Data protection, security and trust", "ICT sub-priority", (
        "data protection, security and trust",
        "cybersecurity and protection against cyber attacks and intrusions",
        "privacy, personal data protection (GDPR), encryption and digital identity",
        "защита на данните, киберсигурност и доверие",
    ), "ICT sub-priorities data protection, security and trust", "ict"),
    Priority("energy", "Smart energy systems", "ICT sub-priority", (
        "intelligent power grids, electricity networks and energy management",
        "energy efficiency, renewable energy and electricity metering",
        "solar panels, batteries and renewable energy installations",
        "интелигентни енергийни системи и енергийна ефективност",
    ), "ICT sub-priorities smart energy systems", "ict"),
    Priority("spaces", "Smart spaces", "ICT sub-priority", (
        "buildings and homes with automated lighting, heating and access control",
        "sensor-equipped rooms, offices and public spaces that adapt to the people in them",
        "intelligent environments and ambient intelligence",
        "интелигентни пространства, умни сгради и домове",
    ), "ICT sub-priorities smart spaces", "ict"),
    Priority("creative", "New technologies in creative and recreational industries", "vertical priority area", (
        "new technologies in creative and recreational industries",
        "digital arts, culture, cultural heritage and museums with virtual or augmented reality",
        "film, media, music, design and video games",
        "tourism, recreation and leisure experiences using new technologies",
        "нови технологии в креативните и рекреативните индустрии, култура, изкуство и туризъм",
    ), "Sofia RIS3 priority new technologies in creative and recreational industries"),
    Priority("ecosystem", "Strengthening the innovation ecosystem", "horizontal policy", (
        "strengthening the innovation ecosystem",
        "cooperation between companies, universities and research institutes",
        "startups, incubators, accelerators, entrepreneurship and seed funding",
        "technology transfer, PhD students and university research funding",
        "clusters, networking events, digital skills and training for innovation",
        "укрепване на иновационната екосистема, сътрудничество между бизнес, университети и наука",
    ), "horizontal policy of Sofia RIS3 strengthen the innovation ecosystem"),
)

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
)


# --------------------------------------------------------------------------- result objects

@dataclass
class AlignmentRow:
    priority_id: str
    priority: str
    level: str
    alignment: str  # "strong", "partial" or "none"
    score: float  # best z-score against the background (see the module docstring)
    sentence: str  # the proposal sentence that shows it (the closest one when alignment is "none")
    citation: Citation | None  # the strategy passage that states the priority
    via: str = ""  # for the ICT umbrella: the sub-priority its score comes from

    def to_json(self) -> dict:
        d = asdict(self)
        d["score"] = round(self.score, 3)
        return d


@dataclass
class AlignmentReport:
    source: str
    overall: str  # "aligned", "partly aligned" or "not aligned"
    summary: str
    rows: list[AlignmentRow]
    sentences: int  # how many proposal sentences were compared
    thresholds: dict[str, float] = field(default_factory=lambda: {"strong": STRONG_Z, "partial": PARTIAL_Z})
    seconds: float = 0.0
    notice: str = ""

    def row(self, priority_id: str) -> AlignmentRow:
        return next(r for r in self.rows if r.priority_id == priority_id)

    def to_json(self) -> dict:
        return {"source": self.source, "overall": self.overall, "summary": self.summary,
                "sentences": self.sentences, "thresholds": self.thresholds, "seconds": round(self.seconds, 3),
                "notice": self.notice, "rows": [r.to_json() for r in self.rows]}

    def to_markdown(self) -> str:
        lines = [f"# Alignment with Sofia RIS3: {_md(self.source)}", "",
                 f"**Overall: {self.overall}.** {_md(self.summary)}", ""]
        if self.notice:
            lines += [f"> {_md(self.notice)}", ""]
        lines += ["| Priority | Level | Alignment | Score | Proposal sentence | Strategy passage |",
                  "|---|---|---|---:|---|---|"]
        for r in self.rows:
            sentence = _md(r.sentence) if r.alignment != "none" else "–"
            if r.via:
                sentence += f" (via {_md(r.via)})"
            cite = f"“{_md(r.citation.quote)}” [{r.citation.n}]" if r.citation else "–"
            lines.append(f"| {_md(r.priority)} | {r.level} | {r.alignment} | {r.score:.1f} | {sentence} | {cite} |")
        cited: dict[int, Citation] = {}
        for r in self.rows:
            if r.citation:
                cited.setdefault(r.citation.n, r.citation)
        if cited:
            lines += ["", "Strategy passages:", ""]
            for n, c in sorted(cited.items()):
                where = c.section or (f"p. {c.page}" if c.page else "")
                url = f" <{c.source_url}>" if c.source_url.startswith(("http://", "https://")) else ""
                lines.append(f"{n}. {_md(c.title)}{' > ' + _md(where) if where else ''} ({c.doc}){url}")
        lines += ["", f"_Scores are z-scores of embedding similarity against off-topic text: strong >= "
                      f"{self.thresholds['strong']:g}, partial >= {self.thresholds['partial']:g}. "
                      f"{self.sentences} proposal sentences compared; no language model was used._", ""]
        return "\n".join(lines)


def _md(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


# --------------------------------------------------------------------------- sentences

_SENT_END = re.compile(r"(?<=[.!?;])\s+(?=[\"'(«„A-ZА-Я0-9])")
_BULLET = re.compile(r"^\s*(?:[#>*\-+•]+|\d+[.)])\s*")


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
        marker = _BULLET.match(raw)
        is_item = bool(marker and marker.group(0).strip())
        line = _BULLET.sub("", raw).strip() if is_item else raw.strip()
        if joinable and not is_item and not blocks[-1].endswith((".", "!", "?", ":", ";")):
            blocks[-1] += " " + line
        else:
            blocks.append(line)
        joinable = True
    out: list[str] = []
    for block in blocks:
        for s in _SENT_END.split(block):
            s = " ".join(s.split()).strip(" ;")
            if len(s.split()) >= MIN_WORDS:
                out.append(s[:MAX_SENTENCE_CHARS])
    return list(dict.fromkeys(out))[:MAX_SENTENCES]


# --------------------------------------------------------------------------- scoring

class _Model:
    """Aspect vectors and their background statistics for one embedder (computed once)."""

    def __init__(self, embedder):
        self.aspects: list[tuple[int, str]] = [(i, a) for i, p in enumerate(PRIORITIES) for a in p.aspects]
        self.vectors = _unit(np.stack([np.asarray(embedder.embed_query(a), dtype=np.float32)
                                       for _, a in self.aspects]))
        bg = _unit(np.asarray(embedder.embed_passages(list(BACKGROUND)), dtype=np.float32))
        sims = self.vectors @ bg.T
        self.mu = sims.mean(axis=1)
        self.sd = np.maximum(sims.std(axis=1), 1e-3)
        self.owner = np.array([i for i, _ in self.aspects])


_MODELS: dict[str, _Model] = {}
_MODELS_LOCK = threading.Lock()


def _model(embedder) -> _Model:
    key = f"{getattr(embedder, 'name', type(embedder).__name__)}:{id(embedder)}"
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = _Model(embedder)
        return _MODELS[key]


def _unit(m: np.ndarray) -> np.ndarray:
    m = np.atleast_2d(m)
    return m / np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)


def level(score: float, strong: float = STRONG_Z, partial: float = PARTIAL_Z) -> str:
    return "strong" if score >= strong else "partial" if score >= partial else "none"


def score_sentences(sentences: list[str], embedder) -> tuple[np.ndarray, np.ndarray]:
    """Per priority: best score over the sentences and the index of the sentence that reached it.

    Two corrections turn "near" into "about" (see the module docstring):
    - focus: a priority trailing the sentence's best specific priority by more than ``FOCUS_DELTA``
      loses the excess, so a sentence about traffic lights counts for mobility, not for its neighbours;
    - genericness: a sentence whose mean z over the specific priorities exceeds ``GENERIC_FREE`` (generic
      technology talk that is a bit like everything) loses ``GENERIC_WEIGHT`` times the excess.
    The ICT umbrella takes no part in the focus competition."""
    m = _model(embedder)
    n = len(PRIORITIES)
    if not sentences:
        return np.full(n, -np.inf), np.full(n, -1)
    sv = _unit(np.asarray(embedder.embed_passages(sentences), dtype=np.float32))
    z = ((m.vectors @ sv.T) - m.mu[:, None]) / m.sd[:, None]  # aspects x sentences
    per = np.full((n, len(sentences)), -np.inf)  # priorities x sentences
    for row, owner in enumerate(m.owner):
        per[owner] = np.maximum(per[owner], z[row])
    specific = [i for i, p in enumerate(PRIORITIES) if p.id != UMBRELLA]
    top = per[specific].max(axis=0)
    generic = GENERIC_WEIGHT * np.maximum(0.0, per[specific].mean(axis=0) - GENERIC_FREE)
    eff = per - np.maximum(0.0, top[None, :] - per - FOCUS_DELTA) - generic[None, :]
    for i, p in enumerate(PRIORITIES):
        if p.id == UMBRELLA:
            eff[i] = per[i] - generic
    arg = eff.argmax(axis=1)
    return eff[np.arange(n), arg], arg


# --------------------------------------------------------------------------- strategy passages

def _quote(text: str, name: str) -> str:
    """The sentence of a passage that names the priority best (with its lead-in when it is a list item)."""
    words = set(re.findall(r"\w{3,}", name.lower()))
    units: list[tuple[str, str]] = []  # (sentence, the raw line it came from)
    for raw in text.splitlines():
        if raw.strip():
            units += [(s.strip(), raw) for s in _SENT_END.split(raw.strip()) if s.strip()]
    if not units:
        return ""
    scores = [len(words & set(re.findall(r"\w{3,}", u.lower()))) / max(1, len(words)) for u, _ in units]
    i = max(range(len(units)), key=lambda k: (scores[k], -k))
    sentence, raw = units[i]
    if _BULLET.match(raw) and _BULLET.match(raw).group(0).strip():
        sentence = _BULLET.sub("", sentence).strip()
        lead = next((u for u, r in reversed(units[:i]) if u.endswith(":")), "")
        if lead:
            sentence = f"{lead} … {sentence}"
    return sentence[:400]


def strategy_citation(priority: Priority, retriever) -> Citation | None:
    passages = retriever.retrieve(priority.query, 4, {"doc_type": ["strategy"]})
    if not passages:
        return None
    p = next((p for p in passages if p.doc_id == STRATEGY_DOC), passages[0])
    return Citation(n=0, doc=p.doc_id, title=p.chunk.title, page=p.chunk.pages, section=p.chunk.section,
                    quote=_quote(p.text, priority.name), source_url=(p.chunk.source_urls or ("",))[0],
                    score=round(float(p.score), 4))


_CITES: dict[int, tuple[object, dict[str, Citation | None]]] = {}
_CITES_LOCK = threading.Lock()


def strategy_citations(retriever) -> dict[str, Citation | None]:
    """The strategy passage of every priority (they do not depend on the proposal, so they are
    cached per retriever until the index changes). ``n`` numbers distinct passages from 1."""
    try:
        state = (retriever.store.count(), tuple(sorted(retriever.store.doc_states())))
    except Exception:  # a retriever without a store (tests): no caching
        state = None
    with _CITES_LOCK:
        hit = _CITES.get(id(retriever))
        if hit is not None and state is not None and hit[0] == state:
            return hit[1]
    cites: dict[str, Citation | None] = {}
    numbers: dict[tuple, int] = {}
    for p in PRIORITIES:
        c = strategy_citation(p, retriever)
        if c is not None:
            c.n = numbers.setdefault((c.doc, c.section, c.page), len(numbers) + 1)
        cites[p.id] = c
    with _CITES_LOCK:
        _CITES[id(retriever)] = (state, cites)
    return cites


# --------------------------------------------------------------------------- entry points

def align(text: str, retriever, embedder, *, source: str = "pasted text") -> AlignmentReport:
    t0 = time.perf_counter()
    sentences = split_sentences(text)
    if not sentences:
        raise ValueError("the proposal has no sentences to compare (it is empty or only headings)")
    best, arg = score_sentences(sentences, embedder)

    cites = strategy_citations(retriever)

    rows: list[AlignmentRow] = []
    for i, p in enumerate(PRIORITIES):
        score, j, via = float(best[i]), int(arg[i]), ""
        if p.id == "ict":  # the umbrella is as aligned as its best sub-priority
            subs = [k for k, q in enumerate(PRIORITIES) if q.parent == "ict"]
            k = max(subs, key=lambda k: best[k])
            if best[k] > score:
                score, j, via = float(best[k]), int(arg[k]), PRIORITIES[k].name
        rows.append(AlignmentRow(priority_id=p.id, priority=p.name, level=p.level, alignment=level(score),
                                 score=score, sentence=sentences[j] if j >= 0 else "", citation=cites[p.id],
                                 via=via if level(score) != "none" else ""))
    overall, summary = summarize(rows)
    notice = "" if any(cites.values()) else \
        "The index holds no strategy document (doc_type 'strategy'), so no strategy passage is cited."
    if len(sentences) == MAX_SENTENCES:
        notice = (notice + f" Only the first {MAX_SENTENCES} sentences were compared.").strip()
    return AlignmentReport(source=source, overall=overall, summary=summary, rows=rows, sentences=len(sentences),
                           seconds=time.perf_counter() - t0, notice=notice)


def summarize(rows: list[AlignmentRow]) -> tuple[str, str]:
    """Overall verdict and a short deterministic summary built from the rows."""
    specific = [r for r in rows if r.priority_id != "ict"]  # the umbrella repeats its best sub-priority
    strong = [r for r in specific if r.alignment == "strong"]
    partial = [r for r in specific if r.alignment == "partial"]
    names = lambda rs: ", ".join(f"{r.priority} ({r.level})" for r in sorted(rs, key=lambda r: -r.score))
    if strong:
        overall = "aligned"
    elif partial:
        overall = "partly aligned"
    else:
        overall = "not aligned"
    parts = []
    if strong:
        parts.append(f"Strongly aligned with {len(strong)} of {len(specific)} priorities: {names(strong)}.")
    if partial:
        parts.append(f"Partly aligned with {names(partial)}.")
    if not strong and not partial:
        parts.append(f"No sentence of the proposal matches any of the {len(specific)} Sofia RIS3 priorities; "
                     "the committee should ask how the proposal relates to the strategy.")
    else:
        verticals = []
        ict = next(r for r in rows if r.priority_id == "ict")
        if ict.alignment != "none":
            verticals.append("Informatics and ICT")
        if next(r for r in rows if r.priority_id == "creative").alignment != "none":
            verticals.append("New technologies in creative and recreational industries")
        horizontal = next(r for r in rows if r.priority_id == "ecosystem").alignment != "none"
        if verticals:
            parts.append(f"It falls under the vertical priority area{'s' if len(verticals) > 1 else ''} "
                         f"{' and '.join(repr(v) for v in verticals)}"
                         + (" and supports the horizontal policy of strengthening the innovation ecosystem."
                            if horizontal else "."))
        elif horizontal:
            parts.append("It supports the horizontal policy (innovation ecosystem) but no vertical priority area.")
    return overall, " ".join(parts)


def align_file(path: Path, retriever, embedder, *, max_mb: float = Settings.max_file_mb,
               max_pages: int = Settings.max_pdf_pages, read_timeout: float = Settings.read_timeout) -> AlignmentReport:
    """A proposal file (PDF, DOCX, TXT, MD, HTML) -> report; raises ``ReadError`` for unreadable files
    (including files over the size or page limits, ``SOFIA_QA_MAX_FILE_MB`` / ``SOFIA_QA_MAX_PDF_PAGES``)."""
    from ingestion.readers import read_document

    doc = read_document(Path(path), Path(path).name, max_mb=max_mb, max_pages=max_pages, timeout=read_timeout)
    return align(doc.text, retriever, embedder, source=Path(path).name)


# --------------------------------------------------------------------------- CLI

def register(subparsers, common) -> None:
    p = subparsers.add_parser("align", help="check a proposal against the Sofia RIS3 priorities")
    p.add_argument("file", help="proposal (.pdf, .docx, .txt, .md, .html) or - for standard input")
    p.add_argument("--json", action="store_true")
    common(p)
    p.set_defaults(func=cmd_align)


def cmd_align(args) -> int:
    import sys

    from ingestion.config import Settings
    from ingestion.embedding import load_embedder
    from ingestion.readers import ReadError
    from ingestion.store import Store

    from .retrieve import Retriever

    s = Settings.from_env(db=args.db, chroma_url=args.chroma_url, collection=args.collection,
                          embed_model=args.embed_model)
    embedder = load_embedder(s.embed_model, s.threads, s.embed_worker)
    retriever = Retriever(Store.open(s, embedder.name), embedder, s)
    try:
        if args.file == "-":
            report = align(sys.stdin.read(), retriever, embedder, source="standard input")
        else:
            report = align_file(Path(args.file), retriever, embedder, max_mb=s.max_file_mb,
                                max_pages=s.max_pdf_pages, read_timeout=s.read_timeout)
    except ReadError as exc:
        print(f"sofia-qa: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    else:
        print(report.to_markdown())
    return 0
