"""Monitor-mode pieces on fakes: growth rate, time to limit, USS budget, policy, labels, failures."""

from __future__ import annotations

import os
import subprocess
import types

import psutil
import pytest

from memtui.errors import ConfigError, UsageError
from memtui.jobs.monitor.engine import MonitorEngine
from memtui.jobs.monitor.events import TargetActed, TargetGone, target_line
from memtui.jobs.monitor.intervene import Policy, decide, signal_target
from memtui.jobs.monitor.targets import matcher, memtui_lineage, probe_pid, top_users
from memtui.jobs.monitor.tracker import GROWTH_WINDOW_S, Action, TargetState, TargetTracker, short_label
from memtui.memory.breaker import BreakerState, BreakerTransition
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import seconds_to_level
from memtui.memory.pid_probe import PidSample, ProcessAccessDenied
from memtui.memory.units import GB, MB
from tests.support.fakes import FakeClock

CONFIG = MemoryConfig(max_memory_gb=1.5, warning_memory_gb=1.0, reset_hold_s=0.01, reset_hold_max_s=0.02)


def Clock() -> FakeClock:
    """The suite's fake clock, starting at 100 s."""
    return FakeClock(100.0)


class FakeProc:
    def __init__(self, pid: int, uid: int | None = None) -> None:
        self.pid = pid
        self.uid = os.getuid() if uid is None else uid

    def uids(self):
        return types.SimpleNamespace(real=self.uid, effective=self.uid, saved=self.uid)

    def name(self) -> str:
        return "fake"


class FakeProbe:
    """Scripted RSS (the last value sticks); ``error`` makes every sample raise it."""

    def __init__(self, pid: int = 4242, rss: list[int] = (), error: Exception | None = None) -> None:
        self.pid, self.name, self.cmdline, self.children = pid, "python", "/usr/bin/python3 /srv/app/train.py", False
        self.script = list(rss) or [100 * MB]
        self.error = error
        self.process = FakeProc(pid)

    def sample(self, *, detail: bool = False, ppids=None) -> PidSample:
        if self.error:
            raise self.error
        rss = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return PidSample(rss=rss, uss=None, pss=None, processes=1, status="sleeping")

    def processes(self, ppids=None):
        return [FakeProc(self.pid)]


def sample(rss: int, **kw) -> PidSample:
    return PidSample(rss=rss, uss=kw.pop("uss", None), pss=None, processes=1, status=kw.pop("status", "sleeping"), **kw)


def test_growth_rate_and_time_to_the_breaker_level():
    clock = Clock()
    tracker = TargetTracker(FakeProbe(), CONFIG, clock=clock, interval_s=1.0)
    for rss in (100 * MB, 110 * MB, 120 * MB):
        tracker.record(sample(rss), 0.0)
        clock.t += 1
    clock.t -= 1
    snap = tracker.snapshot()
    assert snap.rate_bps == pytest.approx(10 * MB)
    assert snap.seconds_to_limit == pytest.approx((1.5 * GB - 120 * MB) / (10 * MB))
    assert snap.peak == 120 * MB and snap.samples == 3


def test_rate_forgets_samples_older_than_the_window_and_eta_needs_growth():
    clock = Clock()
    tracker = TargetTracker(FakeProbe(), CONFIG, clock=clock, interval_s=1.0)
    tracker.record(sample(10 * MB), 0.0)  # long ago: a spike that is over
    clock.t += 60
    for rss in (500 * MB, 450 * MB, 400 * MB):
        tracker.record(sample(rss), 0.0)
        clock.t += 2.5
    snap = tracker.snapshot()
    assert snap.rate_bps == pytest.approx(-20 * MB)
    assert snap.seconds_to_limit is None and snap.peak == 500 * MB


def test_a_target_s_time_to_the_breaker_follows_the_trend_not_its_sawtooth():
    """The engine's estimator (a fitted slope, memory.monitor.seconds_to_level), not first versus last sample."""
    clock = Clock()
    tracker = TargetTracker(FakeProbe(), CONFIG, clock=clock, interval_s=1.0)
    for t in range(28):  # a flat run swinging 0.55 <-> 0.85 GB every 7 s; first vs last said 43 s
        tracker.record(sample(int((0.55 + 0.3 * ((t % 7) / 6)) * GB)), 0.0)
        clock.t += 1
    snap = tracker.snapshot()
    assert snap.seconds_to_limit is None or snap.seconds_to_limit > 100, snap.seconds_to_limit  # fitted: 119 s
    assert tracker.snapshot().seconds_to_limit == seconds_to_level(
        snap.history, snap.rss, snap.max_bytes, max(GROWTH_WINDOW_S, 3 * tracker.interval_s), 2 * tracker.interval_s
    )


def test_uss_is_read_only_while_it_fits_the_budget():
    tracker = TargetTracker(FakeProbe(), CONFIG, clock=Clock(), interval_s=1.0)
    assert tracker.wants_detail()  # never measured: measure once
    tracker.record(sample(100 * MB, detail_cost_s=0.001), 0.0)
    assert tracker.wants_detail()  # 1 ms of a 1 s interval
    tracker.record(sample(3 * GB), 0.0)
    assert not tracker.wants_detail()  # scaled to 3 GB: ~31 ms, over 2% of the interval
    tracker.record(sample(100 * MB), 0.0)
    assert tracker.wants_detail()
    tracker.record(sample(100 * MB, detail_denied=True), 0.0)
    assert not tracker.wants_detail()


def t(old: BreakerState, new: BreakerState) -> BreakerTransition:
    return BreakerTransition(old=old, new=new, rss=int(1.6 * GB), at=0.0, reason="")


@pytest.mark.parametrize(
    "policy, old, new, held_by, expected",
    [
        (Policy.NONE, BreakerState.WARNING, BreakerState.OPEN, None, None),
        (Policy.STOP, BreakerState.WARNING, BreakerState.OPEN, None, "stop"),
        (Policy.STOP, BreakerState.WARNING, BreakerState.OPEN, "operator", None),  # already paused by hand
        (Policy.TERM, BreakerState.CLOSED, BreakerState.OPEN, None, "terminate"),
        (Policy.STOP, BreakerState.OPEN, BreakerState.HALF_OPEN, "breaker", "resume"),
        (Policy.STOP, BreakerState.OPEN, BreakerState.HALF_OPEN, "operator", None),  # the operator's pause stands
        (Policy.NONE, BreakerState.OPEN, BreakerState.HALF_OPEN, None, None),
        (Policy.STOP, BreakerState.CLOSED, BreakerState.WARNING, None, None),
    ],
)
def test_policy_decisions(policy, old, new, held_by, expected):
    decision = decide(policy, t(old, new), held_by, CONFIG.reset_bytes, CONFIG.max_bytes)
    assert (decision[0] if decision else None) == expected


def test_short_label():
    assert short_label("python3", "/usr/bin/python3 /home/me/train.py --epochs 3") == "python3 train.py --epochs 3"
    assert short_label("postgres", "") == "postgres"
    assert short_label("python", "python -c 'import x;\n  y()'") == "python -c 'import x; y()'"
    assert len(short_label("x", "x " + "a" * 100)) == 40


def test_target_line_says_stopped_and_time_to_limit():
    clock = Clock()
    tracker = TargetTracker(FakeProbe(pid=7), CONFIG, clock=clock, interval_s=1.0)
    tracker.record(sample(int(0.5 * GB)), 0.0)
    clock.t += 5
    tracker.record(sample(int(0.5 * GB) + 50 * MB), 0.0)
    clock.t += 5
    tracker.record(sample(int(0.5 * GB) + 100 * MB, uss=int(0.4 * GB)), 0.0)
    assert target_line(tracker.snapshot()) == (
        "🔍 pid 7 python3 train.py: 0.60GB (+10.0MB/s, peak 0.60GB) "
        "breaker closed · USS 0.40GB · breaker level in 1m32s"
    )
    tracker.add_action(Action(at="", elapsed_s=1.0, action="stop", signal="SIGSTOP", reason="", by="operator", ok=True))
    tracker.held_by = "operator"
    snap = tracker.snapshot()
    assert snap.state is TargetState.STOPPED  # at once, not only after the next sample
    assert "· paused by the operator" in target_line(snap)
    clock.t += 1
    tracker.record(sample(int(0.6 * GB)), 0.0)
    assert tracker.snapshot().state is TargetState.RUNNING  # someone else sent SIGCONT: the sample wins


def run_engine(probes, policy=Policy.NONE, send=None, **kw):
    sent = []
    engine = MonitorEngine(
        probes,
        CONFIG,
        interval_s=0.01,
        duration_s=0.15,
        policy=policy,
        send=send or (lambda proc, sig: sent.append((proc.pid, sig))),
        **kw,
    )
    events = engine.subscribe()
    report = engine.run()
    return engine, report, events.drain(), sent


def test_without_the_flag_nothing_is_ever_signalled():
    _, report, _, sent = run_engine([FakeProbe(rss=[100 * MB, 2 * GB])])
    assert report["breaker_trips"] == 1 and report["memory_warnings"] == 1
    assert sent == [] and report["actions"] == 0


def test_an_unreadable_target_is_shown_as_access_denied_and_the_watch_goes_on():
    denied = FakeProbe(pid=1, error=ProcessAccessDenied(1, "pid 1: access denied"))
    engine, report, events, _ = run_engine([denied, FakeProbe(pid=2)], end_when_all_exit=True)
    assert engine.snapshot().target(1).state is TargetState.DENIED
    assert [t["state"] for t in report["targets"]] == ["access denied", "running"]
    gone = [e.message for e in events if isinstance(e, TargetGone)]
    assert gone == [
        "🔒 pid 1 (python3 train.py): access denied: run memtui as its owner or root to read it; "
        "peak 0.00GB; still watching 1"
    ]
    assert report["end_reason"] == "duration reached"


def test_a_signal_that_fails_is_recorded_not_raised():
    def refuse(proc, sig):
        raise psutil.AccessDenied(proc.pid)

    _, report, events, _ = run_engine([FakeProbe(rss=[2 * GB])], policy=Policy.STOP, send=refuse)
    (action,) = report["targets"][0]["actions"]
    assert action["ok"] is False and action["error"] == "permission denied for pid 4242"
    (acted,) = [e for e in events if isinstance(e, TargetActed)]
    assert acted.message.startswith("❌ Could not send SIGSTOP to pid 4242 (python3 train.py) by the breaker policy")


def test_memtui_never_signals_itself_even_inside_a_watched_tree_and_says_so():
    tree = FakeProbe(pid=4242)
    tree.processes = lambda ppids=None: [FakeProc(4242), FakeProc(os.getpid()), FakeProc(4243)]
    sent = []
    outcome = signal_target(tree, "stop", send=lambda proc, sig: sent.append(proc.pid))
    assert sent == [4242, 4243] and outcome.sent == (4242, 4243)
    assert outcome.error == f"refused: pid {os.getpid()} is memtui itself"


@pytest.mark.parametrize(
    "pid", [1, os.getpid(), os.getppid()], ids=["init", "memtui", "its-parent"]
)  # ids: the same in every process (xdist compares)
def test_a_protected_target_gets_nothing_not_even_its_children(pid):
    tree = FakeProbe(pid=pid)
    tree.processes = lambda ppids=None: [FakeProc(pid), FakeProc(4243)]
    sent = []
    outcome = signal_target(tree, "terminate", send=lambda proc, sig: sent.append(proc.pid))
    assert sent == [] and outcome.sent == ()
    why = {1: "pid 1 is init", os.getpid(): f"pid {pid} is memtui itself"}.get(pid)
    assert (
        outcome.error == f"refused: {why}"
        if why
        else outcome.error.startswith(f"refused: pid {pid} is memtui's own parent (")
    )


def test_another_users_process_needs_the_flag():
    other = os.getuid() + 1
    probe = FakeProbe(pid=4242)
    probe.processes = lambda ppids=None: [FakeProc(4242, uid=other)]
    sent = []
    outcome = signal_target(probe, "stop", send=lambda proc, sig: sent.append(proc.pid))
    assert sent == [] and outcome.error.startswith("refused: pid 4242 (fake) belongs to user ")
    assert outcome.error.endswith("; pass --signal-other-users to allow it")
    assert signal_target(probe, "stop", send=lambda proc, sig: sent.append(proc.pid), other_users=True).ok
    assert sent == [4242]


def test_a_tree_stopped_in_part_is_still_resumed_as_memtui_exits():
    """A refused child must not make memtui forget the parent it did stop."""
    tree = FakeProbe(pid=4242, rss=[2 * GB])
    tree.processes = lambda ppids=None: [FakeProc(4242), FakeProc(4243, uid=os.getuid() + 1)]
    _, report, _, sent = run_engine([tree], policy=Policy.STOP)
    stop, resume = report["targets"][0]["actions"]
    assert (stop["action"], stop["ok"], resume["action"], resume["by"]) == ("stop", False, "resume", "memtui")
    assert "refused: pid 4243 (fake) belongs to user" in stop["error"]
    assert [pid for pid, _ in sent] == [4242, 4242]


def test_bad_thresholds_are_refused_and_nothing_changes():
    engine = MonitorEngine([FakeProbe()], CONFIG)
    with pytest.raises(ConfigError, match="warning memory 2.00GB must be below max memory"):
        engine.set_thresholds(warning="2GB")
    with pytest.raises(ConfigError, match="is not a memory size"):
        engine.set_thresholds(max="lots")
    assert engine.snapshot().max_bytes == CONFIG.max_bytes


def test_matcher_takes_a_regex_and_refuses_an_invalid_one():
    assert matcher(r"worker-\d+")("python app.py worker-12")
    assert not matcher(r"worker-\d+")("python app.py worker-x")
    assert matcher(r"train\(")("python train(1).py")
    with pytest.raises(UsageError, match=r"^--match 'train\(': not a valid regular expression \(missing \), "):
        matcher("train(")


def test_memtui_never_watches_itself():
    with pytest.raises(UsageError, match="is this memtui itself"):
        probe_pid(os.getpid(), children=False)


def test_default_selection_never_includes_memtui_its_parents_or_its_children():
    child = subprocess.Popen(["sleep", "30"])
    try:
        lineage = memtui_lineage()
        assert {os.getpid(), os.getppid(), child.pid} <= lineage
        picked = {p.pid for p in top_users(1000, children=False)}
        assert picked and not picked & lineage
        assert all(psutil.Process(pid).uids().real == os.getuid() for pid in picked if psutil.pid_exists(pid))
    finally:
        child.kill()
        child.wait()
