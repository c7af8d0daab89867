"""The ingest state machine: rules that change files and ingest, kill or remove, each checked against the model."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from ingest_model import (BAD_FOR, CHUNK_TOKENS, INJECTED, STEMS, Content, FaultyCollection, OnDisk, Rec,
                          RecordingEmbedder, Version, View, contents, describe, norm, retouched, titles, trailers)
from ingestion.chunking import chunk_document
from ingestion.pipeline import ingest
from ingestion.readers import ReadError, read_document
from ingestion.store import Store, chunk_from_record
from ingestion.types import Chunk


class IngestMachine(RuleBasedStateMachine):
    def __init__(self, client, db: Path, root: Path, embedder, n: int, recorded: dict):
        super().__init__()
        self.client, self.db, self.embedder, self.recorded = client, db, embedder, recorded
        self.collection = f"machine-{n:03d}"
        self.store = Store(client, self.collection, embedder.name)
        self.corpus = root / f"corpus-{n:03d}"
        self.corpus.mkdir()
        self.files: dict[str, Content] = {}  # rel path -> what is in it now
        self.history: dict[str, list[Content]] = {}  # rel path -> every content it has had
        self.versions: dict[str, dict[str, Version]] = {}  # doc id -> file hash -> version
        self.budget = min(CHUNK_TOKENS, embedder.max_tokens - embedder.overhead)
        self.ingests = self.kills = 0

    def teardown(self):
        with contextlib.suppress(Exception):
            self.client.delete_collection(self.collection)
        shutil.rmtree(self.corpus, ignore_errors=True)

    # ------------------------------------------------------------------ helpers
    def _write(self, rel: str, content: Content) -> None:
        content.render(self.corpus / rel)
        self.files[rel] = content
        self.history.setdefault(rel, []).append(content)

    def _free_names(self, ext: str) -> list[str]:
        return [f"{s}.{ext}" for s in STEMS if f"{s}.{ext}" not in self.files]

    def expectation(self) -> dict[str, OnDisk]:
        """Read + chunk every file on disk (own walk, not ``discover``); register each version read."""
        on_disk = sorted(f.relative_to(self.corpus).as_posix() for f in self.corpus.rglob("*") if f.is_file())
        assert on_disk == sorted(self.files), "the model lost track of the folder"
        out = {}
        for rel in on_disk:
            path, content = self.corpus / rel, self.files[rel]
            data = path.read_bytes()
            doc_hash = hashlib.sha256(data).hexdigest()
            try:
                doc = read_document(path, rel)
            except ReadError:
                assert not content.readable(), f"the reader refused {rel}, which holds {content}"
                out[rel] = OnDisk(path, doc_hash, content, None)
                continue
            assert content.readable(), f"the reader accepted {rel}, which is broken ({content.how})"
            assert doc.content_hash == doc_hash
            chunks = chunk_document(doc, self.embedder.count_tokens, self.budget, self.embedder.name)
            version = Version(doc_hash, content, {c.chunk_id: c for c in chunks})
            self.check_content(rel, version, list(chunks))
            self.versions.setdefault(rel, {})[doc_hash] = version
            out[rel] = OnDisk(path, doc_hash, content, version)
        return out

    def view(self) -> View:
        got = self.store.col.get(include=["metadatas", "documents", "embeddings"])
        out: View = {}
        for cid, text, meta, emb in zip(got["ids"], got["documents"], got["metadatas"], got["embeddings"]):
            out.setdefault(meta["doc_id"], {})[cid] = Rec(chunk_from_record(cid, text, meta), dict(meta),
                                                          np.asarray(emb, dtype=np.float32))
        assert len(got["ids"]) == len(set(got["ids"])) == self.store.count()
        return out

    def check_content(self, doc_id: str, version: Version, chunks: list[Chunk]) -> None:
        """Independent of the chunker: the chunks give back what the model wrote, once, in order."""
        content = version.content
        chunks = sorted(chunks, key=lambda c: c.start)
        assert len(chunks) == len(version.chunks) and all(c.doc_chunks == len(chunks) for c in chunks)
        assert all(c.doc_hash == version.doc_hash and c.doc_id == doc_id for c in chunks)
        assert 1 <= len(chunks) <= 8, f"{doc_id}: {len(chunks)} chunks"
        if content.kind == "pdf":
            by_page: dict[int, list[str]] = {}
            for c in chunks:
                assert c.page_start == c.page_end and c.page_start is not None, c
                by_page.setdefault(c.page_start, []).append(norm(c.text))
            wanted = {i + 1: norm(p) for i, p in enumerate(content.pages) if p.strip()}
            assert {p: " ".join(ts) for p, ts in by_page.items()} == wanted, f"{doc_id}: pages {by_page} != {wanted}"
        else:
            got = [norm(p) for c in chunks for p in c.text.split("\n\n") if p.strip()]
            assert got == [norm(p) for p in content.paragraphs], f"{doc_id}: paragraphs {got}"
            assert all(c.page_start is None for c in chunks)

    # ------------------------------------------------------------------ invariant after every step
    @invariant()
    def every_chunk_belongs_to_a_version_that_was_read(self):
        view = self.view()
        states = self.store.doc_states()
        assert set(states) == set(view)
        for doc_id, recs in view.items():
            known = self.versions.get(doc_id, {})
            by_hash: dict[str, set[str]] = {}
            for cid, rec in recs.items():
                h = rec.chunk.doc_hash
                assert h in known, f"{doc_id}: chunk {cid} of a version never read ({h[:8]})"
                assert cid in known[h].chunks, f"{doc_id}: chunk {cid} is no chunk of version {h[:8]}"
                assert rec.chunk == known[h].chunks[cid], f"{doc_id}: chunk {cid} differs from what was read"
                vec = self.recorded.get(rec.chunk.embed_text())
                assert vec is not None, f"{doc_id}: chunk {cid} holds a vector the embedder never returned for it"
                assert float(np.dot(vec, rec.embedding)) > 1 - 1e-4, f"{doc_id}: chunk {cid} has another chunk's vector"
                by_hash.setdefault(h, set()).add(cid)
            whole = len(by_hash) == 1 and all(ids == set(known[h].chunks) for h, ids in by_hash.items())
            complete = any(states[doc_id].complete(h) for h in by_hash)
            assert complete == whole, (f"{doc_id}: holds {({h[:8]: len(i) for h, i in by_hash.items()})} chunks "
                                       f"by version but doc_states says complete={complete}")
            if whole:
                (h,) = by_hash
                self.check_content(doc_id, known[h], [r.chunk for r in recs.values()])

    # ------------------------------------------------------------------ file rules
    @precondition(lambda self: len(self.files) < 4)
    @rule(data=st.data(), ext=st.sampled_from(["md", "md", "txt", "txt", "pdf"]))
    def add_file(self, data, ext):
        rel = data.draw(st.sampled_from(self._free_names(ext)), label="name")
        self._write(rel, data.draw(contents(ext), label="content"))

    @initialize(data=st.data(), n=st.integers(1, 3), ingest_now=st.booleans())
    def start(self, data, n, ingest_now):
        for _ in range(n):
            self.add_file(data, data.draw(st.sampled_from(["md", "md", "txt", "pdf"]), label="ext"))
        if ingest_now:
            self.successful_ingest(batch=64, rebuild=False)

    @precondition(lambda self: self.files)
    @rule(data=st.data(), how=st.sampled_from(["new", "new", "retouch", "revert", "corrupt"]))
    def edit_file(self, data, how):
        """New content, the same paragraphs in other bytes, an earlier version back, or a broken file."""
        rel = data.draw(st.sampled_from(sorted(self.files)), label="file")
        ext = rel.rsplit(".", 1)[1]
        old = [c for c in self.history[rel] if c.readable()]
        if how == "corrupt":
            content = Content("bad", how=data.draw(st.sampled_from(BAD_FOR[ext]), label="how"))
        elif how == "revert" and old:
            content = data.draw(st.sampled_from(old), label="earlier content")
        elif how == "retouch" and self.files[rel].readable():
            content = retouched(self.files[rel], data.draw(trailers, label="trailer"), data.draw(titles, label="title"))
        else:
            content = data.draw(contents(ext), label="content")
        self._write(rel, content)

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def rename_file(self, data):
        rel = data.draw(st.sampled_from(sorted(self.files)), label="file")
        free = self._free_names(rel.rsplit(".", 1)[1])
        if not free:
            return
        new = data.draw(st.sampled_from(free), label="to")
        (self.corpus / new).parent.mkdir(parents=True, exist_ok=True)
        (self.corpus / rel).rename(self.corpus / new)
        self.files[new] = self.files.pop(rel)
        self.history.setdefault(new, []).append(self.files[new])

    @precondition(lambda self: self.files)
    @rule(data=st.data())
    def delete_file(self, data):
        rel = data.draw(st.sampled_from(sorted(self.files)), label="file")
        (self.corpus / rel).unlink()
        del self.files[rel]

    # ------------------------------------------------------------------ index rules
    @rule(batch=st.sampled_from([1, 2, 64]), rebuild=st.sampled_from([False] * 7 + [True]))
    def ingest(self, batch, rebuild):
        self.successful_ingest(batch, rebuild)

    @rule(data=st.data(), by_path=st.booleans())
    def remove_document(self, data, by_path):
        """What `sofia-qa remove DOC` does, through the CLI itself (in-process, same embedded store)."""
        from assistant.cli import main

        view = self.view()
        if view:
            doc_id = data.draw(st.sampled_from(sorted(view)), label="doc")
            target = next(iter(view[doc_id].values())).chunk.path if by_path else doc_id
        else:
            doc_id, target = None, "nothing.md"
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
            code = main(["remove", target, "--json", "--db", str(self.db), "--collection", self.collection,
                         "--embed-model", self.embedder.name])
        if doc_id is None:
            assert code == 2
            return
        assert code == 0
        assert json.loads(out.getvalue()) == {"removed": doc_id, "chunks": len(view[doc_id])}
        after = self.view()
        assert doc_id not in after
        assert all(after[d].keys() == view[d].keys() for d in after)

    @rule(data=st.data(), where=st.sampled_from(["embedder", "store", "store:upsert", "store:delete"]),
          exc=st.sampled_from(INJECTED), batch=st.sampled_from([1, 2, 3, 64]), recover=st.booleans(),
          rebuild=st.sampled_from([False] * 5 + [True]))
    def ingest_killed(self, data, where, exc, batch, recover, rebuild):
        """An ingest that dies at a random embedder call or Chroma call, optionally followed by a clean run.

        ``store:upsert`` dies as a document is about to be written (between documents), ``store:delete``
        as stale chunks are about to go (inside a document's write, or in the removal of a deleted file)."""
        self.killed_ingest(data, where, exc, batch, recover, rebuild)

    @precondition(lambda self: self.files)
    @rule(data=st.data(), exc=st.sampled_from(INJECTED), then=st.sampled_from(["-", "ingest", "corrupt", "delete"]))
    def kill_inside_a_replacement(self, data, exc, then):
        """New content for an indexed file, then an ingest that dies at its first clean-up: the new version's
        chunks are in, the old version's not yet out (the narrowest window; random kills rarely land in it).
        Then, maybe, the file turns unreadable or is deleted, and a clean ingest runs."""
        indexed = self.view()
        files = [rel for rel in sorted(self.files) if rel in indexed and self.files[rel].readable()]
        if not files:
            return
        rel = data.draw(st.sampled_from(files), label="file")
        ext = rel.rsplit(".", 1)[1]
        self._write(rel, data.draw(contents(ext), label="content"))
        self.killed_ingest(data, "store:delete", exc, 64, False, False)
        if then == "corrupt":
            self._write(rel, Content("bad", how=data.draw(st.sampled_from(BAD_FOR[ext]), label="how")))
        elif then == "delete":
            (self.corpus / rel).unlink()
            del self.files[rel]
        if then != "-":
            self.successful_ingest(batch=64, rebuild=False)

    def killed_ingest(self, data, where, exc, batch, recover, rebuild) -> None:
        disk = self.expectation()
        before = self.view()
        stale = {rel: f for rel, f in disk.items() if f.version is not None and not self._holds(before.get(rel), f)}
        readable = [f for f in disk.values() if f.version is not None]
        to_embed = sum(len(f.version.chunks) for f in (readable if rebuild else stale.values()))
        embedder = RecordingEmbedder(self.embedder, self.recorded)
        col = self.store.col
        fault: RecordingEmbedder | FaultyCollection
        swapped = not (where == "embedder" and to_embed)
        if not swapped:
            fault = embedder
            embedder.fail_at = data.draw(st.integers(1, -(-to_embed // batch)), label="embedder call")
            embedder.exc = exc
            if rebuild:
                before = {}
        else:  # collection calls of a run: doc_states, upsert + get (+ delete) per document, 2 per removal, count
            rebuild = False  # reset() replaces the collection object, and the fault with it
            cleanups = sum(1 for rel, f in stale.items() if set(before.get(rel, {})) - set(f.version.chunks))
            removals = len(set(before) - set(disk))
            deletes = cleanups + removals
            method = where.partition(":")[2] or None
            if (method == "delete" and not deletes) or (method == "upsert" and not stale):
                method = None
            calls = {None: 2 + 2 * len(stale) + cleanups + 2 * removals,
                     "upsert": len(stale), "delete": deletes}[method]
            at = data.draw(st.integers(1, max(1, calls)), label=f"{method or 'any'} call")
            fault = self.store.col = FaultyCollection(col, at, exc, method)
        try:
            report = ingest([self.corpus], store=self.store, embedder=embedder, chunk_tokens=CHUNK_TOKENS,
                            batch=batch, rebuild=rebuild, progress=False, log=lambda msg: None)
        except INJECTED as err:
            assert fault.fired, f"{err!r} escaped without being injected"
            report = None
        finally:
            if swapped:
                self.store.col = col
        if report is not None:  # the fault point lay beyond the last call: a normal run
            assert not fault.fired, "an injected fault was swallowed and the ingest reported success"
            self.check_after_ingest(before, disk, report)
            self.ingests += 1
            return
        self.kills += 1
        self.check_after_kill(before, disk)
        if recover:
            self.successful_ingest(batch=64, rebuild=False)

    def settled(self, doc_id: str, recs: dict[str, Rec]) -> dict[str, Rec]:
        """What a half-replaced document whose file is now unreadable should keep: the newest version that is
        whole in ``recs`` (or ``recs`` as they are when it is whole already or no version is)."""
        groups: dict[str, dict[str, Rec]] = {}
        for cid, rec in recs.items():
            groups.setdefault(rec.chunk.doc_hash, {})[cid] = rec
        whole = {h: g for h, g in groups.items() if set(g) == set(self.versions[doc_id][h].chunks)}
        if len(groups) < 2 or not whole:
            return recs
        return max(whole.values(), key=lambda g: max(r.meta["indexed_at"] for r in g.values()))

    @staticmethod
    def _holds(recs: dict[str, Rec] | None, f: OnDisk) -> bool:
        """The index holds exactly the version of ``f`` on disk (so ingest has nothing to do for it)."""
        return recs is not None and f.version is not None and set(recs) == set(f.version.chunks) \
            and all(r.chunk.doc_hash == f.doc_hash for r in recs.values())

    # ------------------------------------------------------------------ checks
    def successful_ingest(self, batch: int, rebuild: bool) -> None:
        disk = self.expectation()
        before = {} if rebuild else self.view()
        report = ingest([self.corpus], store=self.store, embedder=RecordingEmbedder(self.embedder, self.recorded),
                        chunk_tokens=CHUNK_TOKENS, batch=batch, rebuild=rebuild, progress=False,
                        log=lambda msg: None)
        self.ingests += 1
        self.check_after_ingest(before, disk, report)

    def check_after_ingest(self, before: View, disk: dict[str, OnDisk], report) -> None:
        after = self.view()
        orphans = set(after) - set(disk)
        assert not orphans, f"chunks of files that are gone: {sorted(orphans)}"
        added, updated, unchanged, failed = set(), set(), set(), set()
        for rel, f in disk.items():
            old = before.get(rel)
            if f.version is None:  # unreadable: what was indexed for it stays (its newest whole version)
                failed.add(str(f.path))
                assert (rel in after) == (old is not None), \
                    f"{rel}: unreadable, and indexed went {old is not None} -> {rel in after}"
                if old is not None:
                    want_recs = self.settled(rel, old)
                    assert after[rel].keys() == want_recs.keys() and \
                        all(after[rel][i].same(want_recs[i]) for i in want_recs), \
                        f"{rel}: unreadable now; index went {describe({rel: old})} -> {describe({rel: after[rel]})}"
                    hashes = {r.chunk.doc_hash for r in after[rel].values()}
                    assert len(hashes) == 1 and set(after[rel]) == set(self.versions[rel][hashes.pop()].chunks), \
                        f"{rel}: unreadable now, and it keeps a half-replaced document: {describe({rel: after[rel]})}"
                continue
            want = f.version.chunks
            assert rel in after, f"{rel}: missing from the index"
            assert set(after[rel]) == set(want), \
                f"{rel}: index holds {describe({rel: after[rel]})}, the file gives " \
                f"{sorted((c.start, c.doc_hash[:8]) for c in want.values())}"
            for cid, rec in after[rel].items():
                assert rec.chunk == want[cid], f"{rel}: chunk {cid} is stale or wrong"
            if old is not None and set(old) == set(want) and all(r.chunk.doc_hash == f.doc_hash for r in old.values()):
                unchanged.add(rel)
                assert all(after[rel][i].same(old[i]) for i in old), f"{rel}: unchanged yet rewritten"
            else:
                (updated if old is not None else added).add(rel)
        assert set(report.added) == added and set(report.updated) == updated, (report, added, updated)
        assert set(report.unchanged) == unchanged, (report.unchanged, unchanged)
        assert set(report.removed) == set(before) - set(disk), (report.removed, set(before) - set(disk))
        assert {f.path for f in report.failed} == failed, (report.failed, failed)
        assert report.embedded == sum(len(disk[d].version.chunks) for d in added | updated)
        assert report.chunks == sum(len(v) for v in after.values())

    def check_after_kill(self, before: View, disk: dict[str, OnDisk]) -> None:
        """Only what the killed run was due to change may have changed, each document to a version read."""
        after = self.view()
        assert set(after) <= set(before) | set(disk), f"unknown documents {set(after) - set(before) - set(disk)}"
        for doc_id in set(before) | set(after):
            old, new, f = before.get(doc_id), after.get(doc_id), disk.get(doc_id)
            untouched = new is not None and old is not None and new.keys() == old.keys() \
                and all(new[i].same(old[i]) for i in old)
            if f is None:  # deleted or renamed away: intact or wholly gone
                assert new is None or untouched, f"{doc_id}: a removed file's chunks were partly deleted"
            elif f.version is None:  # unreadable: untouched, or reduced to its newest whole version
                settled = old is not None and new is not None and new.keys() == self.settled(doc_id, old).keys() \
                    and all(new[i].same(old[i]) for i in new)
                assert (new is None and old is None) or untouched or settled, \
                    f"{doc_id}: unreadable, yet its chunks changed"
            elif old is not None and set(old) == set(f.version.chunks) and \
                    all(r.chunk.doc_hash == f.doc_hash for r in old.values()):
                assert untouched, f"{doc_id}: needed no work, yet the killed run changed it"
            elif new is not None:
                want = f.version.chunks
                for cid, rec in new.items():
                    if rec.chunk.doc_hash == f.doc_hash:
                        assert rec.chunk == want.get(cid), f"{doc_id}: chunk {cid} of the new version is wrong"
                    else:
                        assert old is not None and cid in old and rec.same(old[cid]), \
                            f"{doc_id}: chunk {cid} is neither the old one nor of the new version"
                if old is None:  # a first write is all or nothing
                    assert set(new) == set(want), f"{doc_id}: first write left half a document"
