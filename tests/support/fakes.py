"""The suite's fake clock, and a fake process memory that a fake executor can drive (frozen-time TUI snapshots)."""

from __future__ import annotations

import threading

from memtui.memory.units import MB


class FakeClock:
    """Monotonic time that moves only when told to: ``advance``, or ``sleep`` (which records the sleep).

    The one fake clock of the suite (tests/memory/fakes.py re-exports it). Thread-safe, so a
    job thread may advance it while a test reads it. ``max_sleeps`` makes a wait loop that
    never ends fail instead of hanging the suite.
    """

    def __init__(self, start: float = 1000.0, max_sleeps: int = 100_000) -> None:
        self._t = float(start)
        self._lock = threading.Lock()
        self.sleeps: list[float] = []
        self.max_sleeps = max_sleeps

    @property
    def t(self) -> float:
        with self._lock:
            return self._t

    @t.setter
    def t(self, value: float) -> None:
        with self._lock:
            self._t = float(value)

    def now(self) -> float:
        with self._lock:
            return self._t

    __call__ = now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._t += seconds

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        with self._lock:
            self.sleeps.append(seconds)
            if len(self.sleeps) > self.max_sleeps:
                raise AssertionError(f"more than {self.max_sleeps} sleeps: a wait loop that never ends")
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
