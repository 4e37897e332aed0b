"""Deterministic stand-ins for time and memory, so state machines are tested without sleeping."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from memtui.memory.units import GB, MB
from tests.support.fakes import FakeClock

__all__ = ["FakeClock", "ScriptedProbe", "gb"]


class ScriptedProbe:
    """RSS that a test sets (``probe.rss = ...``) or scripts as a sequence.

    A scripted sequence is consumed one value per read; once it is used up the
    last value sticks. ``on_read`` may compute RSS from the read count.
    """

    def __init__(self, rss: int = 0, script: Iterable[int] = (), on_read: Callable[[int], int] | None = None) -> None:
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
