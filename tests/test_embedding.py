"""The embedding worker: the app's e5 embeddings come from a child process whose OpenMP threads may spin.
Real model in both processes; the faults are real too (the child is killed, or cannot start)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from ingestion.embedding import E5Embedder, WorkerEmbedder, load_embedder

TEXTS = ["Cluster Sofia – Knowledge City has more than 60 members.", "Клъстерът има 43 юридически лица.", ""]


@pytest.fixture(scope="module")
def local():
    return E5Embedder(threads=2)


def test_worker_gives_the_same_vectors_as_this_process(local):
    w = WorkerEmbedder(local, threads=2)
    try:
        assert np.array_equal(w.embed_query("How many members does CSKC have?"),
                              local.embed_query("How many members does CSKC have?"))
        got = w.embed_passages(TEXTS)
        assert got.shape == (3, local.dim) and np.array_equal(got, local.embed_passages(TEXTS))
        assert w.embed_passages([]).shape == (0, local.dim)
        assert w.count_tokens("Sofia RIS3") == local.count_tokens("Sofia RIS3")
        assert w.failure == ""  # it really came from the child
        assert w._proc is not None and w._proc.poll() is None
    finally:
        w.close()
    assert w._proc is None


def test_a_killed_worker_is_reported_and_this_process_takes_over(local):
    w = WorkerEmbedder(local, threads=2)
    w.embed_query("warm up")
    proc = w._proc
    proc.kill()
    proc.wait()
    with pytest.warns(RuntimeWarning, match=r"embedding worker: it exited \(exit code -9\).*in this process"):
        v = w.embed_query("What is Sofia RIS3?")
    assert np.array_equal(v, local.embed_query("What is Sofia RIS3?"))
    assert "exit code -9" in w.failure
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not at every call
        assert np.array_equal(w.embed_passages(TEXTS[:1]), local.embed_passages(TEXTS[:1]))


def test_a_worker_that_cannot_start_says_why(local, monkeypatch):
    monkeypatch.setattr(sys, "executable", sys.executable + "-missing")
    with pytest.warns(RuntimeWarning, match="could not be started"):
        w = WorkerEmbedder(local, threads=2)
    assert np.array_equal(w.embed_query("fee"), local.embed_query("fee"))


def test_a_worker_that_dies_while_loading_passes_on_what_it_said(local, monkeypatch):
    monkeypatch.setattr(WorkerEmbedder, "module", "ingestion.no_such_worker")
    with pytest.warns(RuntimeWarning, match=r"exited while loading the model.*No module named"):
        w = WorkerEmbedder(local, threads=2)
        w.embed_query("fee")
    assert "No module named" in w.failure


def test_worker_setting(monkeypatch):
    from ingestion.config import Settings

    assert Settings.from_env({}).embed_worker is True
    assert Settings.from_env({"SOFIA_QA_EMBED_WORKER": "0"}).embed_worker is False
    with pytest.raises(ValueError, match="SOFIA_QA_EMBED_WORKER='maybe'"):
        Settings.from_env({"SOFIA_QA_EMBED_WORKER": "maybe"})
    assert isinstance(load_embedder("multilingual-e5-small", 2, True), WorkerEmbedder)


def test_a_request_the_worker_rejects_is_embedded_here_and_the_worker_stays(local):
    w = WorkerEmbedder(local, threads=2)
    try:
        w.embed_query("warm up")
        # a lone surrogate cannot cross the pipe as UTF-8: this process embeds it (or fails) itself
        odd = "fee \ud800"
        try:
            expected = local.embed_query(odd)
        except Exception as exc:  # noqa: BLE001 - whatever this process does, the wrapper must do the same
            with pytest.raises(type(exc)):
                w.embed_query(odd)
        else:
            assert np.array_equal(w.embed_query(odd), expected)
        assert w.failure == "" and w._proc is not None and w._proc.poll() is None
    finally:
        w.close()
