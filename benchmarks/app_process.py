"""The app process for the load benchmark: start ``app.py`` on a free port, find a listener's pid, sample RSS."""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from serving import serve  # benchmarks/serving.py, shared with the tests

ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- the app process

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve_app(db: Path, *, env: dict[str, str] | None = None, timeout: float = 600, workdir: Path | None = None):
    """``python app.py`` on a free port with a copy of the index ``db``; yields (url, process, workdir)."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="sofia-qa-load-")) if own else workdir
    index = workdir / "index"
    shutil.copytree(db, index)
    port = free_port()
    full_env = {**os.environ, "SOFIA_QA_DB": str(index), "SOFIA_QA_PORT": str(port), "SOFIA_QA_HOST": "127.0.0.1",
                "SOFIA_QA_UPLOAD_DIR": str(workdir / "uploads"), "SOFIA_QA_REPORT_DIR": str(workdir / "reports"),
                "SOFIA_QA_CHROMA_URL": "", "SOFIA_QA_AUTH": "", **(env or {})}
    url = f"http://127.0.0.1:{port}"
    try:
        with serve([sys.executable, "app.py"], url + "/", workdir / "app.log", timeout=timeout, env=full_env,
                   cwd=ROOT) as proc:
            yield url, proc, workdir
    finally:
        if own:
            shutil.rmtree(workdir, ignore_errors=True)


def pid_listening_on(port: int) -> int | None:
    """The process listening on a local TCP port, from /proc (Linux); None if not found or not visible."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(parts[9])
    if not inodes:
        return None
    for pid_dir in Path("/proc").iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for fd in (pid_dir / "fd").iterdir():
                link = os.readlink(fd)
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    return int(pid_dir.name)
        except OSError:
            continue
    return None


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children.get(p, [])
    return out


class RssSampler:
    """Peak resident memory of a process and its descendants, sampled from /proc in a thread."""

    def __init__(self, pid: int | None, interval: float = 0.25):
        self.pid, self.interval = pid, interval
        self.peak_total_kb = self.peak_main_kb = self.samples = 0
        self.start_total_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> int:
        if self.pid is None:
            return 0
        main = _rss_kb(self.pid)
        total = sum(_rss_kb(p) for p in _descendants(self.pid))
        self.peak_main_kb = max(self.peak_main_kb, main)
        self.peak_total_kb = max(self.peak_total_kb, total)
        self.samples += 1
        return total

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self):
        self.start_total_kb = self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.sample()
