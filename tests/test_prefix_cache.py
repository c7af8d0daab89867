"""Saved prompt beginnings (assistant/prefix_cache.py and its use by LlamaCppLLM): the store on its own, then on
real models: SmolLM2-135M for the wiring, the bundled Qwen model through the Assistant. Faults are injected
(a damaged file, an unwritable folder, a state from another model)."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.llm.llamacpp import LlamaCppLLM
from assistant.prefix_cache import PrefixCache, common_prefix
from conftest import smollm2_path

ROOT = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------------ the store alone


def test_common_prefix():
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    assert common_prefix([1, 2], [1, 2, 3]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix(np.array([5, 6], dtype=np.int32), [5, 6]) == 2


@pytest.mark.parametrize("on_disk", [False, True])
def test_the_longest_shared_beginning_wins_and_only_when_longer_than_what_is_held(tmp_path, on_disk):
    cache = PrefixCache(10_000, tmp_path / "states" if on_disk else None)
    cache.put([1, 2, 3], b"abc")
    cache.put([1, 2, 3, 4, 5], b"abcde")
    cache.put([9, 9], b"zz")
    tokens, state, shared = cache.best([1, 2, 3, 4, 7, 8])
    assert list(tokens) == [1, 2, 3, 4, 5] and state == b"abcde" and shared == 4
    assert cache.best([1, 2, 3, 4, 7, 8], more_than=4) is None  # the model already holds 4 of them
    assert cache.best([7, 7]) is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_least_recently_used_states_go_first_when_over_the_byte_bound():
    cache = PrefixCache(10)
    cache.put([1], b"aaaa")
    cache.put([2], b"bbbb")
    assert cache.best([1]) is not None  # [1] is now the most recently used
    cache.put([3], b"cccc")  # 12 bytes > 10: the least recently used, [2], goes
    assert cache.has([1]) and cache.has([3]) and not cache.has([2])
    cache.put([4], b"x" * 11)  # larger than the whole bound: not kept, nothing else lost
    assert not cache.has([4]) and len(cache) == 2


def test_states_outlast_the_process_and_a_damaged_file_is_dropped(tmp_path, caplog):
    folder = tmp_path / "states"
    first = PrefixCache(10_000, folder)
    first.put([1, 2, 3], b"state-one")
    first.put([4, 5, 6], b"state-two")
    files = sorted(folder.glob("*.kv"))
    assert len(files) == 2
    damaged = next(f for f in files if b"state-two" in f.read_bytes())
    damaged.write_bytes(damaged.read_bytes()[:-3])  # cut short, as by a full disk or a killed writer
    with caplog.at_level(logging.WARNING, logger="assistant.prefix_cache"):
        second = PrefixCache(10_000, folder)
    assert second.best([1, 2, 3, 9])[1] == b"state-one"
    assert second.best([4, 5, 6]) is None
    assert not damaged.exists() and str(damaged) in caplog.text and "damaged" in caplog.text


def test_a_folder_that_cannot_be_written_keeps_states_in_memory(tmp_path, monkeypatch, caplog):
    cache = PrefixCache(10_000, tmp_path / "states")

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cache, "_write", full_disk)
    with caplog.at_level(logging.WARNING, logger="assistant.prefix_cache"):
        cache.put([1, 2], b"kept")
    assert cache.best([1, 2, 3])[1] == b"kept" and "No space left" in caplog.text


# ------------------------------------------------------------------------------------------ a real model


PASSAGE = ("Passages:\n\n[1] Labels > Bronze\nA first Bronze label is valid for two years from the month of the "
           "benchmarking interview. The label is awarded by the European Secretariat for Cluster Analysis after an "
           "interview with the cluster manager and a review of the cluster's own documents and figures.")


def ask(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer only from the passages. Be brief."},
            {"role": "user", "content": f"{PASSAGE}\n\nQuestion: {question}\n\nAnswer in one sentence."}]


@pytest.fixture()
def smol_cached(tmp_path):
    return LlamaCppLLM(smollm2_path(), n_ctx=2048, n_threads=1,
                         prefix_cache=PrefixCache(256 * 2**20, tmp_path / "states"))


def test_a_kept_beginning_is_restored_for_the_next_prompt_and_the_text_is_the_same(smol_cached):
    llm = smol_cached
    first = "".join(llm.stream(ask("How long is a Bronze label valid?"), max_tokens=16, prefix=PASSAGE))
    assert llm.prefix_stats["kept"] == 1 and llm.prefix_stats["restored"] == 0 and len(llm.prefixes) == 1
    llm._llm.reset()  # the model forgets what it read; only the saved state can spare the reading
    again = "".join(llm.stream(ask("How long is a Bronze label valid?"), max_tokens=16, prefix=PASSAGE))
    assert again == first
    assert llm.prefix_stats["restored"] == 1 and llm.prefix_stats["kept"] == 1
    assert llm.prefix_stats["tokens_restored"] > 60  # the system text and the passage were not read again
    # another question after the same passage starts from the same state
    llm._llm.reset()
    llm.chat(ask("Who awards the label?"), max_tokens=8)
    assert llm.prefix_stats["restored"] == 2
    assert llm._format is not None  # our tokens matched those the chat handler read, every time


def test_states_on_disk_serve_a_new_process_and_a_state_of_another_model_is_dropped(smol_cached, qwen_llm, caplog):
    smol_cached.chat(ask("How long?"), max_tokens=4, prefix=PASSAGE)
    reopened = LlamaCppLLM(smollm2_path(), n_ctx=2048, n_threads=1,
                             prefix_cache=PrefixCache(256 * 2**20, smol_cached.prefixes.folder))
    reopened.chat(ask("How long?"), max_tokens=4)
    assert reopened.prefix_stats["restored"] == 1

    # a SmolLM2 state filed under the Qwen prompt's tokens (as if a folder were shared by two models)
    _, state, _ = smol_cached.prefixes.best(smol_cached._prompt(ask("How long?"))[0])
    foreign = LlamaCppLLM(qwen_llm.path, n_ctx=2048, prefix_cache=PrefixCache(256 * 2**20))
    foreign.prefixes.put(foreign._prompt(ask("How long?"))[0][:60], state)
    with caplog.at_level(logging.WARNING, logger="assistant.llm.llamacpp"):
        g = foreign.chat(ask("How long is a first Bronze label valid?"), max_tokens=24)
    assert "two years" in g.text.lower() or "2 years" in g.text.lower()
    assert foreign.prefix_stats["restored"] == 0 and len(foreign.prefixes) == 0 and "did not fit" in caplog.text


def test_the_assistant_keeps_the_first_passage_and_answers_the_same_from_it(assistant, qwen_llm):
    """The bundled model through the whole answer path: the state after the first passage is kept; after the
    model forgets its context, the same question restores it and gets the same answer and citations."""
    q = "How much does a first-time Gold label assessment cost?"
    qwen_llm.reset()
    first = assistant.ask(q)
    assert qwen_llm.prefix_stats["kept"] >= 1
    restored = qwen_llm.prefix_stats["tokens_restored"]
    qwen_llm._llm.reset()
    second = assistant.ask(q)
    assert qwen_llm.prefix_stats["tokens_restored"] - restored > 100  # system text and the first passage
    assert not first.refused and "8,250" in first.text
    assert second.text == first.text and second.signals == first.signals
    assert [(c.doc, c.quote) for c in second.citations] == [(c.doc, c.quote) for c in first.citations]


def test_sofia_qa_warm_reads_each_chunk_once(tmp_path):
    """The command on a small index of its own, with SmolLM2 as the model: every chunk read once, then kept."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "labels.md").write_text(
        "---\ntitle: Labels\ndoc_type: cluster-standard\n---\n# Labels\n\n## Bronze\n\nA first Bronze label is valid "
        "for two years.\n\n## Gold\n\nA Gold label assessment costs EUR 8,250 excluding VAT.\n", encoding="utf-8")
    env = {**os.environ, "SOFIA_QA_DB": str(tmp_path / "db"), "SOFIA_QA_MODEL_CACHE": str(tmp_path / "cache"),
           "SOFIA_QA_THREADS": "1"}
    cli = [sys.executable, "-m", "assistant.cli"]
    subprocess.run(cli + ["ingest", str(docs)], env=env, cwd=ROOT, check=True, capture_output=True, timeout=600)
    warm = cli + ["warm", "--json", "--model", str(smollm2_path())]
    first = json.loads(subprocess.run(warm, env=env, cwd=ROOT, check=True, capture_output=True, text=True,
                                      timeout=600).stdout)
    assert first["chunks"] >= 2 and first["read"] == first["chunks"] == first["states"] and first["failed"] == 0
    assert len(list(Path(first["folder"]).glob("*.kv"))) == first["chunks"]
    assert Path(first["folder"]).is_relative_to(tmp_path / "cache")
    again = json.loads(subprocess.run(warm, env=env, cwd=ROOT, check=True, capture_output=True, text=True,
                                      timeout=600).stdout)
    assert again["read"] == 0 and again["states"] == first["chunks"]
    # a budget that holds one state: warm stops rather than push out what it saved, and says so
    one = max(f.stat().st_size for f in Path(first["folder"]).glob("*.kv"))
    small = {**env, "SOFIA_QA_MODEL_CACHE": str(tmp_path / "small"),
             "SOFIA_QA_PREFIX_CACHE_MB": str(math.ceil(1.5 * one / 2**20))}
    run = subprocess.run(warm, env=small, cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = json.loads(run.stdout)
    assert out["states"] == 1 and out["left"] == first["chunks"] - 1
    plain = subprocess.run(warm[:-3] + warm[-2:], env=small, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "SOFIA_QA_PREFIX_CACHE_MB" in plain.stderr and "left" in plain.stderr
