"""Question -> grounded ``Answer``: retrieve, generate (streaming), gate, cite.

One ``Assistant`` per process: it holds the embedder, the store, the retriever and the model,
each loaded once. ``ask_stream`` yields ``Retrieved`` (the passages, before the model reads them), text
pieces, and finally the checked ``Answer``; ``ask`` returns only the ``Answer``.
"""

from __future__ import annotations

import threading
import time
from typing import Iterator, Sequence

from ingestion.config import Settings, check_answer_language
from ingestion.embedding import load_embedder
from ingestion.store import Store

from . import budget, prompts
from .chat import bounded_history, clean_rewrite, rewrite_messages
from .cite import assign_citations
from .evidence import choose_evidence, nothing_close
from .gate import Gate
from .llm import ModelError, load_llm
from .retrieve import Retriever, detect_language
from .types import Answer, Citation, Passage, Retrieved


class Assistant:
    def __init__(self, settings: Settings | None = None, *, store: Store | None = None, embedder=None,
                 llm=None, gate: Gate | None = None):
        self.settings = settings or Settings.from_env()
        self.embedder = embedder or load_embedder(self.settings.embed_model, self.settings.threads, self.settings.embed_worker)
        self.store = store or Store.open(self.settings, self.embedder.name)
        self.retriever = Retriever(self.store, self.embedder, self.settings)
        self.gate = gate or Gate.load()
        self._llm = llm
        self._llm_lock = threading.Lock()

    @property
    def llm(self):
        with self._llm_lock:
            if self._llm is None:
                s = self.settings
                self._llm = load_llm(model_path=s.model_path, server_url=s.llm_url, cache_dir=s.model_cache,
                                     n_threads=s.threads, n_ctx=s.n_ctx, timeout=s.llm_timeout,
                                     prefix_cache_mb=s.prefix_cache_mb)
            return self._llm

    # ------------------------------------------------------------------ public API
    def ask(self, question: str, history: Sequence | None = None, filters: dict | None = None,
            k: int | None = None, answer_language: str | None = None) -> Answer:
        answer = None
        for item in self.ask_stream(question, history, filters, k, answer_language):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def ask_stream(self, question: str, history: Sequence | None = None, filters: dict | None = None,
                   k: int | None = None, answer_language: str | None = None) -> Iterator[Retrieved | str | Answer]:
        """``answer_language``: "question" or "en" for this question (``Settings.answer_language`` when None)."""
        t0 = time.perf_counter()
        timings: dict[str, float] = {}
        question = " ".join((question or "").split())
        if not question:
            raise ValueError("the question is empty")
        answer_language = check_answer_language(answer_language or self.settings.answer_language, "answer_language ")
        notice = ""
        limit = self.settings.max_question_chars
        if len(question) > limit:
            question = question[:limit]
            notice = f"The question was longer than {limit} characters and was cut to that length."
        language = detect_language(question)
        standalone = question
        pairs = bounded_history(history or [], self.settings.history_turns)
        if pairs:
            t = time.perf_counter()
            try:
                standalone = clean_rewrite(self.llm.chat(rewrite_messages(question, pairs), max_tokens=80).text,
                                           question)
            except ModelError:
                standalone = question
            timings["rewrite"] = time.perf_counter() - t

        t = time.perf_counter()
        passages = self.passages_for(standalone, k, filters)
        timings["retrieve"] = time.perf_counter() - t
        base = dict(question=question, language=language, standalone_question=standalone, passages=passages)
        if not passages:
            timings["total"] = time.perf_counter() - t0
            yield Answer(text=prompts.REFUSAL[language], refused=True, outcome="not_found", timings=timings,
                         notice=(notice + " The index is empty or nothing matched the filters.").strip(), **base)
            return

        yield Retrieved(list(passages))
        writes = language if answer_language == "question" else answer_language
        lang_name = prompts.LANGUAGE_NAMES.get(writes, "English")
        pieces: list[str] = []
        try:
            t = time.perf_counter()
            first = None
            streamed = False
            for piece in self.llm.stream(prompts.messages(passages, standalone, prompts.ANSWER.format(language=lang_name)),
                                         max_tokens=self.settings.max_answer_tokens,
                                         prefix=prompts.first_passage(passages)):
                if first is None:
                    first = time.perf_counter() - t
                pieces.append(piece)
                if not self.settings.stream_drafts:  # only checked text is shown: the answer comes whole
                    continue
                if streamed:
                    yield piece
                    continue
                # hold back the start until it cannot be the refusal token
                head = "".join(pieces).strip()
                if len(head) >= len(prompts.NOT_FOUND) or not prompts.NOT_FOUND.startswith(head):
                    if not head.startswith(prompts.NOT_FOUND):
                        streamed = True
                        yield "".join(pieces)
            draft = "".join(pieces).strip()
            gen = getattr(self.llm, "last_stream", None)
            same = gen is not None and gen.text == "".join(pieces)
            logprobs = list(gen.token_logprobs) if same else []
            # the model was stopped (at its token limit, or going round in circles), not finished
            cut_off = same and gen.finish_reason in ("length", "repeat")
            timings["generate"] = time.perf_counter() - t
            timings["first_token"] = (first if first is not None else timings["generate"]) + timings["retrieve"]
            t = time.perf_counter()
            p_nf = self.llm.next_token_probs(
                prompts.messages(passages, standalone, prompts.STRICT), [prompts.NOT_FOUND])[prompts.NOT_FOUND]
            timings["gate"] = time.perf_counter() - t
        except ModelError as exc:  # the model is missing, unreachable, too slow, or died mid-answer
            timings["total"] = time.perf_counter() - t0
            yield self._degraded(base, timings, notice, exc.reason, draft="".join(pieces).strip())
            return

        signals = {"p_not_found": p_nf, "min_logprob": min(logprobs) if logprobs else 0.0,
                   "top_dense": max(p.dense for p in passages), "answer_tokens": float(len(logprobs))}
        signals["gate"] = self.gate.score(signals)
        signals["threshold"] = self.gate.threshold
        said_not_found = prompts.says_not_found(draft)
        t = time.perf_counter()
        text, citations, checks = "", [], []
        if not said_not_found and self.gate.answers(signals):
            text, citations, checks = assign_citations(draft, passages, standalone, self._embed_sentences,
                                                       cut_off=cut_off)
        timings["cite"] = time.perf_counter() - t
        removed = [f"{c.sentence} ({c.problem})" for c in checks if c.problem]
        if not text:  # declined: quote the passages' own words when they are close, never the unchecked draft
            t = time.perf_counter()
            evidence = [] if nothing_close(p_nf, signals["top_dense"]) else choose_evidence(
                standalone, "" if said_not_found else draft, passages, self.embedder.embed_passages,
                self.embedder.embed_query)
            timings["evidence"] = time.perf_counter() - t
            timings["total"] = time.perf_counter() - t0
            said = (prompts.unconfirmed_text(language, [c.quote for c in evidence]) if evidence
                    else prompts.REFUSAL[language])
            yield Answer(text=said, refused=True, outcome="unconfirmed" if evidence else "not_found",
                         evidence=evidence, timings=timings, notice=notice, signals=signals,
                         removed_sentences=removed, draft=draft, draft_cut_off=cut_off, **base)
            return
        timings["total"] = time.perf_counter() - t0
        if writes != language:  # written in English for a Bulgarian question: say why (a refusal is in Bulgarian)
            notice = (notice + " " + prompts.WRITTEN_IN_ENGLISH.get(language, "")).strip()
        yield Answer(text=text, citations=citations, refused=False, timings=timings, notice=notice,
                     signals=signals, removed_sentences=removed, draft=draft, draft_cut_off=cut_off, **base)

    def warm(self, progress: bool = True) -> dict[str, int]:
        """Read every chunk of the index as a first passage once and save the model's state after it, so any
        question whose best passage is that chunk starts from there (``sofia-qa warm``; the states are kept on
        disk, ``Settings.prefix_cache_mb``). Chunks already saved cost a file read. Returns counts."""
        from tqdm import tqdm

        llm = self.llm
        if not hasattr(llm, "keep_prefix") or getattr(llm, "prefixes", None) is None:
            raise ValueError("saved prompt beginnings need the local model with SOFIA_QA_PREFIX_CACHE_MB above 0 "
                             "(a model server keeps its own cache)")
        chunks = self.store.all_chunks()
        before = dict(llm.prefix_stats)
        failed = left = 0
        largest = llm.prefixes.largest
        for i, chunk in enumerate(tqdm(chunks, desc="reading each chunk as a first passage", unit="chunk",
                                       disable=not progress)):
            if llm.prefixes.nbytes + largest > llm.prefixes.max_bytes:
                left = len(chunks) - i  # the next state would push out one saved here: stop
                break
            p = Passage(chunk=chunk, text=prompts.neutralise_instructions(chunk.text), score=1.0,
                        chunk_ids=(chunk.chunk_id,), facts=chunk.fact_ids, n=1)
            size = llm.prefixes.nbytes
            # the question and instruction are never read: only the prompt up to the end of the passage is
            if not llm.keep_prefix(prompts.messages([p], "?", prompts.ANSWER.format(language="English")),
                                   prompts.first_passage([p])):
                failed += 1
            largest = max(largest, llm.prefixes.nbytes - size)
        return {"chunks": len(chunks), "read": llm.prefix_stats["kept"] - before["kept"], "failed": failed,
                "left": left, "states": len(llm.prefixes), "megabytes": round(llm.prefixes.nbytes / 2**20)}

    # ------------------------------------------------------------------ helpers
    def passages_for(self, question: str, k: int | None = None, filters: dict | None = None) -> list[Passage]:
        """The passages the model reads for a question: retrieved, instruction-like text neutralised, within
        ``Settings.passage_tokens`` (``budget.fit``)."""
        passages = self.retriever.retrieve(question, k, filters)
        for p in passages:
            p.text = prompts.neutralise_instructions(p.text)
        return budget.fit(passages, question, self.settings.passage_tokens)

    def _embed_sentences(self, sentences: list[str]):
        return self.embedder.embed_passages(sentences)

    def _degraded(self, base: dict, timings: dict, notice: str, why: str, draft: str = "") -> Answer:
        """The retrieved passages as citations, with a notice saying why there is no written answer.
        Any text already streamed before the model failed is kept in ``draft`` only: it was never checked."""
        passages: list[Passage] = base["passages"]
        cites = [Citation(n=p.n, doc=p.doc_id, title=p.chunk.title, page=p.chunk.pages, section=p.chunk.section,
                          quote=p.text[:400], source_url=(p.chunk.source_urls or ("",))[0], score=round(p.score, 4),
                          passage_n=p.n)
                 for p in passages]
        reason = why.strip().rstrip(".")[:160] or "unknown error"
        text = prompts.DEGRADED[base["language"]].format(why=reason)
        cut = " The answer text already shown was not checked and is withdrawn." if draft else ""
        return Answer(text=text, citations=cites, refused=False, outcome="unconfirmed", timings=timings, draft=draft,
                      model_failure=reason,
                      notice=(notice + f" Degraded mode: the language model failed ({reason}).{cut} "
                                       f"Showing the retrieved passages only.").strip(),
                      **base)
