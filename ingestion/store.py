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

from .errors import SofiaError
from .types import Chunk


class StoreError(SofiaError, RuntimeError):
    """The index cannot be opened, read or written."""

    kind = "store"


class ModelMismatch(StoreError):
    pass


class StoreUnavailable(StoreError):
    """The Chroma server does not answer (stopped, restarting, hung). The same ``Store`` works again,
    without being reopened, as soon as the server is back on the same address and path."""


# Seconds a Chroma server may take to answer one request. The chromadb client itself waits forever,
# so a hung server would hang every question; local requests take milliseconds.
SERVER_TIMEOUT = 60.0
SERVER_CONNECT_TIMEOUT = 5.0


@dataclass
class DocState:
    doc_id: str
    path: str = ""
    title: str = ""
    doc_type: str = ""
    hashes: set[str] = field(default_factory=set)
    read_versions: set[int] = field(default_factory=set)
    expected: int = 0
    count: int = 0
    pages: set[int] = field(default_factory=set)
    indexed_at: float = 0.0

    def complete(self, doc_hash: str, read_version: int | None = None) -> bool:
        """All chunks of one version of the file are stored (and, given ``read_version``, made by that version
        of the reading code)."""
        fresh = read_version is None or self.read_versions == {read_version}
        return self.hashes == {doc_hash} and self.count == self.expected and fresh


def _server_hint(chroma_url: str) -> str:
    u = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
    return f"start it with `chroma run --path DIR --port {u.port or 8000}` or unset SOFIA_QA_CHROMA_URL"


def connect(db_path, chroma_url: str | None = None, timeout: float | None = None):
    """An embedded ``PersistentClient`` at ``db_path``, or an ``HttpClient`` for ``chroma_url``.

    A server is checked first (``/api/v2/heartbeat``, bounded by ``timeout``) so a stopped or hung
    server is a clear ``StoreUnavailable`` instead of a traceback or a hang; the client's own HTTP
    session, which has no timeout, gets one (chromadb shares that session between all clients of one
    host and port in a process, so the last ``connect`` sets it for them all).
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=True)
    if chroma_url:
        import httpx

        timeout = SERVER_TIMEOUT if timeout is None else timeout
        u = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        base = f"{u.scheme or 'http'}://{u.hostname or '127.0.0.1'}:{u.port or 8000}"
        try:
            httpx.get(f"{base}/api/v2/heartbeat",
                      timeout=httpx.Timeout(timeout, connect=min(timeout, SERVER_CONNECT_TIMEOUT))).raise_for_status()
            client = chromadb.HttpClient(host=u.hostname or "127.0.0.1", port=u.port or 8000,
                                         ssl=u.scheme == "https", settings=chroma_settings)
        except Exception as exc:
            detail = f"no answer within {timeout:g} s" if "Timeout" in type(exc).__name__ else exc
            raise StoreUnavailable(f"the vector store (Chroma server at {chroma_url}) is unreachable "
                                   f"({type(exc).__name__}: {detail}); {_server_hint(chroma_url)}") from None
        session = getattr(getattr(client, "_server", None), "_session", None)
        if isinstance(session, httpx.Client):
            session.timeout = httpx.Timeout(timeout, connect=min(timeout, SERVER_CONNECT_TIMEOUT))
        return client
    from pathlib import Path

    Path(db_path).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(db_path), settings=chroma_settings)


def _server_url(client) -> str | None:
    """The base URL of an ``HttpClient`` (None for an embedded client)."""
    api = getattr(getattr(client, "_server", None), "_api_url", None)
    if not isinstance(api, str) or not api.startswith("http"):
        return None
    u = urlparse(api)
    return f"{u.scheme}://{u.netloc}"


class Store:
    """One Chroma collection. Every call goes through ``_call``: a server that stops answering is a
    ``StoreUnavailable`` naming its URL, and the next call after it is back simply works (the chromadb
    client opens a new connection per request when the old one died). A collection deleted and
    re-created underneath (``ingest --rebuild`` in another process, a server restarted on an empty
    path) is looked up again by name once."""

    def __init__(self, client, collection: str, embed_model: str):
        self.client = client
        self.name = collection
        self.embed_model = embed_model
        self.url = _server_url(client)
        self._open()

    def _open(self) -> None:
        collection, embed_model = self.name, self.embed_model
        try:
            existing = {getattr(c, "name", c) for c in self.client.list_collections()}
            if collection in existing:  # never pass metadata here: it would overwrite the stored model name
                col = self.client.get_collection(name=collection, embedding_function=None)
            else:
                col = self.client.create_collection(
                    name=collection, embedding_function=None,
                    metadata={"hnsw:space": "cosine", "embed_model": embed_model})
        except Exception as exc:
            if self._is_transport(exc):
                raise self._unavailable(exc) from None
            raise StoreError(f"cannot open Chroma collection {collection!r}: {exc}") from None
        stored = (col.metadata or {}).get("embed_model")
        if stored and stored != embed_model:
            raise ModelMismatch(
                f"the index {collection!r} was built with embedding model {stored!r}, not {embed_model!r}; "
                f"mixing two models in one collection would make every search wrong. Use "
                f"SOFIA_QA_EMBED_MODEL={stored}, another --db, or `sofia-qa ingest --rebuild`.")
        self.col = col

    # ------------------------------------------------------------------ faults
    @staticmethod
    def _is_transport(exc: BaseException) -> bool:
        try:
            import httpx
        except ImportError:  # pragma: no cover - chromadb depends on httpx
            return False
        return isinstance(exc, httpx.TransportError)

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        where = self.url or "the configured address"
        detail = f"{type(exc).__name__}: {exc}"
        session = getattr(getattr(self.client, "_server", None), "_session", None)
        read = getattr(getattr(session, "timeout", None), "read", None)
        if "Timeout" in type(exc).__name__ and read:
            detail = f"{type(exc).__name__}: no answer within {read:g} s"
        return StoreUnavailable(
            f"the vector store (Chroma server at {where}) is unreachable ({detail}); "
            f"{_server_hint(where) if self.url else 'check SOFIA_QA_CHROMA_URL'}. Questions work again as soon "
            f"as the server is back; nothing needs restarting here")

    def _call(self, method: str, *args, **kwargs):
        """``self.col.<method>(...)`` with server faults turned into clear errors (see the class doc)."""
        from chromadb.errors import NotFoundError

        for attempt in (1, 2):
            try:
                return getattr(self.col, method)(*args, **kwargs)
            except NotFoundError:
                if attempt == 2:
                    raise StoreError(f"the Chroma collection {self.name!r} disappeared while in use "
                                     f"({self.url or 'embedded store'}); run `sofia-qa ingest`") from None
                self._open()  # deleted and re-created underneath: look it up again by name (or create it)
            except Exception as exc:
                if self._is_transport(exc):
                    raise self._unavailable(exc) from None
                raise
        raise AssertionError("unreachable")

    @classmethod
    def open(cls, settings, embed_model: str | None = None) -> "Store":
        return cls(connect(settings.db, settings.chroma_url), settings.collection,
                   embed_model or settings.embed_model)

    # ------------------------------------------------------------------ reads
    def count(self) -> int:
        return self._call("count")

    def doc_states(self) -> dict[str, DocState]:
        states: dict[str, DocState] = {}
        for meta in self._all_metadatas():
            st = states.setdefault(meta["doc_id"], DocState(doc_id=meta["doc_id"]))
            st.path, st.title, st.doc_type = meta.get("path", ""), meta.get("title", ""), meta.get("doc_type", "")
            st.hashes.add(meta.get("doc_hash", ""))
            st.read_versions.add(int(meta.get("read_version", 0)))
            st.expected = int(meta.get("doc_chunks", 0))
            st.count += 1
            st.indexed_at = max(st.indexed_at, float(meta.get("indexed_at", 0.0)))
            if "page_start" in meta:
                st.pages.add(int(meta["page_start"]))
        return states

    def _all_metadatas(self, batch: int = 2000) -> Iterable[dict]:
        offset = 0
        while True:
            got = self._call("get", include=["metadatas"], limit=batch, offset=offset)
            metas = got.get("metadatas") or []
            yield from metas
            if len(metas) < batch:
                return
            offset += batch

    def all_chunks(self, batch: int = 2000) -> list[Chunk]:
        out: list[Chunk] = []
        offset = 0
        while True:
            got = self._call("get", include=["metadatas", "documents"], limit=batch, offset=offset)
            out.extend(chunk_from_record(i, d, m) for i, d, m in zip(got["ids"], got["documents"], got["metadatas"]))
            if len(got["ids"]) < batch:
                return out
            offset += batch

    def query(self, embedding: Sequence[float], k: int, where: dict | None = None) -> list[tuple[Chunk, float]]:
        if self._call("count") == 0:
            return []
        res = self._call("query", query_embeddings=[list(map(float, embedding))], n_results=k, where=where or None,
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
            self._call("upsert", ids=ids[part], documents=[c.text for c in chunks[part]],
                            embeddings=[list(map(float, e)) for e in embeddings[part]],
                            metadatas=[chunk_metadata(c, now) for c in chunks[part]])
        keep = set(ids)
        stale = [i for i in self._call("get", where={"doc_id": doc_id}, include=[])["ids"] if i not in keep]
        if stale:
            self._call("delete", ids=stale)

    def settle_document(self, doc_id: str) -> int:
        """Keep only the newest whole version of a half-replaced document; return the chunks deleted.

        A write killed between its upsert and its clean-up leaves the new version's chunks next to the old
        one's. The next ingest normally rewrites the document from its file; when the file can no longer be
        read, this is the repair: the newest version whose chunks are all present stays, the rest goes.
        """
        got = self._call("get", where={"doc_id": doc_id}, include=["metadatas"])
        groups: dict[str, list[str]] = {}
        newest: dict[str, float] = {}
        expected: dict[str, int] = {}
        for cid, meta in zip(got["ids"], got["metadatas"]):
            h = meta.get("doc_hash", "")
            groups.setdefault(h, []).append(cid)
            newest[h] = max(newest.get(h, 0.0), float(meta.get("indexed_at", 0.0)))
            expected[h] = int(meta.get("doc_chunks", 0))
        whole = [h for h, ids in groups.items() if len(ids) == expected[h]]
        if len(groups) < 2 or not whole:
            return 0
        keep = max(whole, key=lambda h: newest[h])
        stale = [cid for h, ids in groups.items() if h != keep for cid in ids]
        self._call("delete", ids=stale)
        return len(stale)

    def delete_document(self, doc_id: str) -> int:
        ids = self._call("get", where={"doc_id": doc_id}, include=[])["ids"]
        if ids:
            self._call("delete", ids=ids)
        return len(ids)

    def reset(self) -> None:
        try:
            self.client.delete_collection(self.name)
        except Exception as exc:
            if self._is_transport(exc):
                raise self._unavailable(exc) from None
        self._open()


def chunk_metadata(c: Chunk, now: float) -> dict:
    meta = {
        "doc_id": c.doc_id, "title": c.title, "path": c.path, "doc_type": c.doc_type, "language": c.language,
        "start": c.start, "end": c.end, "heading_path": json.dumps(list(c.heading_path), ensure_ascii=False),
        "section": c.section, "source_urls": json.dumps(list(c.source_urls)), "content_hash": c.content_hash,
        "doc_hash": c.doc_hash, "doc_chunks": c.doc_chunks, "embed_model": c.embed_model,
        "fact_ids": ",".join(c.fact_ids), "indexed_at": now, "read_version": c.read_version,
    }
    if c.period:  # Chroma metadata holds no None
        meta["period"] = c.period
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
        fact_ids=tuple(f for f in (m.get("fact_ids") or "").split(",") if f), period=m.get("period") or None,
        read_version=int(m.get("read_version", 0)),
    )
