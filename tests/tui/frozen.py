"""A run frozen at a chosen point, for snapshot tests: every number on screen is deterministic.

Time is a fake clock the fake executor advances by one second per sub-batch;
RSS is a fake memory that grows per sub-batch and shrinks per cleanup; the
sampler thread never fires (the job samples at its checkpoints); cleanups
report a fixed object count; the GC log prints a fixed wall-clock time; and
paths are relative to a temporary working directory.

Run ``python -m tests.tui.frozen [HOLD]`` to look at the same screen live.
"""

from __future__ import annotations

import threading
from pathlib import Path

from memtui.jobs.cache import CacheJob
from memtui.memory.cleanup import Cleaner
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.probe import MemoryLimit
from memtui.memory.units import GB, MB
from memtui.runner import Runner
from memtui.tui.app import MemtuiApp
from tests.support.executors import FakeExecutor
from tests.support.fakes import FakeClock, FakeMemory
from tests.support.inputs import write_input

FROZEN_TIME = "02:14:07"


def _relative(path: Path) -> Path:
    """Relative to the working directory when inside it, so the screen shows no temp path."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


class FrozenRun:
    """A real Runner on a tiny input, held at sub-batch ``hold_at`` (None: run to the end)."""

    def __init__(self, workdir: Path, *, hold_at: int | None = 24, domains: int = 12) -> None:
        self.clock = FakeClock(1000.0)
        self.memory = FakeMemory(base=700 * MB, per_step=22 * MB, freed_per_cleanup=45 * MB)
        config = MemoryConfig(
            warning_memory_gb=1.0,
            max_memory_gb=1.5,
            sample_interval_s=3600.0,
            reset_hold_s=2.0,
            reset_hold_max_s=8.0,
            breaker_timeout_s=3600.0,
        )
        self.monitor = MemoryMonitor(
            config, probe=self.memory, clock=self.clock, limit=MemoryLimit(2 * GB, "cgroup memory.max (/memtui.slice)")
        )
        self.monitor.cleaner = Cleaner(self.memory, clock=self.clock, collect=self.memory.collect, trim=lambda: True)
        self.hold_at = hold_at
        self.gate = threading.Event()
        self.executor = FakeExecutor(sub_batch=2, on_sub_batch=self._step)
        source = write_input(workdir / "responses.jsonl", domains, 4)
        job = CacheJob(
            _relative(source),
            _relative(workdir / "cache.sqlite"),
            self.executor,
            model_id="sentence-transformers/all-MiniLM-L6-v2",
        )
        self.runner = Runner(job, self.monitor, clock=self.clock)
        self.executor.stop_check = lambda: self.runner.snapshot().stopping
        self.runner.open()

    def _step(self, count: int) -> None:
        self.memory.step()
        self.clock.advance(1.0)
        if self.hold_at is not None and count == self.hold_at:
            self.executor.hold(self.gate)

    @property
    def held(self) -> bool:
        return self.executor.holding.is_set()

    def app(self, **kw) -> MemtuiApp:
        return MemtuiApp(self.runner, time_format=lambda _at: FROZEN_TIME, **kw)

    def release(self) -> None:
        self.executor.release()
        self.runner.stop()


if __name__ == "__main__":  # pragma: no cover - a manual look at the frozen screen
    import os
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        hold = int(sys.argv[1]) if len(sys.argv) > 1 else 24
        run = FrozenRun(Path(tmp), hold_at=hold if hold > 0 else None)
        try:
            run.app().run()
        finally:
            run.release()
