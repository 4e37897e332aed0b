"""A run's entry names its process by the kernel's start count, so a clock step never makes a live run dead.

``ls`` removes the entries of runs that died: a live run taken for dead vanished from ``ls`` and lost its
entry (seen once in CI: ``ls`` listed no run right after ``--detach``).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import psutil
import pytest

from memtui.attach.runs import RunEntry, process_since_boot, process_start


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def entry_for(pid: int, **fields: float) -> RunEntry:
    values = {"start_time": process_start(pid) or 0.0, "since_boot": process_since_boot(pid) or 0.0} | fields
    return RunEntry(id="abc123", pid=pid, mode="cache", input="", cache="", socket="/nowhere/abc123.sock", **values)


def test_a_live_run_stays_alive_when_the_boot_time_is_restepped(sleeper, monkeypatch):
    live = entry_for(sleeper.pid)
    assert live.since_boot > 0 and live.alive()
    real = psutil.boot_time()
    monkeypatch.setattr(psutil._pslinux, "boot_time", lambda: real + 1.0)  # what the kernel shows after a step
    assert abs(process_start(sleeper.pid) - live.start_time) >= 1.0  # the wall-clock start did move
    assert live.alive()


def test_another_process_under_the_same_pid_is_not_the_run(sleeper):
    theirs = entry_for(sleeper.pid, since_boot=process_since_boot(sleeper.pid) - 0.5)
    assert not theirs.alive()
    stale = entry_for(sleeper.pid, since_boot=0.0, start_time=time.time() - 3600)  # an older entry's wall clock
    assert not stale.alive()


def test_an_entry_written_before_since_boot_is_judged_by_the_wall_clock_with_its_slack(sleeper):
    older = entry_for(sleeper.pid, since_boot=0.0, start_time=process_start(sleeper.pid) + 1.0)
    assert older.alive()


def test_a_run_that_ended_is_not_alive():
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert process_since_boot(proc.pid) is None
    assert not entry_for(proc.pid, since_boot=1.0, start_time=1.0).alive()
