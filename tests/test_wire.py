"""The wire form: every snapshot and event of both engines survives JSON and comes back equal."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from memtui import wire
from memtui.jobs.cache import CacheJob
from memtui.jobs.monitor.engine import MonitorEngine
from memtui.memory import MemoryConfig, MemoryMonitor
from memtui.memory.pid_probe import PidProbe
from memtui.records import MonitorReport
from memtui.runner import Runner
from tests.support.executors import FakeExecutor
from tests.support.inputs import write_input


def round_trip(kind: str, value):
    line = wire.dumps(kind, value)
    assert "\n" not in line
    got_kind, got = wire.loads(line)
    assert got_kind == kind
    return got


def test_a_runs_snapshots_events_and_report_round_trip(tmp_path):
    job = CacheJob(
        write_input(tmp_path / "in.jsonl", domains=4), tmp_path / "c.sqlite", FakeExecutor(), model_id="fake"
    )
    runner = Runner(job, MemoryMonitor(MemoryConfig()))
    events = runner.subscribe()
    runner.open()
    runner.request_cleanup()  # a CleanupRan event with a CleanupReport inside
    before = runner.snapshot()
    report = runner.run()
    after = runner.snapshot()
    seen = events.drain()
    assert {type(e).__name__ for e in seen} >= {
        "PhaseChanged",
        "BatchStarted",
        "BatchDone",
        "CleanupRan",
        "RunFinished",
    }
    for snapshot in (before, after):
        back = round_trip("snapshot", snapshot)
        assert back == snapshot
        assert isinstance(back.memory.history, tuple) and isinstance(back.in_flight, tuple)
    for event in seen:
        assert round_trip("event", event) == event
    assert round_trip("report", report) == report


def test_a_watchs_snapshots_and_events_round_trip():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        engine = MonitorEngine([PidProbe(child.pid)], MemoryConfig(), interval_s=0.05, duration_s=0.3)
        events = engine.subscribe()
        report = engine.run()
        snapshot = engine.snapshot()
        assert round_trip("snapshot", snapshot) == snapshot
        assert snapshot.targets and round_trip("snapshot", snapshot).targets[0].state is snapshot.targets[0].state
        drained = events.drain()
        assert drained
        for event in drained:
            assert round_trip("event", event) == event
        back = round_trip("report", report)
        assert isinstance(back, MonitorReport) and back == report  # typed through the wire, targets as dicts
        assert back.to_dict() == json.loads(json.dumps(report.to_dict())) and back.targets[0]["pid"] == child.pid
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize(
    "line, why",
    [
        ('{"memtui_wire": 2, "kind": "event", "body": null}', "version 2"),
        ('{"kind": "event"}', "not a memtui wire message"),
        ('{"memtui_wire": 1, "kind": "exec", "body": null}', "unknown message kind"),
        ('{"memtui_wire": 1, "kind": "event", "body": {"__type__": "Popen", "args": ["sh"]}}', "unknown type 'Popen'"),
        ('{"memtui_wire": 1, "kind": "event", "body": {"__enum__": "Signals", "value": 9}}', "unknown type 'Signals'"),
        ("not json", "not JSON"),
    ],
)
def test_anything_else_is_refused_and_builds_nothing(line, why):
    with pytest.raises(wire.WireError, match=why):
        wire.loads(line)


def test_a_type_not_on_the_list_cannot_be_sent():
    from memtui.jobs.base import JobTotals

    with pytest.raises(wire.WireError, match="not a wire type"):
        wire.dumps("event", JobTotals(1, 1))
