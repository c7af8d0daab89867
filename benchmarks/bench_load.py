"""Load benchmark: N concurrent chat clients (``gradio_client``) against the app for a fixed time.

    python benchmarks/bench_load.py --clients 20 --seconds 120            # starts its own app on a free port
    python benchmarks/bench_load.py --url http://127.0.0.1:7860 ...       # or measures a running app
    python benchmarks/bench_load.py --clients 20 --questions 1 --seconds 0 --max-answer-tokens 96
        # the figure in docs/RELIABILITY.md: 20 clients asking one question each at once (default model)

Each client is its own Gradio session. It asks a question from a fixed mix (the app's example questions,
English and Bulgarian), waits for the final answer, and asks the next one until ``--seconds`` have passed
(``--questions N`` stops each client after N questions instead; both may be given). Nothing new is asked
after the deadline; answers in flight are awaited.

For every question it records the latency (submit to final answer), the time spent waiting in the queue,
every queue position the server reported (``Job.status()``: rank and queue size, the "queue: n/m" a browser
shows) and whether the final message is an answer with citation cards, a refusal with the closest passages,
or an error (exception, error notice, degraded mode, anything else). A sampler reads the resident memory of
the app process and all its children from /proc every 0.25 s.

It prints a table and writes ``reports/load.json``: p50/p95/max latency, errors, the largest queue position
seen, peak RSS. The app it starts gets a copy of the index (``--db``, default ``SOFIA_QA_DB``), so uploads or
state never leak into the real one, and ``SOFIA_QA_MAX_ANSWER_TOKENS`` from ``--max-answer-tokens``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "benchmarks"))

from ingestion import config  # noqa: E402,F401  (offline switches first)
from evals.metrics import percentile  # noqa: E402
from app_process import RssSampler, pid_listening_on, serve_app  # noqa: E402  (benchmarks/app_process.py)

QUESTIONS = [  # the app's example questions (app.EXAMPLES), interleaved by persona
    "How does a company apply to join Cluster Sofia – Knowledge City?",
    "What are the ICT sub-priorities of Sofia RIS3?",
    "What does a first-time Gold label assessment cost?",
    "What is the annual membership fee of the cluster?",
    "What is the horizontal policy of the Sofia smart specialisation strategy?",
    "How long is a Bronze label valid?",
    "Кой може да стане член на клъстер „София – град на знанието“?",
    "Кои са двете приоритетни области на иновационната стратегия на София?",
    "Кой издава етикетите за качество на управлението на клъстери?",
]
WARMUP_QUESTION = "What is Sofia RIS3?"
DEFAULT_OUT = ROOT / "reports" / "load.json"


# --------------------------------------------------------------------------- the clients

@dataclass
class Request:
    client: int
    question: str
    submitted: float  # seconds since the run started
    latency: float | None = None  # submit -> final answer, seconds
    queue_wait: float | None = None  # submit -> processing started (None if not seen)
    started: float | None = None  # processing started, seconds since the run started
    finished: float | None = None  # final answer received, seconds since the run started
    outcome: str = "pending"  # answer | refusal (unconfirmed or not in the documents) | error
    error: str = ""
    positions: list[int] = field(default_factory=list)  # 1-based queue positions reported, in order
    queue_sizes: list[int] = field(default_factory=list)
    eta: float | None = None  # the first ETA the server gave, seconds
    server_seconds: float | None = None  # the answer's own total time, from the message footer
    streamed_updates: int = 0


def classify(html: str) -> tuple[str, str]:
    """(outcome, why) of a final assistant message."""
    if "Degraded mode" in html:
        return "error", "degraded mode: the model was unreachable"
    if "Something went wrong" in html or ("sqa-notice" in html and "sqa-card" not in html):
        return "error", re.sub(r"<[^>]+>", " ", html)[:300].strip()
    # decided by the message's classes, not its words: a Bulgarian question gets Bulgarian titles
    if "sqa-unconfirmed" in html:  # declined, with the passage sentences most likely to answer, quoted
        if "sqa-evidence" in html:
            return "refusal", ""
        return "error", "an unconfirmed answer without its quoted passage"
    if "sqa-refused" in html:
        if "sqa-closest" in html:
            return "refusal", ""
        return "error", "a refusal without the closest passages"
    if "sqa-answer" in html and "sqa-card" in html and ">Sources<" in html:
        return "answer", ""
    return "error", "no citation cards in the final message: " + re.sub(r"<[^>]+>", " ", html)[:300].strip()


def last_message(messages) -> str:
    content = (messages or [{}])[-1].get("content", "")
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _drain_statuses(job) -> list:
    """Every status update the job received so far (``Job.status()`` only keeps the latest)."""
    helper = getattr(job, "communicator", None)
    queue = getattr(helper, "updates", None)
    out = []
    if queue is None:
        return [job.status()]
    with helper.lock:
        while True:
            try:
                out.append(queue.get_nowait())
            except Exception:  # asyncio.QueueEmpty
                break
    return [u for u in out if getattr(u, "type", "status") == "status"]


def ask_one(client, question: str, req: Request, timeout: float, origin: float | None = None,
            poll: float = 0.1) -> None:
    """Ask one question through ``/ask``; fill ``req`` with what happened (never raises)."""
    from gradio_client.utils import Status

    t0 = time.monotonic()
    origin = t0 if origin is None else origin
    job = client.submit(question, [], [], [], api_name="/ask")

    def note(update):
        code = getattr(update, "code", None)
        if update.rank is not None and code == Status.IN_QUEUE:
            position = int(update.rank) + 1  # gradio's rank is 0-based; the browser shows rank + 1
            if not req.positions or req.positions[-1] != position:
                req.positions.append(position)
            if update.queue_size is not None and (not req.queue_sizes or req.queue_sizes[-1] != update.queue_size):
                req.queue_sizes.append(int(update.queue_size))
            if req.eta is None and update.eta is not None:
                req.eta = round(float(update.eta), 2)
        if code in (Status.PROCESSING, Status.ITERATING, Status.PROGRESS) and req.queue_wait is None:
            req.queue_wait = time.monotonic() - t0
            req.started = round(time.monotonic() - origin, 3)
        if code == Status.ITERATING:
            req.streamed_updates += 1

    try:
        while not job.done():
            for update in _drain_statuses(job):
                note(update)
            if time.monotonic() - t0 > timeout:
                job.cancel()
                raise TimeoutError(f"no answer after {timeout:.0f} s")
            time.sleep(poll)
        messages, _box = job.result(timeout=5)
        for update in _drain_statuses(job):
            note(update)
        req.latency = time.monotonic() - t0
        req.finished = round(time.monotonic() - origin, 3)
        html = last_message(messages)
        req.outcome, req.error = classify(html)
        m = re.search(r'class="sqa-meta">(\d+(?:\.\d+)?) s', html)
        req.server_seconds = float(m.group(1)) if m else None
    except Exception as exc:  # noqa: BLE001  every failure is a result here
        req.latency = time.monotonic() - t0
        req.outcome, req.error = "error", f"{type(exc).__name__}: {exc}"[:500]


def run_load(url: str, clients: int = 20, seconds: float = 120, questions_per_client: int | None = None,
             pid: int | None = None, timeout: float = 900, questions: list[str] | None = None,
             warmup: bool = True, auth: tuple[str, str] | None = None, log=print) -> dict:
    """Run the load and return the figures (see the module docstring). ``pid``: the app process for RSS
    (default: whatever listens on the URL's port, if it is local)."""
    from gradio_client import Client

    questions = questions or QUESTIONS
    pid = pid if pid is not None else pid_listening_on(urlsplit(url).port or 80)

    def new_client():
        return Client(url.rstrip("/") + "/", verbose=False, analytics_enabled=False, auth=auth,
                      download_files=False)

    warm = None
    if warmup:
        req = Request(client=-1, question=WARMUP_QUESTION, submitted=0.0)
        ask_one(new_client(), WARMUP_QUESTION, req, timeout)
        warm = req
        log(f"warm-up question: {req.outcome} in {req.latency:.1f} s {req.error}")

    load0 = os.getloadavg()
    requests: list[Request] = []
    lock = threading.Lock()
    sessions = [new_client() for _ in range(clients)]  # sessions open before the clock starts
    start = threading.Barrier(clients + 1)
    t_run0 = 0.0

    def worker(i: int):
        client = sessions[i]
        start.wait()
        n = 0
        while True:
            if questions_per_client is not None and n >= questions_per_client:
                return
            if n > 0 and (seconds is None or time.monotonic() - t_run0 >= seconds):
                return
            q = questions[(i + n) % len(questions)]
            req = Request(client=i, question=q, submitted=round(time.monotonic() - t_run0, 3))
            with lock:
                requests.append(req)
            ask_one(client, q, req, timeout, origin=t_run0)
            n += 1

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(clients)]
    with RssSampler(pid) as rss:
        for t in threads:
            t.start()
        t_run0 = time.monotonic()
        start.wait()
        for t in threads:
            t.join()
        wall = time.monotonic() - t_run0
    for c in sessions:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass
    return summarise(requests, clients=clients, seconds=seconds, questions_per_client=questions_per_client,
                     wall=wall, rss=rss, pid=pid, url=url, warm=warm, load0=load0)


def max_overlap(requests: list[Request], slack: float = 0.5) -> int:
    """The most requests seen processing at one time (client-side; ``slack`` seconds of jitter allowed)."""
    spans = sorted((r.started, r.finished) for r in requests if r.started is not None and r.finished is not None)
    best = 0
    for i, (s0, _e0) in enumerate(spans):
        best = max(best, sum(1 for s, e in spans[: i + 1] if s <= s0 and e - slack > s0))
    return best


def summarise(requests: list[Request], *, clients, seconds, questions_per_client, wall, rss, pid, url, warm,
              load0) -> dict:
    done = [r for r in requests if r.latency is not None]
    lat = [r.latency for r in done if r.outcome != "error"]
    waits = [r.queue_wait for r in done if r.queue_wait is not None]
    service = [r.latency - r.queue_wait for r in done if r.queue_wait is not None and r.outcome != "error"]
    errors = [r for r in requests if r.outcome == "error"]
    per_client = {}
    for r in requests:
        per_client.setdefault(r.client, []).append(r)
    rnd = lambda x, n=2: None if x is None else round(x, n)  # noqa: E731
    return {
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "url": url,
        "clients": clients,
        "seconds": seconds,
        "questions_per_client": questions_per_client,
        "requests": len(requests),
        "answers": sum(r.outcome == "answer" for r in requests),
        "refusals": sum(r.outcome == "refusal" for r in requests),
        "errors": len(errors),
        "error_messages": [f"client {r.client}: {r.question[:50]}: {r.error}" for r in errors][:20],
        "wall_seconds": rnd(wall, 1),
        "throughput_per_min": rnd(len(done) / wall * 60 if wall else None),
        "latency_p50": rnd(percentile(lat, 50)),
        "latency_p95": rnd(percentile(lat, 95)),
        "latency_max": rnd(max(lat) if lat else None),
        "latency_min": rnd(min(lat) if lat else None),
        "queue_wait_p50": rnd(percentile(waits, 50)),
        "queue_wait_max": rnd(max(waits) if waits else None),
        "service_p50": rnd(percentile(service, 50)),
        "server_answer_seconds_p50": rnd(percentile([r.server_seconds for r in done if r.server_seconds], 50)),
        "max_parallel_generations": max_overlap(done),
        "max_queue_position": max((max(r.positions) for r in requests if r.positions), default=None),
        "max_queue_size": max((max(r.queue_sizes) for r in requests if r.queue_sizes), default=None),
        "requests_with_position": sum(bool(r.positions) for r in requests),
        "clients_with_position": sum(any(r.positions for r in rs) for rs in per_client.values()),
        "clients_with_answer": sum(all(r.outcome in ("answer", "refusal") for r in rs)
                                   for rs in per_client.values()),
        "streamed": sum(r.streamed_updates > 0 for r in done),
        "app_pid": pid,
        "peak_rss_mb": rnd(rss.peak_total_kb / 1024, 1) if rss.samples and pid else None,
        "peak_rss_main_mb": rnd(rss.peak_main_kb / 1024, 1) if rss.samples and pid else None,
        "rss_at_start_mb": rnd(rss.start_total_kb / 1024, 1) if pid else None,
        "rss_samples": rss.samples,
        "warmup_seconds": rnd(warm.latency) if warm else None,
        "warmup_outcome": warm.outcome if warm else None,
        "host": {"cpus": os.cpu_count(), "loadavg_start": [round(x, 2) for x in load0],
                 "loadavg_end": [round(x, 2) for x in os.getloadavg()],
                 "max_answer_tokens": os.environ.get("SOFIA_QA_MAX_ANSWER_TOKENS"),
                 "model_path": os.environ.get("SOFIA_QA_MODEL_PATH") or "default (bundled Qwen2.5-Coder-1.5B)"},
        "per_request": [asdict(r) | {"latency": rnd(r.latency), "queue_wait": rnd(r.queue_wait)} for r in requests],
    }


def table(res: dict) -> str:
    def fmt(v, unit=""):
        return "–" if v is None else f"{v}{unit}"

    rows = [
        ("clients", fmt(res["clients"])),
        ("duration", f"{fmt(res['seconds'], ' s')} asked, {fmt(res['wall_seconds'], ' s')} wall"
                     + (f", {res['questions_per_client']} question(s) per client" if res["questions_per_client"] else "")),
        ("requests", f"{res['requests']} ({res['answers']} answers, {res['refusals']} refusals, {res['errors']} errors)"),
        ("latency p50 / p95 / max", f"{fmt(res['latency_p50'], ' s')} / {fmt(res['latency_p95'], ' s')} / "
                                    f"{fmt(res['latency_max'], ' s')}"),
        ("queue wait p50 / max", f"{fmt(res['queue_wait_p50'], ' s')} / {fmt(res['queue_wait_max'], ' s')}"),
        ("service time p50", f"{fmt(res['service_p50'], ' s')} (at most {res['max_parallel_generations']} "
                             f"answer(s) generated at a time)"),
        ("throughput", fmt(res["throughput_per_min"], " answers/min")),
        ("max queue position", f"{fmt(res['max_queue_position'])} (largest queue {fmt(res['max_queue_size'])}); "
                               f"{res['clients_with_position']}/{res['clients']} clients saw a position"),
        ("peak RSS (app + children)", f"{fmt(res['peak_rss_mb'], ' MB')} (main process {fmt(res['peak_rss_main_mb'], ' MB')}, "
                                      f"{fmt(res['rss_at_start_mb'], ' MB')} before the load)"),
        ("warm-up answer", f"{fmt(res['warmup_seconds'], ' s')} ({res['warmup_outcome']})"),
        ("load average (start -> end)", f"{res['host']['loadavg_start'][0]} -> {res['host']['loadavg_end'][0]} "
                                        f"on {res['host']['cpus']} CPUs"),
    ]
    w = max(len(k) for k, _ in rows)
    out = [f"{k.ljust(w)}  {v}" for k, v in rows]
    out += [f"  error: {e}" for e in res["error_messages"]]
    return "\n".join(out)


def write_report(res: dict, out: Path = DEFAULT_OUT) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, ensure_ascii=False, indent=2), encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    from ingestion.config import Settings

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=120, help="ask new questions for this long")
    ap.add_argument("--questions", type=int, default=None, help="stop each client after N questions")
    ap.add_argument("--url", help="measure a running app instead of starting one")
    ap.add_argument("--pid", type=int, help="the app's process id for RSS (default: found from the port)")
    ap.add_argument("--auth", help="user:password of a running app with SOFIA_QA_AUTH (with --url)")
    ap.add_argument("--db", type=Path, default=None, help="index to copy for the app (default: SOFIA_QA_DB)")
    ap.add_argument("--max-answer-tokens", type=int, default=None,
                    help="SOFIA_QA_MAX_ANSWER_TOKENS for the app it starts (default: the app's setting)")
    ap.add_argument("--model", help="SOFIA_QA_MODEL_PATH (a GGUF file) for the app it starts (default: the app's)")
    ap.add_argument("--timeout", type=float, default=900, help="per question, seconds")
    ap.add_argument("--no-warmup", action="store_true", help="do not ask one question before the clock starts")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)

    kwargs = dict(clients=args.clients, seconds=args.seconds, questions_per_client=args.questions,
                  timeout=args.timeout, warmup=not args.no_warmup)
    t0 = time.monotonic()
    if args.url:
        auth = tuple(args.auth.split(":", 1)) if args.auth else None
        res = run_load(args.url, pid=args.pid, auth=auth, **kwargs)
    else:
        db = args.db or Settings.from_env().db
        if not (Path(db) / "chroma.sqlite3").exists():
            print(f"no index in {db}: run `sofia-qa ingest` (or `make ingest`) first", file=sys.stderr)
            return 2
        if args.max_answer_tokens:  # os.environ: the app inherits it and the report records it
            os.environ["SOFIA_QA_MAX_ANSWER_TOKENS"] = str(args.max_answer_tokens)
        if args.model:
            os.environ["SOFIA_QA_MODEL_PATH"] = str(Path(args.model).resolve())
        print(f"starting app.py with a copy of {db} ...", flush=True)
        with serve_app(Path(db)) as (url, proc, _):
            print(f"app on {url} (pid {proc.pid}) after {time.monotonic() - t0:.0f} s", flush=True)
            res = run_load(url, pid=proc.pid, **kwargs)
    res["total_seconds"] = round(time.monotonic() - t0, 1)
    print(table(res))
    print(f"written to {write_report(res, args.out)}")
    return 0 if res["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
