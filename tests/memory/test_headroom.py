"""One batch's measured cost, and the watch that warns once when the headroom falls below it (no sleeping:
the watch runs on the samples' clock, the system is a fake /proc and /sys tree the test rewrites)."""

from __future__ import annotations

from memtui.memory.config import MemoryConfig
from memtui.memory.headroom import CLEAR_AT_BATCHES, BatchCost, HeadroomWatch
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.system import SystemReader
from memtui.memory.units import GB, MB
from tests.memory.test_system import meminfo, v2_group, write
from tests.support.fakes import FakeClock, FakeMemory


def test_batch_cost_is_the_largest_recent_growth_to_the_peak():
    cost = BatchCost(recent=3)
    assert cost.bytes is None
    cost.begin(500 * MB)
    cost.observe(620 * MB)  # the peak, inside the sub-batch
    assert cost.end(540 * MB) == 120 * MB
    cost.begin(540 * MB)
    assert cost.end(560 * MB) == 20 * MB
    assert cost.bytes == 120 * MB
    cost.observe(9 * GB)  # between sub-batches: not a batch's cost
    cost.begin(560 * MB)
    cost.end(500 * MB)  # shrank: costs nothing
    cost.begin(500 * MB)
    cost.end(510 * MB)
    assert cost.bytes == 20 * MB  # the 120MB sub-batch is no longer recent
    assert cost.end(510 * MB) is None  # no sub-batch begun


class Tree:
    """A v2 cgroup with a 2GB limit on a fake tree; ``use`` sets what the cgroup's working set is."""

    def __init__(self, tmp_path) -> None:
        self.proc, self.root = tmp_path / "proc", tmp_path / "cgroup"
        write(self.proc / "self" / "cgroup", "0::/job\n")
        write(self.proc / "meminfo", meminfo(16384, 12000))
        self.use(1 * GB)

    def use(self, working_set: int) -> None:
        v2_group(self.root / "job", current=working_set + 100 * MB, max_=str(2 * GB), inactive=100 * MB)

    def reader(self) -> SystemReader:
        return SystemReader(self.proc, self.root, getrlimit=None)


def measured(watch: HeadroomWatch, growth: int) -> None:
    watch.cost.begin(500 * MB)
    watch.cost.end(500 * MB + growth)


def test_watch_reads_once_a_second_and_warns_once_per_crossing(tmp_path):
    tree = Tree(tmp_path)
    watch = HeadroomWatch(tree.reader())
    assert watch.observe(0.0, 0) is None  # no batch measured: never low
    first = watch.latest
    assert (first.bytes, first.binds, first.batch_cost_bytes, first.low) == (1 * GB, "cgroup v2 /job", None, False)
    assert (first.cgroup_used_bytes, first.cgroup_limit_bytes, first.available_bytes) == (1 * GB, 2 * GB, 12000 * MB)

    measured(watch, 300 * MB)
    tree.use(1800 * MB)  # 248MB left, below the 300MB a batch costs
    assert watch.observe(0.5, 0) is None  # not read again within a second
    assert watch.latest.bytes == 1 * GB
    change = watch.observe(1.0, 0)
    assert change is not None and change.low
    assert change.headroom.bytes == 248 * MB
    assert change.message == (
        "⚠️ Memory headroom 0.24GB to cgroup v2 /job is below one batch's measured cost (0.29GB): "
        "the next batch may get this run killed; holding batches (smallest sub-batch, cleanups) "
        "until it is back above 0.37GB"
    )
    assert change.headroom.clear_bytes == int(300 * MB * CLEAR_AT_BATCHES)
    assert watch.observe(2.0, 0) is None  # still low: said once
    assert watch.latest.low

    # back above one batch, but within the margin: still low (no flapping at the edge)
    tree.use(2 * GB - 330 * MB)
    assert 300 * MB < 330 * MB < CLEAR_AT_BATCHES * 300 * MB
    assert watch.observe(3.0, 0) is None and watch.latest.low
    tree.use(1 * GB)
    change = watch.observe(4.0, 0)
    assert change is not None and not change.low
    assert change.message == (
        "✅ Memory headroom back to 1.00GB to cgroup v2 /job (one batch costs up to 0.29GB): resuming"
    )
    assert watch.lowest.bytes == 248 * MB
    assert watch.warnings == 1


def test_watch_without_any_reading_is_silent(tmp_path):
    watch = HeadroomWatch(SystemReader(tmp_path / "none", tmp_path / "none", getrlimit=None))
    measured(watch, 100 * MB)
    assert watch.observe(0.0, 0) is None
    assert watch.latest is None and watch.lowest is None


def test_monitor_samples_feed_the_watch_and_the_cost(tmp_path):
    """The sampler's samples (here: on demand) reach the watch, so a peak inside a sub-batch counts."""
    tree = Tree(tmp_path)
    clock, memory = FakeClock(0.0), FakeMemory(base=500 * MB, per_step=70 * MB)
    monitor = MemoryMonitor(MemoryConfig(), probe=memory, clock=clock)
    watch = HeadroomWatch(tree.reader())
    monitor.add_sample_listener(watch.observe)
    watch.cost.begin(monitor.sample())
    memory.step()
    monitor.sample()  # the peak, seen by the sampler
    memory.steps = 0
    watch.cost.end(monitor.sample())
    assert watch.cost.bytes == 70 * MB
    assert watch.latest is not None
    monitor.remove_sample_listener(watch.observe)
    tree.use(1500 * MB)
    clock.advance(5)
    monitor.sample()
    assert watch.latest.bytes == 1 * GB  # no longer listening


def test_the_all_clear_is_judged_against_the_cost_that_raised_the_warning(tmp_path):
    """While the job waits, the recent window may forget the big sub-batch (a smaller estimate): the
    warning still ends only with CLEAR_AT_BATCHES x the cost that raised it, since the next batch may be
    as big again."""
    tree = Tree(tmp_path)
    watch = HeadroomWatch(tree.reader())
    watch.cost = BatchCost(recent=1)
    measured(watch, 300 * MB)
    tree.use(1800 * MB)  # 248MB left
    change = watch.observe(0.0, 0)
    assert change is not None and change.low
    measured(watch, 50 * MB)  # a small sub-batch since: the estimate is now 50MB
    assert watch.cost.bytes == 50 * MB
    tree.use(2 * GB - 340 * MB)  # 340MB: far above the new 50MB, below 1.25 x 300MB = 375MB
    assert watch.observe(1.0, 0) is None
    assert watch.latest.low and watch.latest.clear_bytes == int(300 * MB * CLEAR_AT_BATCHES)
    assert watch.latest.shortfall == int(300 * MB * CLEAR_AT_BATCHES) - 340 * MB
    tree.use(2 * GB - 380 * MB)  # past the margin over the raising cost: clear
    change = watch.observe(2.0, 0)
    assert change is not None and not change.low and watch.latest.shortfall == 0
    # the next warning is raised by the cost of its own time
    tree.use(2 * GB - 40 * MB)
    change = watch.observe(3.0, 0)
    assert change is not None and change.low and change.headroom.clear_bytes == int(50 * MB * CLEAR_AT_BATCHES)
