"""Load: 20 concurrent chat clients against the real app, with SmolLM2-135M as its model.

``python app.py`` runs as a subprocess (as in test_app.py) with ``SOFIA_QA_MODEL_PATH`` set to the SmolLM2
GGUF, so the test checks the queue wiring in minutes; the default model takes about 40 minutes for the same
load on 2 cores (``python benchmarks/bench_load.py --clients 20 --questions 1 --seconds 0
--max-answer-tokens 96`` measures it; figures in docs/RELIABILITY.md). After one warm-up question,
20 ``gradio_client`` sessions each ask one question at the same moment. The app generates one answer at a
time (``demo.queue(default_concurrency_limit=1)``), so the others wait in the queue and are told their
position. Checked:

- no errors; every client got an answer with citation cards, or a declined one with its quoted passage or the
  closest passages;
- every client was told a queue position, the queue really built up, and never two answers were generated
  at once;
- a browser user waiting behind them sees "queue: n/m" (Chromium, when installed; screenshot in
  test-artifacts/queue.png).

The figures (p50/p95/max latency, queue wait, largest queue position, peak RSS of the app and its children)
go to reports/load-smollm2.json and are printed (``pytest -s``).
"""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import httpx

from conftest import ROOT, smollm2_path
from test_app import build_index, running_app

import bench_load  # benchmarks/ is on sys.path (conftest)

CLIENTS = 20
MAX_ANSWER_TOKENS = 48  # short answers: the load is about queueing, not about long texts
QUESTION_TIMEOUT = 1800  # seconds per question, queue wait included
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
REPORT = ROOT / "reports" / "load-smollm2.json"  # reports/load.json holds the default model's figure


def wait_for_queue(url: str, size: int, done: threading.Event) -> int:
    """Wait until the app's queue holds at least ``size`` events (Gradio's /queue/status); the size seen."""
    seen = 0
    while not done.is_set() and seen < size:
        seen = httpx.get(url + "/gradio_api/queue/status", timeout=10).json().get("queue_size", 0)
        time.sleep(0.2)
    return seen


def browser_sees_queue_position(url: str, done: threading.Event) -> str | None:
    """Open the app in Chromium, ask a question once the clients are queued, return the "queue: n/m" text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 950})
            page.goto(url + "/", wait_until="domcontentloaded")
            page.wait_for_selector("#sqa-question textarea", timeout=120_000)
            page.locator("#sqa-question textarea").fill("What is the annual membership fee of the cluster?")
            if wait_for_queue(url, CLIENTS // 2, done) < CLIENTS // 2:
                return None  # the load was over before the browser was ready
            page.locator("#sqa-ask").click()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not done.is_set():
                text = page.locator("#sqa-chat").inner_text()
                m = re.search(r"queue: \d+/\d+", text)
                if m:
                    ARTIFACTS.mkdir(exist_ok=True)
                    page.screenshot(path=str(ARTIFACTS / "queue.png"))
                    return m.group(0)
                time.sleep(0.2)
            return None
        finally:
            browser.close()  # the page's queued question goes with it


def test_twenty_concurrent_clients(request, tmp_path):

    db = build_index(request.config)
    t0 = time.monotonic()
    env = dict(SOFIA_QA_MAX_ANSWER_TOKENS=str(MAX_ANSWER_TOKENS), SOFIA_QA_MODEL_PATH=str(smollm2_path()))
    with running_app(tmp_path, db, **env) as (url, _):
        started = time.monotonic() - t0
        # the queue configuration users depend on: /ask is queued and shows its progress (the "queue: n/m")
        config = httpx.get(url + "/config", timeout=10).json()
        ask = next(d for d in config["dependencies"] if d.get("api_name") == "ask")
        assert config.get("enable_queue", True) and ask["queue"] is not False
        assert ask["show_progress"] == "full" and ask["trigger_mode"] == "once"

        done = threading.Event()
        seen: dict[str, str | None] = {}
        browser = None
        if CHROMIUM.exists():
            def watch():
                try:
                    seen["text"] = browser_sees_queue_position(url, done)
                except Exception as exc:  # noqa: BLE001  reported below
                    seen["error"] = f"{type(exc).__name__}: {exc}"
            browser = threading.Thread(target=watch, daemon=True)
            browser.start()

        res = bench_load.run_load(url, clients=CLIENTS, seconds=0, questions_per_client=1,
                                  timeout=QUESTION_TIMEOUT, warmup=True, log=lambda msg: print(msg, flush=True))
        done.set()
        if browser is not None:
            browser.join(180)
    res["app_start_seconds"] = round(started, 1)
    res["total_seconds"] = round(time.monotonic() - t0, 1)
    res["browser_queue_text"] = seen.get("text")
    res["host"].update(max_answer_tokens=str(MAX_ANSWER_TOKENS), model_path=env["SOFIA_QA_MODEL_PATH"])
    print("\n" + bench_load.table(res))
    print(f"app start {started:.0f} s, whole test {res['total_seconds']:.0f} s; "
          f"browser saw {seen.get('text') or seen.get('error')!r}")
    bench_load.write_report(res, REPORT)

    assert res["errors"] == 0, "\n".join(res["error_messages"])
    assert res["requests"] == CLIENTS and res["clients_with_answer"] == CLIENTS, res["per_request"]
    # queue positions: every client was told one, and the queue really built up behind one generation
    assert res["clients_with_position"] == CLIENTS, [r["positions"] for r in res["per_request"]]
    assert res["max_queue_position"] >= CLIENTS // 2 and res["max_queue_size"] >= CLIENTS // 2, res
    assert res["max_parallel_generations"] == 1, res["per_request"]
    assert res["latency_p50"] and res["latency_p95"] >= res["latency_p50"]
    assert res["app_pid"] and res["peak_rss_mb"] and res["peak_rss_mb"] >= res["rss_at_start_mb"]
    if browser is not None:
        assert seen.get("text"), f"the browser never showed 'queue: n/m' ({seen.get('error')})"
