"""The retrieval systems compared side by side: our retriever in its three modes and a LlamaIndex default.

The LlamaIndex baseline is a plain ``VectorStoreIndex`` with its defaults (``SentenceSplitter`` 1024 tokens,
top-2) over the same documents with the same embedding model.

Every system answers ``retrieve(question, k) -> [(Ref, score)]`` in rank order.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import shutil
import sys
from pathlib import Path

from .metrics import Ref

SYSTEMS = ("bm25", "dense", "hybrid", "llamaindex-default")
OURS = "hybrid"


class RetrieverSystem:
    """``assistant.retrieve.Retriever`` in one mode (``hybrid`` is the product's own)."""

    def __init__(self, store, embedder, settings, mode: str):
        from assistant.retrieve import Retriever

        self.name = mode
        self.retriever = Retriever(store, embedder, settings, mode=mode)
        self.pages = chunk_pages(store)

    def retrieve(self, question: str, k: int) -> list[tuple[Ref, float]]:
        return [(Ref.of(p, self.pages), float(p.score)) for p in self.retriever.retrieve(question, k=k)]


def chunk_pages(store) -> dict[str, tuple[int, int]]:
    """chunk id -> (page_start, page_end) for paged documents, so merged passages keep their full page range."""
    return {c.chunk_id: (c.page_start, c.page_end if c.page_end is not None else c.page_start)
            for c in store.all_chunks() if c.page_start is not None}


def llama_embedding(embedder):
    """Our embedder as a LlamaIndex ``BaseEmbedding`` (queries and passages keep their own encodings)."""
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class OurEmbedding(BaseEmbedding):
        _embedder = PrivateAttr()

        def __init__(self, inner, **kwargs):
            super().__init__(model_name=inner.name, embed_batch_size=64, **kwargs)
            self._embedder = inner

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in self._embedder.embed_query(query)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

        def _get_text_embedding(self, text: str) -> list[float]:
            return self._get_text_embeddings([text])[0]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in row] for row in self._embedder.embed_passages(texts)]

    return OurEmbedding(embedder)


class LlamaIndexDefault:
    """What a LlamaIndex quick-start gives: default splitter, in-memory vector store, top-2.

    Documents are read with our readers (same text, PDFs one document per page as LlamaIndex's own
    PDF reader does); each node's heading path and fact ids are recovered from its character offsets
    so the same relevance rules apply (a 1024-token node spans several sections and matches any of them).
    """

    name = "llamaindex-default"

    def __init__(self, documents: list, embedder, top_k: int = 2, cache_dir: Path | None = None):
        """``cache_dir``: keep the built index there, keyed by what was embedded (model, splitter, texts),
        so a later run over the same documents loads it instead of embedding everything again (slow on a CPU).
        Only the newest index is kept."""
        from llama_index.core import Settings as LISettings

        LISettings.embed_model = llama_embedding(embedder)
        with contextlib.redirect_stdout(sys.stderr):  # it prints a notice; keep stdout for --json
            LISettings.llm = None  # never an OpenAI default
        self.top_k = top_k
        li_docs, self._meta = _llamaindex_documents(documents)
        self.index, nodes = _load_or_build(li_docs, embedder.name, LISettings.embed_model, cache_dir)
        self.refs = {n.node_id: self._ref(n) for n in nodes}
        self.retriever = self.index.as_retriever(similarity_top_k=top_k)

    def _ref(self, node) -> Ref:
        doc, offset, page = self._meta[node.ref_doc_id]
        start = offset + (node.start_char_idx or 0)
        end = offset + (node.end_char_idx if node.end_char_idx is not None else len(node.text))
        starts = [s.start for s in doc.sections]
        first = max(0, bisect.bisect_right(starts, start) - 1)
        spanned = [s.heading_path for s in doc.sections[first:] if s.start < end] or [()]
        facts = tuple(fid for pos, fid in sorted(doc.fact_ids.items()) if start <= pos <= end + 1)
        return Ref(doc=doc.doc_id, heading_path=tuple(spanned[0]), more_paths=tuple(map(tuple, spanned[1:])),
                   page_start=page, page_end=page, fact_ids=facts, text=node.get_content())

    def retrieve(self, question: str, k: int) -> list[tuple[Ref, float]]:
        return [(self.refs[h.node.node_id], float(h.score or 0.0)) for h in self.retriever.retrieve(question)]


def _llamaindex_documents(documents: list) -> tuple[list, dict]:
    """Our documents as LlamaIndex documents (a PDF: one per page, as LlamaIndex's PDF reader does), and for
    each its source: (document, character offset, page)."""
    from llama_index.core import Document as LIDocument

    li_docs, meta = [], {}
    for doc in documents:
        parts = [(s.text, s.start, s.page) for s in doc.sections] if doc.pages else [(doc.text, 0, None)]
        for i, (text, offset, page) in enumerate(parts):
            if not text.strip():
                continue
            key = f"{doc.doc_id}#{i}"
            meta[key] = (doc, offset, page)
            li_docs.append(LIDocument(text=text, id_=key, metadata={
                "doc_id": doc.doc_id, **({"page_label": str(page)} if page is not None else {})}))
    return li_docs, meta


def _load_or_build(li_docs: list, model_name: str, embed_model, cache_dir: Path | None) -> tuple:
    """The default VectorStoreIndex over ``li_docs`` and its nodes: loaded from ``cache_dir`` when one was built
    from the same model, splitter and texts, else built (and kept there, replacing older ones)."""
    from llama_index.core import StorageContext, VectorStoreIndex, load_index_from_storage
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter()
    key = hashlib.sha1(json.dumps([model_name, splitter.chunk_size, splitter.chunk_overlap,
                                   [(d.id_, d.text, d.metadata) for d in li_docs]],
                                  ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]
    saved = cache_dir / f"llamaindex-default-{key}" if cache_dir is not None else None
    if saved is not None and (saved / "docstore.json").is_file():
        index = load_index_from_storage(StorageContext.from_defaults(persist_dir=str(saved)), embed_model=embed_model)
        return index, list(index.docstore.docs.values())
    nodes = splitter.get_nodes_from_documents(li_docs)
    index = VectorStoreIndex(nodes, embed_model=embed_model, show_progress=False)
    if saved is not None:  # written whole, then renamed: a killed run leaves no half cache behind
        tmp = saved.with_name(saved.name + ".part")
        shutil.rmtree(tmp, ignore_errors=True)
        index.storage_context.persist(persist_dir=str(tmp))
        for old in cache_dir.glob("llamaindex-default-*"):  # indexes of earlier document versions
            if old.is_dir() and old != tmp:
                shutil.rmtree(old, ignore_errors=True)
        tmp.rename(saved)
    return index, nodes


def indexed_documents(store, settings) -> list:
    """The documents the index holds, re-read from their paths with our readers."""
    from ingestion.readers import read_document

    docs = []
    for doc_id, st in sorted(store.doc_states().items()):
        if st.path and Path(st.path).is_file():
            docs.append(read_document(Path(st.path), doc_id, max_mb=settings.max_file_mb,
                                      max_pages=settings.max_pdf_pages, timeout=settings.read_timeout))
    return docs


def make_systems(names, store, embedder, settings, cache_dir: Path | None = None) -> dict:
    unknown = [n for n in names if n not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    out = {}
    for name in names:
        if name == "llamaindex-default":
            out[name] = LlamaIndexDefault(indexed_documents(store, settings), embedder, cache_dir=cache_dir)
        else:
            out[name] = RetrieverSystem(store, embedder, settings, name)
    return out
