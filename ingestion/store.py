"""Chroma storage: embedded ``PersistentClient`` by default, ``HttpClient`` for a ``chroma run`` server.

The chunk collection is its own manifest: every chunk carries its document's file hash and the
number of chunks that version has, so a document is complete exactly when all its chunks carry
the current hash and their count matches. Writes go document by document: upsert the new chunks
(ids are content-derived, so a retry rewrites the same ids), then delete the document's other
chunks. A process killed anywhere in between leaves a state the next ingest recognises and repairs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Iterable, Sequence
from urllib.parse import urlparse

from .types import Chunk


class StoreError(RuntimeError):
    pass


class ModelMismatch(StoreError):
    pass


@dataclass
class DocState:
    doc_id: str
    path: str = ""
    title: str = ""
    doc_type: str = ""
    hashes: set[str] = field(default_factory=set)
    expected: int = 0
    count: int = 0
    pages: set[int] = field(default_factory=set)
    indexed_at: float = 0.0

    def complete(self, doc_hash: str) -> bool:
        return self.hashes == {doc_hash} and self.count == self.expected


def connect(db_path, chroma_url: str | None = None):
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    if chroma_url:
        u = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        try:
            return chromadb.HttpClient(host=u.hostname or "127.0.0.1", port=u.port or 8000,
                                       ssl=u.scheme == "https", settings=chroma_settings)
        except Exception as exc:
            raise StoreError(f"Chroma server at {chroma_url} is unreachable ({exc}); start it with "
                             f"`chroma run --path DIR --port {u.port or 8000}` or unset SOFIA_QA_CHROMA_URL") from None
    from pathlib import Path

    Path(db_path).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(db_path), settings=chroma_settings)


class Store:
    def __init__(self, client, collection: str, embed_model: str):
        self.client = client
        self.name = collection
        self.embed_model = embed_model
        try:
            existing = {getattr(c, "name", c) for c in client.list_collections()}
            if collection in existing:  # never pass metadata here: it would overwrite the stored model name
                self.col = client.get_collection(name=collection, embedding_function=None)
            else:
                self.col = client.create_collection(
                    name=collection, embedding_function=None,
                    metadata={"hnsw:space": "cosine", "embed_model": embed_model})
        except Exception as exc:
            raise StoreError(f"cannot open Chroma collection {collection!r}: {exc}") from None
        stored = (self.col.metadata or {}).get("embed_model")
        if stored and stored != embed_model:
            raise ModelMismatch(
                f"the index {collection!r} was built with embedding model {stored!r}, not {embed_model!r}; "
                f"mixing two models in one collection would make every search wrong. Use "
                f"SOFIA_QA_EMBED_MODEL={stored}, another --db, or `sofia-qa ingest --rebuild`.")

    @classmethod
    def open(cls, settings, embed_model: str | None = None) -> "Store":
        return cls(connect(settings.db, settings.chroma_url), settings.collection,
                   embed_model or settings.embed_model)

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        return self.col.count()

    def doc_states(self) -> dict[str, DocState]:
        states: dict[str, DocState] = {}
        for meta in self._all_metadatas():
            st = states.setdefault(meta["doc_id"], DocState(doc_id=meta["doc_id"]))
            st.path, st.title, st.doc_type = meta.get("path", ""), meta.get("title", ""), meta.get("doc_type", "")
            st.hashes.add(meta.get("doc_hash", ""))
            st.expected = int(meta.get("doc_chunks", 0))
            st.count += 1
            st.indexed_at = max(st.indexed_at, float(meta.get("indexed_at", 0.0)))
            if "page_start" in meta:
                st.pages.add(int(meta["page_start"]))
        return states

    def _all_metadatas(self, batch: int = 2000) -> Iterable[dict]:
        offset = 0
        while True:
            got = self.col.get(include=["metadatas"], limit=batch, offset=offset)
            metas = got.get("metadatas") or []
            yield from metas
            if len(metas) < batch:
                return
            offset += batch

    def all_chunks(self, batch: int = 2000) -> list[Chunk]:
        out: list[Chunk] = []
        offset = 0
        while True:
            got = self.col.get(include=["metadatas", "documents"], limit=batch, offset=offset)
            out.extend(chunk_from_record(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]))
            if len(got["ids"]) < batch:
                return out
            offset += batch

    def query(self, embedding: Sequence[float], k: int, where: dict | None = None) -> list[tuple[Chunk, float]]:
        if self.col.count() == 0:
            return []
        res = self.col.query(query_embeddings=[list(map(float, embedding))], n_results=k, where=where or None,
                             include=["metadatas", "documents", "distances"])
        return [(chunk_from_record(i, d, m), 1.0 - float(dist))
                for i, d, m, dist in zip(res["ids"][0], res["documents"][0], res["metadatas"][0], res["distances"][0])]

    # ------------------------------------------------------------------ writes
    def write_document(self, chunks: Sequence[Chunk], embeddings: Sequence[Sequence[float]], now: float) -> None:
        """Make the index hold exactly ``chunks`` for their document (crash-safe order)."""
        if not chunks:
            return
        doc_id = chunks[0].doc_id
        ids = [c.chunk_id for c in chunks]
        for i in range(0, len(chunks), 500):
            part = slice(i, i + 500)
            self.col.upsert(ids=ids[part], documents=[c.text for c in chunks[part]],
                            embeddings=[list(map(float, e)) for e in embeddings[part]],
                            metadatas=[chunk_metadata(c, now) for c in chunks[part]])
        keep = set(ids)
        stale = [i for i in self.col.get(where={"doc_id": doc_id}, include=[])["ids"] if i not in keep]
        if stale:
            self.col.delete(ids=stale)

    def delete_document(self, doc_id: str) -> int:
        ids = self.col.get(where={"doc_id": doc_id}, include=[])["ids"]
        if ids:
            self.col.delete(ids=ids)
        return len(ids)

    def reset(self) -> None:
        try:
            self.client.delete_collection(self.name)
        except Exception:
            pass
        self.__init__(self.client, self.name, self.embed_model)


def chunk_metadata(c: Chunk, now: float) -> dict:
    meta = {
        "doc_id": c.doc_id, "title": c.title, "path": c.path, "doc_type": c.doc_type, "language": c.language,
        "start": c.start, "end": c.end, "heading_path": json.dumps(list(c.heading_path), ensure_ascii=False),
        "section": c.section, "source_urls": json.dumps(list(c.source_urls)), "content_hash": c.content_hash,
        "doc_hash": c.doc_hash, "doc_chunks": c.doc_chunks, "embed_model": c.embed_model,
        "fact_ids": ",".join(c.fact_ids), "indexed_at": now,
    }
    if c.page_start is not None:
        meta["page_start"] = c.page_start
        meta["page_end"] = c.page_end if c.page_end is not None else c.page_start
    return meta


def chunk_from_record(chunk_id: str, text: str, m: dict) -> Chunk:
    return Chunk(
        chunk_id=chunk_id, doc_id=m["doc_id"], title=m.get("title", ""), path=m.get("path", ""),
        doc_type=m.get("doc_type", ""), language=m.get("language", ""), text=text or "",
        start=int(m.get("start", 0)), end=int(m.get("end", 0)),
        heading_path=tuple(json.loads(m.get("heading_path") or "[]")),
        page_start=m.get("page_start"), page_end=m.get("page_end"),
        source_urls=tuple(json.loads(m.get("source_urls") or "[]")), content_hash=m.get("content_hash", ""),
        doc_hash=m.get("doc_hash", ""), doc_chunks=int(m.get("doc_chunks", 0)), embed_model=m.get("embed_model", ""),
        fact_ids=tuple(f for f in (m.get("fact_ids") or "").split(",") if f),
    )
