"""A fake clock and a fake process memory that a fake executor can drive, for frozen-time TUI snapshots."""

from __future__ import annotations

import threading

from memtui.memory.units import MB


class FakeClock:
    """Monotonic time that moves only when told to (thread-safe: the job thread advances it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._t = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds


class FakeMemory:
    """RSS as a function of work done: ``base`` plus ``per_step`` per step, minus what cleanups freed."""

    def __init__(self, base: int = 400 * MB, per_step: int = 40 * MB, freed_per_cleanup: int = 30 * MB) -> None:
        self.base = base
        self.per_step = per_step
        self.freed_per_cleanup = freed_per_cleanup
        self.steps = 0
        self.freed = 0
        self.collections = 0

    def rss_bytes(self) -> int:
        return self.base + self.steps * self.per_step - self.freed

    def step(self, _count: int = 0) -> None:
        self.steps += 1

    def collect(self) -> int:
        """Stands in for gc.collect(): frees a fixed amount, reports a fixed object count."""
        self.collections += 1
        self.freed += self.freed_per_cleanup
        return 1247
