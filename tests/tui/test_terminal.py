"""run_tui on a real pseudo-terminal, in a child process: what an operator's SSH session does.

The child runs a real Runner (fake executor) through ``run_tui``; the test types
into the terminal, or hangs it up, and checks the exit code, the report and the
SQLite file.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import sqlite3
import struct
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

CHILD = """
import json, sys
from pathlib import Path
from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor
from memtui.runner import Runner
from memtui.faces.tui import run_tui
from tests.support.executors import FakeExecutor
from tests.support.inputs import write_input

tmp = Path(sys.argv[1])
source = write_input(tmp / "responses.jsonl", domains=int(sys.argv[2]), per_domain=4)
job = CacheJob(source, tmp / "cache.sqlite", FakeExecutor(sub_batch=2, delay_s=0.02), model_id="fake")
runner = Runner(job, MemoryMonitor(MemoryConfig()))
runner.open()
report = run_tui(runner)
(tmp / "report.json").write_text(json.dumps(report.to_dict()))
sys.exit(report["exit_code"])
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux pty")


class Terminal:
    """A child process on the slave side of a pty, 80x24, with its output drained continuously."""

    def __init__(self, tmp: Path, domains: int = 60, *, argv: list[str] | None = None, cwd: Path = ROOT) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # the child: a session leader whose controlling terminal is the pty
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
            os.chdir(cwd)
            os.environ["TERM"] = "xterm-256color"
            os.execv(sys.executable, argv or [sys.executable, "-c", CHILD, str(tmp), str(domains)])
        self.pid, self.fd = pid, fd
        self.output = bytearray()
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def wait_for_text(self, text: bytes, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"{text!r} never appeared on the terminal"
            time.sleep(0.05)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def hang_up(self) -> None:
        os.close(self.fd)

    def exit_code(self, timeout: float = 60.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, 9)
        raise AssertionError("the TUI did not exit")


def committed(tmp: Path) -> int:
    con = sqlite3.connect(tmp / "cache.sqlite")
    try:
        return con.execute("SELECT COUNT(*) FROM domains").fetchone()[0]
    finally:
        con.close()


def wait_for_domains(term: Terminal, tmp: Path, n: int, timeout: float = 60.0) -> None:
    """The screen is up, and the cache holds ``n`` finished domains (the GC log holds no batch lines)."""
    term.wait_for_text(b"GC log")
    deadline = time.monotonic() + timeout
    while committed(tmp) < n:
        assert time.monotonic() < deadline, f"{n} domains never committed"
        time.sleep(0.05)


def test_q_then_y_on_a_terminal_stops_commits_and_exits_130(tmp_path: Path):
    term = Terminal(tmp_path)
    wait_for_domains(term, tmp_path, 10)  # two batches of 5
    assert b"\x1b[?1000h" not in term.output, "no mouse tracking: the terminal's own text selection keeps working"
    term.type(b"q")
    term.wait_for_text(b"Stop the job and quit?")
    term.type(b"y")
    assert term.exit_code() == 130
    term.hang_up()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "interrupted" and committed(tmp_path) == report["domains_done"] >= 10


def test_a_dropped_terminal_stops_cleanly_and_still_reports(tmp_path: Path):
    """SSH drops: the kernel hangs the terminal up. The job commits, the process exits, no hang."""
    term = Terminal(tmp_path)
    wait_for_domains(term, tmp_path, 10)  # two batches of 5
    term.hang_up()
    assert term.exit_code() == 130
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["status"] == "interrupted" and committed(tmp_path) == report["domains_done"] >= 10


def test_a_burst_in_one_write_fills_the_dialog_its_first_key_opens(tmp_path: Path):
    """``t0.9<Tab>1.4<Enter>`` as one read of the terminal (a paste, a slow SSH link): the keys after t go
    into the thresholds dialog, in order; then ``qy`` in one write asks and confirms."""
    term = Terminal(tmp_path, domains=600)
    wait_for_domains(term, tmp_path, 5)
    term.type(b"t0.9\t1.4\r")
    term.wait_for_text(b"0.90GB")
    term.type(b"qy")
    assert term.exit_code() == 130
    term.hang_up()
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["warning_memory_gb"], report["max_memory_gb"]) == (0.9, 1.4), report
    assert report["status"] == "interrupted"


HANGING_JOB = """
import threading

def work(items):
    if any(item["id"] >= 5 for item in items):
        threading.Event().wait()  # a call that never returns: a stuck network read, a deadlock
    return [item["id"] * 2 for item in items]
"""


def test_a_job_whose_function_never_returns_quits_from_the_terminal_after_the_grace(tmp_path: Path):
    """The real CLI on a pty: q then y, the stop's grace runs out, the screen is given back and the process
    exits 130 with the report (asyncio's exit joined the stuck thread for ever: a blank screen, no exit)."""
    (tmp_path / "hang.py").write_text(HANGING_JOB)
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(20)))
    results, report = tmp_path / "r.sqlite", tmp_path / "report.json"
    argv = [sys.executable, "-m", "memtui", "run", "--job", "hang:work", "--input", str(items)]
    argv += ["--output", str(results), "--job-batch", "1", "--stop-grace", "1", "--report", str(report)]
    term = Terminal(tmp_path, argv=argv, cwd=tmp_path)
    term.wait_for_text(b"GC log")
    deadline = time.monotonic() + 60
    while not results.exists() or _rows(results) < 5:  # the first batch (ids 0-4) committed; the next hangs
        assert time.monotonic() < deadline, "the first batch was never committed"
        time.sleep(0.05)
    term.type(b"q")
    term.wait_for_text(b"Stop the job and quit?")
    term.type(b"y")
    assert term.exit_code() == 130
    assert term.output.rfind(b"\x1b[?1049l") > term.output.rfind(b"\x1b[?1049h")  # the shell's screen is back
    term.hang_up()
    done = json.loads(report.read_text())
    assert done["status"] == "interrupted" and "did not return within 1 s" in done["reason"]
    from memtui import read_results

    assert [(row["key"], row["result"]) for row in read_results(results)] == [(i, i * 2) for i in range(5)]


def _rows(results: Path) -> int:
    con = sqlite3.connect(f"file:{results}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # not made yet
        return 0
    finally:
        con.close()
