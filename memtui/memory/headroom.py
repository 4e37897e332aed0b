"""Headroom: how much more this job can take before the nearest real limit, against what one batch costs.

The real limit is whichever binds first: the memory cgroup's limit less its
working set (this cgroup or an ancestor), the system's MemAvailable, or
RLIMIT_AS less the address space in use. One batch's cost is measured, not
guessed: the largest RSS growth over a recent sub-batch (from its start to its
peak). When the headroom is below that cost the next batch may get the job
killed: the watch flips ``low`` (said once, when it starts and when it ends), and
admission brakes on it (``memtui.memory.admission.HeadroomWait``: the smallest
sub-batch, and a wait with cleanups until the headroom is back). The all-clear is
judged against the cost that raised the warning, not a later, smaller estimate:
the recent window forgets the big sub-batch while the job waits, and the next
batch may be as big again.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass

from memtui.memory.system import SystemReader, SystemReading
from memtui.memory.units import format_gb

#: How often the watch reads /proc and /sys (samples come every 0.1 s; the files need not).
READ_EVERY_S = 1.0
#: A low-headroom warning ends only once the headroom is this many batches' cost (no flapping at the edge).
CLEAR_AT_BATCHES = 1.25
#: "Recent" sub-batches whose largest growth is one batch's cost: enough to span a few batches, since the
#: first sub-batch after a batch's malloc_trim pays again what later ones reuse.
RECENT_SUB_BATCHES = 64


@dataclass(frozen=True)
class Headroom:
    """One reading of the memory that gets a job killed (a snapshot field: faces and the wire read it)."""

    #: Bytes left before the limit that binds.
    bytes: int
    #: Which limit binds: "cgroup v1 /jobs/a", "system MemAvailable" or "RLIMIT_AS".
    binds: str
    available_bytes: int | None = None  # the system's MemAvailable
    swap_total_bytes: int | None = None
    swap_used_bytes: int | None = None
    cgroup: str | None = None  # the cgroup shown: the binding one, else this process's
    cgroup_used_bytes: int | None = None  # its working set (usage less inactive page cache)
    cgroup_limit_bytes: int | None = None  # None: no limit
    #: One batch's measured cost (largest recent sub-batch growth); None until a sub-batch ran.
    batch_cost_bytes: int | None = None
    #: Below one batch's cost (and not yet back above CLEAR_AT_BATCHES of it).
    low: bool = False
    #: While low: the headroom that ends it (CLEAR_AT_BATCHES x the cost that raised it).
    clear_bytes: int | None = None

    def describe(self) -> str:
        return f"{format_gb(self.bytes)} to {self.binds}"

    @property
    def shortfall(self) -> int:
        """How far the headroom is below its all-clear (0 when not low)."""
        return max(0, (self.clear_bytes or 0) - self.bytes) if self.low else 0


def binding_limit(reading: SystemReading) -> tuple[int, str] | None:
    """(headroom, what binds): the least of the cgroup, MemAvailable and RLIMIT_AS; None if none was read."""
    candidates: list[tuple[int, str]] = []
    cgroup = reading.binding_cgroup()
    if cgroup is not None and cgroup.headroom is not None:
        candidates.append((cgroup.headroom, cgroup.name))
    if reading.system is not None:
        candidates.append((reading.system.available, "system MemAvailable"))
    if reading.address_space is not None:
        candidates.append((reading.address_space.headroom, "RLIMIT_AS"))
    return min(candidates, key=lambda c: c[0]) if candidates else None


class BatchCost:
    """The largest RSS growth over a recent sub-batch: its start, then every sample until it ends.

    The job marks ``begin``/``end`` around each sub-batch; the sampler thread calls
    ``observe`` in between, so a peak inside the sub-batch counts.
    """

    def __init__(self, recent: int = RECENT_SUB_BATCHES) -> None:
        self._lock = threading.Lock()
        self._start: int | None = None
        self._peak = 0
        self._growths: collections.deque[int] = collections.deque(maxlen=recent)

    def begin(self, rss: int) -> None:
        with self._lock:
            self._start, self._peak = rss, rss

    def observe(self, rss: int) -> None:
        with self._lock:
            if self._start is not None:
                self._peak = max(self._peak, rss)

    def end(self, rss: int) -> int | None:
        """Close the sub-batch; its growth (None if none was begun)."""
        with self._lock:
            if self._start is None:
                return None
            growth = max(self._peak, rss) - self._start
            self._start = None
            self._growths.append(max(0, growth))
            return growth

    @property
    def bytes(self) -> int | None:
        with self._lock:
            return max(self._growths) if self._growths else None


@dataclass(frozen=True)
class HeadroomChange:
    """The headroom crossed one batch's cost (``low``) or came back above it."""

    headroom: Headroom

    @property
    def low(self) -> bool:
        return self.headroom.low

    @property
    def message(self) -> str:
        h = self.headroom
        cost = format_gb(h.batch_cost_bytes or 0)
        if h.low:
            return (
                f"⚠️ Memory headroom {h.describe()} is below one batch's measured cost ({cost}): "
                f"the next batch may get this run killed; holding batches (smallest sub-batch, cleanups) "
                f"until it is back above {format_gb(h.clear_bytes or 0)}"
            )
        return f"✅ Memory headroom back to {h.describe()} (one batch costs up to {cost}): resuming"


class HeadroomWatch:
    """Reads the system at most every ``every_s`` of the sample clock; keeps the latest and lowest headroom.

    Thread-safe: the sampler thread and the job's thread both feed it samples.
    """

    def __init__(self, reader: SystemReader | None = None, *, every_s: float = READ_EVERY_S) -> None:
        self.reader = reader or SystemReader()
        self.every_s = every_s
        self.cost = BatchCost()
        self._lock = threading.Lock()
        self._read_at: float | None = None
        self._latest: Headroom | None = None
        self._lowest: Headroom | None = None
        self._warnings = 0
        self._raised_by: int | None = None  # the batch cost that raised the current warning

    def observe(self, now: float, rss: int) -> HeadroomChange | None:
        """Feed one sample; re-read the system when due. A change when the low-headroom state flips."""
        self.cost.observe(rss)
        with self._lock:
            if self._read_at is not None and now - self._read_at < self.every_s:
                return None
            self._read_at = now
            was_low = self._latest is not None and self._latest.low
            latest = self._headroom(self.reader.read(), was_low)
            self._latest = latest
            if latest is None:
                return None
            if self._lowest is None or latest.bytes < self._lowest.bytes:
                self._lowest = latest
            if latest.low == was_low:
                return None
            if latest.low:
                self._warnings += 1
            else:
                self._raised_by = None
            return HeadroomChange(latest)

    def _headroom(self, reading: SystemReading, was_low: bool) -> Headroom | None:
        binding = binding_limit(reading)
        if binding is None:
            return None
        left, binds = binding
        cost = self.cost.bytes
        if was_low and self._raised_by is not None:
            # Leave only with some room above the cost that raised it (or a larger one since).
            clear = int(max(self._raised_by, cost or 0) * CLEAR_AT_BATCHES)
            low = left < clear
        else:
            low = cost is not None and cost > 0 and left < cost
            if low:
                assert cost is not None
                self._raised_by = cost
            clear = int((cost or 0) * CLEAR_AT_BATCHES)
        system, cgroup = reading.system, reading.binding_cgroup()
        return Headroom(
            bytes=left,
            binds=binds,
            available_bytes=system.available if system else None,
            swap_total_bytes=system.swap_total if system else None,
            swap_used_bytes=system.swap_used if system else None,
            cgroup=cgroup.name if cgroup else None,
            cgroup_used_bytes=cgroup.working_set if cgroup else None,
            cgroup_limit_bytes=cgroup.limit if cgroup else None,
            batch_cost_bytes=cost,
            low=low,
            clear_bytes=clear if low else None,
        )

    @property
    def latest(self) -> Headroom | None:
        with self._lock:
            return self._latest

    @property
    def lowest(self) -> Headroom | None:
        """The least headroom this watch has seen (the run report's)."""
        with self._lock:
            return self._lowest

    @property
    def warnings(self) -> int:
        """How many times the headroom fell below one batch's cost."""
        with self._lock:
            return self._warnings
