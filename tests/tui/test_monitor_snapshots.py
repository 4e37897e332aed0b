"""Snapshot tests of the monitor TUI at 60x20, 80x24 and 120x30, on a watch frozen at a known point.

Real processes cannot give the same numbers twice, so here the engine samples
fake probes on a fake clock (its rounds are driven by the test, the engine's
thread never starts); everything else is the real MonitorEngine and MonitorApp.
The Pilot tests in test_monitor_app.py do the same on real processes.
Update after an intended change with ``pytest tests/tui/test_monitor_snapshots.py --snapshot-update``
and look at the SVGs under __snapshots__ before committing them.
"""

from __future__ import annotations

import pytest

from memtui.jobs.monitor.engine import MonitorEngine
from memtui.memory.config import MemoryConfig
from memtui.memory.pid_probe import PidSample
from memtui.memory.units import MB
from memtui.tui.monitor_app import MonitorApp
from tests.support.fakes import FakeClock

FROZEN_TIME = "02:14:07"
ROUNDS = 8
INTERVAL_S = 2.0


class ScriptedProbe:
    """A process whose RSS follows ``start + step * round``; ``status`` as psutil would say it."""

    def __init__(self, pid: int, cmdline: str, start_mb: int, step_mb: int = 0, status: str = "sleeping") -> None:
        self.pid, self.cmdline, self.name = pid, cmdline, cmdline.split()[0]
        self.children = False
        self.rss, self.step, self.status = start_mb * MB, step_mb * MB, status

    def sample(self, *, detail: bool = False, ppids=None) -> PidSample:
        rss, self.rss = self.rss, self.rss + self.step
        return PidSample(rss=rss, uss=None, pss=None, processes=1, status=self.status)


def frozen_app() -> MonitorApp:
    clock = FakeClock(1000.0)
    probes = [
        ScriptedProbe(4101, "python train.py --epochs 3 --data /srv/corpus", 900, step_mb=40),
        ScriptedProbe(4102, "python embed_worker.py --shard 7", 1640),
        ScriptedProbe(4103, "postgres: checkpointer", 310, status="stopped"),
        ScriptedProbe(4104, "node /srv/app/server.js", 180, step_mb=-1),
    ]
    config = MemoryConfig(warning_memory_gb=1.0, max_memory_gb=1.5, reset_hold_s=2.0)
    engine = MonitorEngine(
        probes,  # type: ignore[arg-type]
        config,
        interval_s=INTERVAL_S,
        selection="top 5 memory users of alice",
        clock=clock,
    )
    for _ in range(ROUNDS):
        engine._sample_round()
        clock.advance(INTERVAL_S)
    app = MonitorApp(engine, autostart=False)
    app.log_widget.time_format = lambda _at: FROZEN_TIME
    return app


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 30)])
def test_frozen_watch(snap_compare, size):
    """80x24: PID, process, RSS, trend, State, To breaker; 60x20: State kept; 120x30: sparkline, peak, breaker."""
    assert snap_compare(frozen_app(), terminal_size=size)
