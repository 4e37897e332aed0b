"""A stop of a job whose function never returns is bounded (--stop-grace): the run ends interrupted, its
committed results kept and readable, the call in flight lost; headless (SIGTERM) and detached (memtui stop)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.jobs.user_job_support import calls_of, committed, job_env, job_folder, memtui, results, write_items
from tests.support.cli import popen_memtui

DETACHED = re.compile(r"^memtui: run (\w+) detached: pid (\d+), log (\S+); attach with: memtui attach \1$")
HANG_AT = 300


def _items(tmp_path: Path) -> Path:
    texts = [f"t{i}" for i in range(HANG_AT)] + ["hang"] + [f"u{i}" for i in range(50)]
    return write_items(tmp_path / "items.jsonl", texts)


def _wait_for_hang(calls: Path, out: Path) -> None:
    """Until the stuck call has begun, with results committed before it."""
    deadline = time.monotonic() + 120
    while not any(f"i{HANG_AT:04d}" in call for call in calls_of(calls)) or committed(out) == 0:
        assert time.monotonic() < deadline, "the hanging call never began"
        time.sleep(0.1)


def _check_kept(out: Path) -> None:
    kept = committed(out)
    assert 0 < kept <= HANG_AT
    rows = results(out)
    assert len(rows) == kept and all(row["key"] != f"i{HANG_AT:04d}" for row in rows)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_of_a_function_that_never_returns_ends_within_the_grace(tmp_path, sig):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = _items(tmp_path)
    args = ["run", "--job", "jobmod:hang", "--input", items, "--output", out, "--job-batch", "1"]
    proc = popen_memtui(*args, "--headless", "--stop-grace", "1", env=job_env(folder, calls))
    try:
        _wait_for_hang(calls, out)
        proc.send_signal(sig)  # one signal: the old code waited on the call forever
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    assert "did not return within 1 s" in report["reason"] and "lost" in report["reason"]
    assert report["unprocessed_domains"] >= 51
    _check_kept(out)
    again = ["run", "--job", "jobmod:length", "--input", items, "--output", out, "--headless"]
    rerun = memtui(*again, env=job_env(folder, calls))
    assert rerun.returncode == 2 and "holds the results of job jobmod:hang" in rerun.stderr  # the file is not locked


def test_memtui_stop_of_a_detached_job_that_never_returns_is_bounded(tmp_path, runs):
    run_dir, started = runs
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = _items(tmp_path)
    env = job_env(folder, calls, MEMTUI_RUN_DIR=str(run_dir))
    args = ["run", "--job", "jobmod:hang", "--input", items, "--output", out, "--job-batch", "1", "--stop-grace", "1"]
    done = memtui(*args, "--detach", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    match = DETACHED.match(done.stdout.strip())
    assert match, done.stdout
    run_id, pid = match.group(1), int(match.group(2))
    started.append(pid)
    _wait_for_hang(calls, out)
    try:
        stopped = memtui("stop", run_id, env=env, timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("memtui stop waited on the stuck call")
    assert stopped.returncode == 0, stopped.stderr
    assert "ended: interrupted (exit 130)" in stopped.stderr and "did not return within 1 s" in stopped.stderr
    report = json.loads((run_dir / f"{run_id}.report.json").read_text())
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid):
        assert time.monotonic() < deadline, "the detached run outlived its report"
        time.sleep(0.1)
    listed = memtui("ls", "--json", env=env, timeout=120)
    assert listed.returncode == 0 and json.loads(listed.stdout) == [], listed.stdout  # the registry entry is gone
    _check_kept(out)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split("\n")[0]
    except (OSError, IndexError):
        return "zombie"


def test_the_grace_runs_on_the_runners_clock_and_nothing_is_committed_after_it(tmp_path):
    """In-process, on a fake clock (the test never sleeps the grace): the report comes when the clock passes
    the grace, not before; a call that returns after it commits nothing (the report said it was lost)."""
    import threading

    from memtui.jobs.user.executor import FunctionExecutor
    from memtui.jobs.user.items import ItemJob
    from memtui.jobs.user.results import read_results
    from memtui.memory import MemoryConfig, MemoryMonitor
    from memtui.runner import Runner
    from tests.support.fakes import FakeClock

    entered, release = threading.Event(), threading.Event()

    def fn(batch):
        if any(it["text"] == "hang" for it in batch):
            entered.set()
            release.wait(60)
        return [it["text"] for it in batch]

    items = write_items(tmp_path / "items.jsonl", ["a", "b", "hang", "c"])
    clock = FakeClock()
    job = ItemJob(items, tmp_path / "r.sqlite", FunctionExecutor(fn, "t:f", call_items=1))
    monitor = MemoryMonitor(MemoryConfig(batch_size_min=1, batch_size_max=1, sample_interval_s=0.01))
    runner = Runner(job, monitor, clock=clock, sleep=clock.sleep)
    runner.stop_grace_s = 30.0
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("report", runner.run()), daemon=True)
    thread.start()
    assert entered.wait(60), "the hanging call never began"
    runner.stop()
    clock.advance(29)
    assert runner.snapshot().report is None and not runner.abandoned  # within the grace: still waiting
    clock.advance(2)
    deadline = time.monotonic() + 60
    while runner.snapshot().report is None:
        assert time.monotonic() < deadline, "the grace ran out on the clock but no report came"
        time.sleep(0.05)
    report = runner.snapshot().report
    assert runner.abandoned and report.status == "interrupted" and report.exit_code == 130
    assert "did not return within 30 s" in report.reason and "line 3" in report.reason
    release.set()  # the call returns after all: its result stays lost
    thread.join(60)
    assert not thread.is_alive() and box["report"] is report
    assert [r["key"] for r in read_results(tmp_path / "r.sqlite")] == ["i0000", "i0001"]
