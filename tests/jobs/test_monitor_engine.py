"""MonitorEngine on real child processes that allocate memory step by step.

Each child allocates when told on stdin and answers "ok", so every step is
deterministic; the tests poll the engine's snapshot with a timeout instead of
sleeping. Thresholds sit relative to the child's own baseline RSS.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import psutil
import pytest

from memtui.errors import UsageError
from memtui.events import Event
from memtui.jobs.monitor import engine as engine_module
from memtui.jobs.monitor import targets
from memtui.jobs.monitor.engine import MonitorEngine
from memtui.jobs.monitor.events import TargetActed, TargetBreakerChanged, TargetGone, TargetWarning
from memtui.jobs.monitor.targets import find_matching
from memtui.jobs.monitor.tracker import TargetState
from memtui.memory.breaker import BreakerState
from memtui.memory.config import MemoryConfig
from memtui.memory.pid_probe import PidProbe
from memtui.memory.units import GB, MB

#: "alloc N": N MB of private memory, touched page by page; "shm N PATH": N MB of a /dev/shm file,
#: mapped and touched; "free": drop the private blocks; "exit": leave. Answers "ok" after each.
CHILD = textwrap.dedent("""
    import mmap, os, sys
    blocks, maps = [], []
    def touch(buf):
        for i in range(0, len(buf), 4096):
            buf[i] = 1
    for line in sys.stdin:
        cmd, *arg = line.split()
        if cmd == "alloc":
            blocks.append(bytearray(int(arg[0]) << 20))
            touch(blocks[-1])
        elif cmd == "shm":
            fd = os.open(arg[1], os.O_RDWR | os.O_CREAT, 0o600)
            os.ftruncate(fd, int(arg[0]) << 20)
            maps.append(mmap.mmap(fd, int(arg[0]) << 20))
            touch(maps[-1])
        elif cmd == "free":
            blocks.clear()
        elif cmd == "exit":
            break
        print("ok", flush=True)
""")


class Child:
    def __init__(self, *extra_args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, *extra_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.pid = self.proc.pid
        self.step("alloc 0")
        self.baseline = psutil.Process(self.pid).memory_info().rss

    def send(self, line: str) -> None:
        """Send a step without waiting for its answer (the engine may stop or kill the child mid-step)."""
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self, timeout: float = 10.0) -> None:
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, f"child {self.pid} did not answer within {timeout}s"
        assert self.proc.stdout.readline().strip() == "ok"

    def step(self, line: str, timeout: float = 10.0) -> None:
        self.send(line)
        if line == "exit":
            self.proc.wait(timeout=timeout)
        else:
            self.answer(timeout)

    @property
    def status(self) -> str:
        return psutil.Process(self.pid).status()

    def proc_state(self) -> str:
        with open(f"/proc/{self.pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]

    def kill(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)
                self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def spawn() -> Iterator[Callable[..., Child]]:
    children: list[Child] = []

    def make(*extra_args: str) -> Child:
        children.append(Child(*extra_args))
        return children[-1]

    try:
        yield make
    finally:
        for child in children:
            child.kill()


@pytest.fixture
def shm_path() -> Iterator[str]:
    path = f"/dev/shm/memtui-test-{os.getpid()}-{time.monotonic_ns()}"
    try:
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def config_for(child: Child, *, warning_mb: int = 30, max_mb: int = 80) -> MemoryConfig:
    """Warning and breaker levels this many MB above the child's baseline; short holds."""
    return MemoryConfig(
        warning_memory_gb=(child.baseline + warning_mb * MB) / GB,
        max_memory_gb=(child.baseline + max_mb * MB) / GB,
        reset_hold_s=0.1,
        reset_hold_max_s=0.4,
    )


def make_engine(children: list[Child], config: MemoryConfig, **kw) -> MonitorEngine:
    kw.setdefault("interval_s", 0.05)
    return MonitorEngine([PidProbe(c.pid) for c in children], config, **kw)


def wait_for(predicate: Callable[[], object], what: str, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.01)


class Watch:
    """The engine running in a thread, with every event it published kept in ``events``."""

    def __init__(self, engine: MonitorEngine) -> None:
        self.engine = engine
        self._queue = engine.subscribe()
        self._events: list[Event] = []
        self.report: dict | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.report = self.engine.run()

    @property
    def events(self) -> list[Event]:
        self._events += self._queue.drain()
        return self._events

    def target(self, pid: int):
        return self.engine.snapshot().target(pid)

    def wait_state(self, pid: int, breaker: BreakerState) -> None:
        wait_for(lambda: self.target(pid).breaker is breaker, f"breaker {breaker.value} for pid {pid}")

    def finish(self, timeout: float = 10.0) -> dict:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the engine did not end"
        assert self.report is not None
        return self.report


@pytest.fixture
def watch() -> Iterator[Callable[[MonitorEngine], Watch]]:
    watches: list[Watch] = []

    def start(engine: MonitorEngine) -> Watch:
        w = Watch(engine)
        watches.append(w)
        w.thread.start()
        return w

    try:
        yield start
    finally:
        for w in watches:
            w.engine.stop()
            w.thread.join(10)


def test_breaker_trips_on_the_childs_real_rss_and_nothing_is_signalled(spawn, watch):
    child = spawn()
    w = watch(make_engine([child], config_for(child)))
    child.step("alloc 40")
    w.wait_state(child.pid, BreakerState.WARNING)
    child.step("alloc 60")
    w.wait_state(child.pid, BreakerState.OPEN)
    t = w.target(child.pid)
    assert t.trips == 1 and t.warnings == 1 and t.rss >= child.baseline + 80 * MB
    assert t.peak >= t.rss and t.actions == () and child.status != "stopped"
    child.step("free")
    w.wait_state(child.pid, BreakerState.CLOSED)
    assert w.target(child.pid).peak >= child.baseline + 80 * MB
    warning = next(e for e in w.events if isinstance(e, TargetWarning))
    assert warning.message.startswith(f"⚠️ Memory warning: pid {child.pid} (python")
    opened = [e for e in w.events if isinstance(e, TargetBreakerChanged) and e.new is BreakerState.OPEN]
    assert len(opened) == 1 and opened[0].message.startswith(f"🚨 Circuit breaker WARNING -> OPEN for pid {child.pid}")
    w.engine.stop()
    report = w.finish()
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    (entry,) = report["targets"]
    assert entry["breaker_trips"] == 1 and entry["memory_warnings"] == 1 and entry["actions"] == []
    assert entry["peak_memory_gb"] >= (child.baseline + 80 * MB) / GB - 0.001


def test_stop_policy_really_stops_the_child_and_continues_it_when_its_memory_is_released(spawn, watch, shm_path):
    child = spawn()
    w = watch(make_engine([child], config_for(child, warning_mb=50, max_mb=80), policy="stop"))
    child.step(f"shm 60 {shm_path}")
    child.send("alloc 30")  # crosses the breaker level part way
    wait_for(lambda: child.status == "stopped", "SIGSTOP")
    assert child.proc_state() == "T"
    assert w.target(child.pid).state is TargetState.STOPPED
    # Memory drops while the child is frozen, as when its shared segment is released (or swapped out).
    os.truncate(shm_path, 0)
    wait_for(lambda: child.status != "stopped", "SIGCONT")
    child.answer()  # it really runs again: the step it was frozen in completes
    w.wait_state(child.pid, BreakerState.CLOSED)
    actions = [(a.action, a.signal, a.by, a.ok) for a in w.target(child.pid).actions]
    assert actions == [("stop", "SIGSTOP", "breaker", True), ("resume", "SIGCONT", "breaker", True)]
    acted = [e.message for e in w.events if isinstance(e, TargetActed)]
    assert acted[0].startswith(f"⏸️ Sent SIGSTOP to pid {child.pid}") and "breaker open at" in acted[0]
    assert acted[1].startswith(f"▶️ Sent SIGCONT to pid {child.pid}") and "back below reset level" in acted[1]


def test_operator_resume_wins_over_the_open_breaker(spawn, watch):
    child = spawn()
    w = watch(make_engine([child], config_for(child), policy="stop"))
    child.send("alloc 100")
    wait_for(lambda: child.status == "stopped", "SIGSTOP")
    action = w.engine.resume_target(child.pid)
    assert action.ok and action.by == "operator"
    rounds = w.engine.snapshot().rounds
    wait_for(lambda: w.engine.snapshot().rounds >= rounds + 3, "three more rounds")
    assert child.status != "stopped" and w.target(child.pid).breaker is BreakerState.OPEN
    assert [a.action for a in w.target(child.pid).actions] == ["stop", "resume"]


def test_raising_one_targets_thresholds_releases_it(spawn, watch):
    child = spawn()
    other = spawn()
    w = watch(make_engine([child, other], config_for(child), policy="stop"))
    child.send("alloc 100")
    wait_for(lambda: child.status == "stopped", "SIGSTOP")
    w.engine.set_thresholds(warning="1.5GB", max="2GB", pid=child.pid)
    wait_for(lambda: child.status != "stopped", "SIGCONT after the thresholds went up")
    snap = w.engine.snapshot()
    assert snap.target(child.pid).own_thresholds and snap.target(child.pid).max_bytes == 2 * GB
    assert not snap.target(other.pid).own_thresholds and snap.max_bytes == config_for(child).max_bytes


def test_memtui_resumes_what_it_stopped_when_the_watch_ends(spawn, watch):
    child = spawn()
    w = watch(make_engine([child], config_for(child), policy="stop"))
    child.send("alloc 100")
    wait_for(lambda: child.status == "stopped", "SIGSTOP")
    w.engine.stop()
    report = w.finish()
    assert child.status != "stopped" and report["targets"][0]["state"] == "running"
    assert [(a["action"], a["by"]) for a in report["targets"][0]["actions"]] == [
        ("stop", "breaker"),
        ("resume", "memtui"),
    ]


def test_term_policy_terminates_the_child_and_the_watch_ends(spawn, watch):
    child = spawn()
    w = watch(make_engine([child], config_for(child), policy="term"))
    child.send("alloc 100")
    assert child.proc.wait(timeout=10) == -signal.SIGTERM
    report = w.finish()
    assert report["status"] == "success" and report["end_reason"] == "all targets exited"
    (entry,) = report["targets"]
    assert entry["state"] == "exited" and [a["signal"] for a in entry["actions"]] == ["SIGTERM"]


def test_a_child_that_exits_mid_watch_is_shown_as_exited_and_the_watch_goes_on(spawn, watch):
    leaving, staying = spawn(), spawn()
    w = watch(make_engine([leaving, staying], config_for(leaving)))
    wait_for(lambda: w.target(leaving.pid).samples >= 2, "two samples")
    leaving.step("exit")
    gone = wait_for(lambda: [e for e in w.events if isinstance(e, TargetGone)], "the exit event")
    assert gone[0].message.startswith(f"👋 pid {leaving.pid} (python")
    assert "exited" in gone[0].message and "still watching 1" in gone[0].message
    samples = w.target(staying.pid).samples
    wait_for(lambda: w.target(staying.pid).samples >= samples + 2, "the other target still sampled")
    assert w.target(leaving.pid).state is TargetState.EXITED
    w.engine.stop()
    report = w.finish()
    assert [t["state"] for t in report["targets"]] == ["exited", "running"]
    assert report["exit_code"] == 130


def test_duration_ends_the_watch_with_a_report(spawn):
    child = spawn()
    t0 = time.monotonic()
    report = make_engine([child], config_for(child), interval_s=0.05, duration_s=0.3).run()
    assert 0.3 <= time.monotonic() - t0 < 2
    assert report["status"] == "success" and report["end_reason"] == "duration reached"
    assert report["exit_code"] == 0 and report["interval_s"] == 0.05
    assert 0.3 <= report["duration_s"] < 1 and report["rounds"] >= 4
    (entry,) = report["targets"]
    assert entry["pid"] == child.pid and entry["state"] == "running" and entry["samples"] == report["rounds"]
    assert entry["peak_memory_gb"] > 0 and entry["breaker_trips"] == 0 and entry["actions"] == []


def test_operator_commands_pause_resume_terminate(spawn, watch):
    child = spawn()
    w = watch(make_engine([child], config_for(child)))
    assert w.engine.pause_target(child.pid).ok
    wait_for(lambda: child.proc_state() == "T", "the pause")
    wait_for(lambda: w.target(child.pid).state is TargetState.STOPPED, "the stopped state")
    assert w.target(child.pid).note == "paused by the operator"
    w.engine.resume_target(child.pid)
    child.step("alloc 1")
    w.engine.terminate_target(child.pid)
    assert child.proc.wait(timeout=10) == -signal.SIGTERM
    with pytest.raises(UsageError, match="is not watched"):
        w.engine.pause_target(999999)
    report = w.finish()
    assert [a["action"] for a in report["targets"][0]["actions"]] == ["stop", "resume", "terminate"]


def test_match_picks_up_processes_that_start_later(spawn, watch, monkeypatch):
    monkeypatch.setattr(engine_module, "RESCAN_S", 0.05)
    # The children here are this test process's own, which --match never picks for memtui
    # (test_monitor_safety shows that); here the test stands in for an unrelated parent.
    monkeypatch.setattr(targets, "memtui_lineage", lambda: {os.getpid(), *(p.pid for p in psutil.Process().parents())})
    token = f"memtui-match-{time.monotonic_ns()}"
    first = spawn(token)
    probes = find_matching(token, children=False)
    assert [p.pid for p in probes] == [first.pid]
    engine = MonitorEngine(
        probes,
        config_for(first),
        interval_s=0.05,
        end_when_all_exit=False,
        rescan=lambda known: find_matching(token, False, skip=known),
    )
    w = watch(engine)
    second = spawn(token)
    wait_for(lambda: w.target(second.pid), "the new match")
    first.step("exit")
    wait_for(lambda: w.target(first.pid).state is TargetState.EXITED, "the exit")
    assert w.thread.is_alive()  # a --match watch waits for new matches instead of ending
