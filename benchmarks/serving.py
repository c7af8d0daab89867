"""Start a server process and wait until it answers: one helper for the tests and the benchmarks.

``start_service`` returns the running process or raises ``ServiceError`` (with the end of its log) after
stopping it; ``serve`` does the same as a context manager and stops the process afterwards. The tests
(``tests/conftest.py::http_service``) turn ``ServiceError`` into a test failure.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import contextmanager
from pathlib import Path


class ServiceError(RuntimeError):
    pass


def stop_process(proc: subprocess.Popen, grace: float = 20) -> None:
    """terminate, then kill after ``grace`` seconds; a process already gone is left alone."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_service(cmd: list[str], probe_url: str, log_path: Path, *, timeout: float = 120, env: dict | None = None,
                  cwd: Path | None = None) -> subprocess.Popen:
    """Start ``cmd`` (output appended to ``log_path``) and wait until ``probe_url`` answers 200."""
    import httpx

    with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    what = " ".join(str(c) for c in cmd[1:3])
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise ServiceError(f"{what} exited with {proc.returncode}:\n{Path(log_path).read_text()[-3000:]}")
        try:
            if httpx.get(probe_url, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            raise ServiceError(f"{what} did not answer {probe_url} in {timeout:.0f} s:\n"
                               f"{Path(log_path).read_text()[-3000:]}")
        time.sleep(0.3)


@contextmanager
def serve(cmd: list[str], probe_url: str, log_path: Path, **kw):
    """``start_service`` as a context manager: yields the process, stops it on exit."""
    proc = start_service(cmd, probe_url, log_path, **kw)
    try:
        yield proc
    finally:
        stop_process(proc)
