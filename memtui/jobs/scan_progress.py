"""Saying that a long input scan goes on, so a huge input (or a gzip bomb of blank lines) never looks hung.

The scan before a cache job counts every line, which takes minutes on a big
input and shows nothing else. ``ScanProgress`` is handed the reader's counters
every few thousand lines and says a line (through the ``memtui`` logger, so
headless runs log it and the TUI keeps its screen) every ``every_s`` seconds
and every ``every_bytes`` bytes read, whichever comes first. Clock injectable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from memtui.jobs.input import InputStats
from memtui.memory.units import format_bytes

#: A progress line at least this often (seconds) while the scan runs...
EVERY_S = 10.0
#: ...and at every this many bytes read (uncompressed), however fast the disk.
EVERY_BYTES = 256 << 20


class ScanProgress:
    """Called with the reader's stats; says one line when EVERY_S or EVERY_BYTES has passed since the last."""

    def __init__(
        self,
        name: str,
        say: Callable[[str], None] | None = None,
        *,
        every_s: float = EVERY_S,
        every_bytes: int = EVERY_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.say = say or logging.getLogger("memtui").info
        self.every_s, self.every_bytes, self.clock = every_s, every_bytes, clock
        self.started = clock()
        self._next_at = self.started + every_s
        self._next_bytes = every_bytes
        self.said = 0

    def __call__(self, stats: InputStats) -> None:
        now = self.clock()
        if now < self._next_at and stats.bytes_read < self._next_bytes:
            return
        self._next_at = now + self.every_s
        self._next_bytes = stats.bytes_read + self.every_bytes
        self.said += 1
        self.say(
            f"scanning input {self.name}: {format_bytes(stats.bytes_read)} read in {now - self.started:.0f}s, "
            f"{stats.lines} lines, {stats.responses} responses in {stats.domains} domains, {stats.bad_lines} bad"
        )
