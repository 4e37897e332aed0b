"""Deterministic stand-ins for time and memory, so state machines are tested without sleeping."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from memtui.memory.units import GB, MB


class FakeClock:
    """A monotonic clock that moves only when told to; ``sleep`` advances it."""

    def __init__(self, start: float = 1000.0, max_sleeps: int = 100_000) -> None:
        self.t = float(start)
        self.sleeps: list[float] = []
        self.max_sleeps = max_sleeps  # a loop that never ends fails instead of hanging the suite

    def now(self) -> float:
        return self.t

    __call__ = now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, f"negative sleep {seconds}"
        self.sleeps.append(seconds)
        if len(self.sleeps) > self.max_sleeps:
            raise AssertionError(f"more than {self.max_sleeps} sleeps: a wait loop that never ends")
        self.t += seconds

    def advance(self, seconds: float) -> None:
        self.t += seconds


class ScriptedProbe:
    """RSS that a test sets (``probe.rss = ...``) or scripts as a sequence.

    A scripted sequence is consumed one value per read; once it is used up the
    last value sticks. ``on_read`` may compute RSS from the read count.
    """

    def __init__(self, rss: int = 0, script: Iterable[int] = (),
                 on_read: Callable[[int], int] | None = None) -> None:
        self.rss = int(rss)
        self._script = list(script)
        self._on_read = on_read
        self.reads = 0

    def rss_bytes(self) -> int:
        self.reads += 1
        if self._on_read is not None:
            self.rss = int(self._on_read(self.reads))
        elif self._script:
            self.rss = int(self._script.pop(0))
        return self.rss

    def set_gb(self, gb: float) -> None:
        self.rss = int(gb * GB)

    def set_mb(self, mb: float) -> None:
        self.rss = int(mb * MB)


def gb(value: float) -> int:
    return int(value * GB)
