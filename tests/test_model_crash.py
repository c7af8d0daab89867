"""The model in its own process: what it writes is what the model writes in-process, and when that process dies in
the middle of an answer (SIGKILL, SIGSEGV: what an AMX build does on Sapphire Rapids) or stops answering, only that
answer is lost: it becomes the degraded one, the next is whole, the app keeps serving and the CLI says so in a line.
The faults are real signals sent to the real model process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from assistant.llm import ModelCrashed, ModelError, bundled_model_path
from assistant.llm.llamacpp import LlamaCppLLM
from assistant.llm.worker import WorkerLLM, describe_exit
from assistant.types import Answer
from conftest import ROOT, smollm2_path
from test_app import ANSWER_TIMEOUT, QUESTION, build_index, last_message, running_app

GROUNDED = [{"role": "system", "content": "Answer only from the passage. Be brief."},
            {"role": "user", "content": "Passage [1]: The capital of Bulgaria is Sofia.\n\nQuestion: What is the "
                                        "capital? Answer briefly."}]
LONG = [{"role": "user", "content": "Count from 1 to 100, writing every number in words, separated by commas."}]
SIGNALS = [signal.SIGKILL, signal.SIGSEGV]


def worker_processes(**env: str) -> list[int]:
    """Process ids of model workers whose environment holds ``env`` (how a test finds the app's or the CLI's)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if b"assistant.llm.worker" not in (proc / "cmdline").read_bytes():
                continue
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if all(f"{k}={v}".encode() in environ for k, v in env.items()):
            found.append(int(proc.name))
    return found


def wait_for_worker(timeout: float = 300, **env: str) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = worker_processes(**env)
        if pids:
            return pids[0]
        time.sleep(0.1)
    raise AssertionError(f"no model worker with {env} after {timeout} s")


@pytest.fixture
def smol_worker():
    llm = WorkerLLM(smollm2_path(), n_ctx=2048, n_threads=1)
    yield llm
    llm.close()


# ------------------------------------------------------------------------------------------ the worker itself


def test_the_worker_writes_what_the_model_writes_in_this_process(smol_worker):
    here = LlamaCppLLM(smollm2_path(), n_ctx=2048, n_threads=1)
    expected = here.chat(GROUNDED, max_tokens=16)
    got = smol_worker.chat(GROUNDED, max_tokens=16)
    assert got.text == expected.text and got.completion_tokens == expected.completion_tokens
    assert got.token_logprobs == pytest.approx(expected.token_logprobs, abs=1e-3)  # the gate's log-probs come back
    pieces = list(smol_worker.stream(GROUNDED, max_tokens=16))
    assert len(pieces) > 1 and "".join(pieces) == expected.text  # streamed piece by piece
    assert smol_worker.last_stream.text == expected.text and smol_worker.last_stream.token_logprobs
    probs = smol_worker.next_token_probs(GROUNDED, ["Sofia", "NOT"])
    assert probs == pytest.approx(here.next_token_probs(GROUNDED, ["Sofia", "NOT"]), abs=1e-3)
    assert smol_worker.count_tokens("Sofia is the capital.") == here.count_tokens("Sofia is the capital.")


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_a_worker_killed_mid_stream_costs_that_call_and_the_next_starts_a_new_one(smol_worker, sig):
    first = smol_worker.pid
    stream = smol_worker.stream(LONG, max_tokens=200)
    next(stream)
    os.kill(first, sig)
    with pytest.raises(ModelCrashed, match=f"killed by {sig.name} while writing the answer"):
        for _ in stream:
            pass
    assert smol_worker.pid is None and sig.name in smol_worker.last_failure
    assert smol_worker.chat(GROUNDED, max_tokens=8).text.strip()
    assert smol_worker.pid not in (None, first) and smol_worker.starts == 2


def test_a_stream_closed_early_leaves_the_same_worker_ready(smol_worker):
    expected = smol_worker.chat(GROUNDED, max_tokens=12).text
    stream = smol_worker.stream(LONG, max_tokens=200)
    next(stream)
    stream.close()  # the reader went away (a closed browser tab): the worker stops writing
    pid = smol_worker.pid
    assert smol_worker.chat(GROUNDED, max_tokens=12).text == expected
    assert smol_worker.pid == pid and smol_worker.starts == 1


def test_an_error_inside_the_child_is_a_model_error_with_a_short_reason_and_the_child_goes_on(smol_worker):
    with pytest.raises(ModelError) as err:
        smol_worker.count_tokens(None)  # the child's tokenizer raises AttributeError
    assert err.value.reason == "the model failed (AttributeError)" and str(err.value).startswith(err.value.reason + ":")
    pid = smol_worker.pid
    assert smol_worker.count_tokens("hello") > 0 and smol_worker.pid == pid and smol_worker.starts == 1


def test_a_silent_worker_is_stopped_after_the_timeout_and_replaced():
    llm = WorkerLLM(smollm2_path(), n_ctx=2048, n_threads=1, timeout=2)
    try:
        stream = llm.stream(LONG, max_tokens=200)
        next(stream)
        stopped = llm.pid
        os.kill(stopped, signal.SIGSTOP)  # alive but silent, as a process stuck in native code is
        with pytest.raises(ModelError, match="sent nothing for 2 s while writing the answer"):
            for _ in stream:
                pass
        assert llm.chat(GROUNDED, max_tokens=8).text.strip() and llm.pid != stopped
        with pytest.raises(ProcessLookupError):
            os.kill(stopped, 0)  # the stuck one was killed, not left behind
    finally:
        llm.close()


def test_a_damaged_model_file_is_an_error_in_the_parent_not_a_crash(tmp_path):
    bad = tmp_path / "half.gguf"
    bad.write_bytes(smollm2_path().read_bytes()[: 2**20])  # an interrupted download
    with pytest.raises(ModelError, match="half.gguf|while loading the model"):
        WorkerLLM(bad, n_ctx=512, n_threads=1)


def test_exit_codes_are_described_by_their_signal():
    assert describe_exit(-11) == "killed by SIGSEGV" and describe_exit(-9) == "killed by SIGKILL"
    assert describe_exit(3) == "exited with status 3" and describe_exit(None) == "stopped"


# ------------------------------------------------------------------------------------------ answers, app, CLI


@pytest.fixture(scope="module")
def worker_assistant(corpus_index, embedder):
    from assistant.answer import Assistant

    settings, store = corpus_index
    llm = WorkerLLM(bundled_model_path(settings.model_cache), n_ctx=settings.n_ctx, n_threads=settings.threads)
    # drafts streamed, so the test can kill the model once the answer has begun to reach the user
    yield Assistant(settings.with_overrides(stream_drafts=True), store=store, embedder=embedder, llm=llm)
    llm.close()


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_an_answer_whose_model_dies_is_the_degraded_one_and_the_next_is_whole(worker_assistant, sig):
    bot = worker_assistant
    killed, answer = None, None
    for item in bot.ask_stream(QUESTION):
        if isinstance(item, str) and killed is None:
            killed = bot.llm.pid
            os.kill(killed, sig)  # the answer has begun to stream
        if isinstance(item, Answer):
            answer = item
    assert killed is not None, "the answer never streamed"
    assert answer.model_failure == f"the model process was killed by {sig.name} while writing the answer"
    assert sig.name in answer.notice and "passages only" in answer.notice
    assert answer.citations and all(c.quote for c in answer.citations)  # the passages stand in for the answer
    after = bot.ask(QUESTION)
    assert not after.model_failure and "Degraded" not in after.notice
    assert after.citations if not after.refused else after.passages
    assert bot.llm.pid != killed


@pytest.fixture(scope="module")
def index_db(request):
    return build_index(request.config)


def test_ask_exits_non_zero_with_one_line_when_the_model_dies(index_db, tmp_path):
    env = {**os.environ, "SOFIA_QA_DB": str(index_db), "SOFIA_QA_CHROMA_URL": "", "SOFIA_QA_TEST_RUN": tmp_path.name}
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "ask", QUESTION, "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        worker = wait_for_worker(SOFIA_QA_TEST_RUN=tmp_path.name)
        time.sleep(2.0)  # loaded and reading the passages, or still loading: either way in the middle of the answer
        os.kill(worker, signal.SIGSEGV)
        out, err = proc.communicate(timeout=ANSWER_TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 3, err
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("sofia-qa: error: the model process was killed by SIGSEGV")
    assert "sofia-qa doctor" in errors[0]
    data = json.loads(out)
    assert data["model_failure"].startswith("the model process was killed by SIGSEGV") and data["citations"]


@pytest.fixture(scope="module")
def crash_app(tmp_path_factory, index_db):
    tmp = tmp_path_factory.mktemp("crash-app")
    with running_app(tmp, index_db) as (url, folder):
        yield url, folder


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_the_app_keeps_serving_when_its_model_dies_mid_answer(crash_app, sig):
    from gradio_client import Client

    url, tmp = crash_app
    port = url.rsplit(":", 1)[1]
    client = Client(url + "/", verbose=False, analytics_enabled=False, download_files=str(tmp / "downloads"))
    worker = wait_for_worker(SOFIA_QA_PORT=port)
    job = client.submit(QUESTION, [], [], [], api_name="/ask")
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while not any("sqa-reading" in last_message(o[0]) for o in job.outputs()):  # the passages are on screen
        assert time.monotonic() < deadline and not job.done(), "the answer never began"
        time.sleep(0.05)
    os.kill(worker, sig)
    html = last_message(job.result(timeout=ANSWER_TIMEOUT)[0])
    assert f"killed by {sig.name}" in html and "sqa-card" in html, html
    assert httpx.get(url + "/", timeout=30).status_code == 200  # still serving
    html = last_message(client.submit(QUESTION, [], [], [], api_name="/ask").result(timeout=ANSWER_TIMEOUT)[0])
    assert "killed by" not in html and "Degraded" not in html and "sqa-card" in html, html
    assert worker_processes(SOFIA_QA_PORT=port) and worker not in worker_processes(SOFIA_QA_PORT=port)
