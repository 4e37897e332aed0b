"""``memtui run --mode monitor`` as a user runs it: a real subprocess watching a real child."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.support.cli import memtui, popen_memtui

#: Holds 20 MB until its stdin closes.
SLEEPER = (
    "import sys\nb = bytearray(20 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\n"
    "print('ok', flush=True)\nsys.stdin.read()"
)

LINE = re.compile(
    r"^INFO:memtui:🔍 pid (\d+) python -c import sys b = bytearray\(20 <…: "
    r"\d+\.\d\dGB \((\?|[+-]\d+\.\d)MB/s, peak \d+\.\d\dGB\) breaker closed( · USS \d+\.\d\dGB)?$"
)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", SLEEPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ok"
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_a_pid_that_does_not_exist_is_one_line_and_exit_2():
    out = memtui("run", "--mode", "monitor", "--pid", "999999", "--headless", timeout=60)
    assert out.returncode == 2
    assert out.stderr.splitlines() == ["memtui: error: no process with pid 999999; check the pid (ps -p 999999)"]
    assert "Traceback" not in out.stderr and out.stdout == ""


def test_a_pattern_that_matches_nothing_is_exit_2():
    out = memtui("run", "--mode", "monitor", "--match", "no-such-process-zq9x", "--headless", timeout=60)
    assert out.returncode == 2
    assert out.stderr.startswith("memtui: error: no process matches 'no-such-process-zq9x'")
    assert len(out.stderr.splitlines()) == 1


def test_headless_lines_duration_and_report(sleeper, tmp_path):
    report_path = tmp_path / "monitor.json"
    out = memtui(
        "run",
        "--mode",
        "monitor",
        "--pid",
        str(sleeper.pid),
        "--headless",
        "--monitor-interval",
        "0.2",
        "--duration",
        "0.9",
        "--report",
        report_path,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("INFO:memtui:🔍 pid")]
    assert 4 <= len(lines) <= 6, out.stderr  # one per interval
    for line in lines:
        match = LINE.match(line)
        assert match, line
        assert int(match.group(1)) == sleeper.pid
    assert "MB/s" in lines[-1] and "?MB/s" not in lines[-1]  # a rate once there are three samples (a fitted slope)
    report = json.loads(out.stdout)
    assert report == json.loads(report_path.read_text())
    assert report["status"] == "success" and report["end_reason"] == "duration reached"
    assert report["interval_s"] == 0.2 and 0.9 <= report["duration_s"] < 2
    (target,) = report["targets"]
    assert target["pid"] == sleeper.pid and target["name"].startswith("python")
    assert target["peak_memory_gb"] >= 20 / 1024 and target["memory_warnings"] == 0
    assert target["breaker_trips"] == 0 and target["actions"] == [] and target["state"] == "running"
    assert report["max_memory_gb"] == 1.5 and report["limit_source"]


def test_ctrl_c_ends_the_watch_with_exit_130_and_a_report(sleeper):
    proc = popen_memtui(
        "run", "--mode", "monitor", "--pid", str(sleeper.pid), "--headless", "--monitor-interval", "0.1"
    )
    try:
        deadline = time.monotonic() + 30
        for line in proc.stderr:  # wait until it is really watching
            if line.startswith("INFO:memtui:🔍 pid"):
                break
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(stdout)
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    assert report["targets"][0]["pid"] == sleeper.pid
