"""SmartBatchProcessor on a fake clock and a scripted probe: sizes, backoff, abort, ordering."""

import random

import pytest

from memtui.memory import Cleaner, MemoryConfig, MemoryMonitor, SmartBatchProcessor
from memtui.memory.headroom import HeadroomWatch
from memtui.memory.units import GB as GB_
from memtui.memory.units import MB as MB_
from tests.memory.test_headroom import Tree

from .fakes import FakeClock, ScriptedProbe, gb

KEYS = {
    "status",
    "reason",
    "results",
    "processed",
    "unprocessed",
    "memory_usage_gb",
    "peak_memory_gb",
    "memory_warnings",
    "breaker_trips",
    "cleanups",
    "batches",
}


class Recorder:
    """fn for the processor: records every call, runs a hook, may raise; returns the batch as a tuple."""

    def __init__(self, hook=None):
        self.calls: list[list[int]] = []
        self.ok: list[list[int]] = []
        self.hook = hook

    def __call__(self, batch):
        batch = list(batch)
        self.calls.append(batch)
        if self.hook is not None:
            self.hook(batch)  # may raise MemoryError
        self.ok.append(batch)
        return tuple(batch)

    @property
    def sizes(self):
        return [len(b) for b in self.ok]


def processor(monitor, clock):
    return SmartBatchProcessor(monitor, sleep=clock.sleep, clock=clock)


def assert_at_most_once_in_order(items, rec, result):
    done = [x for batch in rec.ok for x in batch]
    assert done == items[: result["processed"]], "processed items out of order or repeated"
    assert result["unprocessed"] == items[result["processed"] :]
    assert len(set(map(id, rec.ok))) == len(rec.ok)
    assert result["results"] == [tuple(b) for b in rec.ok]
    assert result["batches"] == len(rec.ok)


def test_all_normal(monitor, clock):
    items = list(range(23))
    rec = Recorder()
    result = processor(monitor, clock).process_with_memory_awareness(items, rec)
    assert set(result) == KEYS
    assert result["status"] == "success" and result["reason"] == ""
    assert rec.sizes == [5, 5, 5, 5, 3]
    assert rec.calls == rec.ok
    assert_at_most_once_in_order(items, rec, result)
    assert result["memory_usage_gb"] == 0.5 and result["peak_memory_gb"] == 0.5
    assert (result["memory_warnings"], result["breaker_trips"], result["cleanups"]) == (0, 0, 0)
    assert clock.sleeps == []


def test_empty_and_iterators(monitor, clock):
    rec = Recorder()
    assert processor(monitor, clock).process_with_memory_awareness([], rec)["processed"] == 0
    assert rec.calls == []
    result = processor(monitor, clock).process_with_memory_awareness((i for i in range(7)), rec)
    assert rec.sizes == [5, 2] and result["unprocessed"] == []


def test_warning_shrinks_batches_to_min(monitor, probe, clock, memlog):
    items = list(range(14))

    def hook(batch):
        if 7 in batch:
            probe.set_gb(1.1)

    rec = Recorder(hook)
    result = processor(monitor, clock).process_with_memory_awareness(items, rec)
    assert rec.sizes == [5, 5, 1, 1, 1, 1]
    assert_at_most_once_in_order(items, rec, result)
    assert result["status"] == "success"
    assert result["memory_warnings"] == 1 and result["cleanups"] == 1  # one cleanup on entering WARNING
    assert result["peak_memory_gb"] == pytest.approx(1.1)
    assert "⚠️ Memory warning: 1.10GB" in memlog.messages


def test_back_to_max_once_warning_clears(monitor, probe, clock):
    items = list(range(30))

    def hook(batch):
        clock.advance(0.3)
        if 7 in batch:
            probe.set_gb(1.1)
        if 12 in batch:
            probe.set_gb(0.5)

    rec = Recorder(hook)
    result = processor(monitor, clock).process_with_memory_awareness(items, rec)
    # Item 12's batch drops memory (t=1.5 s); the warning clears only after 1 s below the clear
    # level, at the sample after item 16's batch (t=2.7 s); then batches are full size again.
    assert rec.sizes == [5, 5, 1, 1, 1, 1, 1, 1, 1, 5, 5, 3]
    assert_at_most_once_in_order(items, rec, result)


def test_open_breaker_backs_off_exponentially_then_resumes(config, clock):
    high_until = {"t": None}

    def rss(_reads):
        t = high_until["t"]
        return gb(1.6) if t is not None and clock.now() < t else gb(0.5)

    probe = ScriptedProbe(on_read=rss)
    monitor = MemoryMonitor(config, probe=probe, clock=clock)
    items = list(range(22))

    def hook(batch):
        if 10 in batch and high_until["t"] is None:
            high_until["t"] = clock.now() + 3.0  # memory stays high for 3 s

    rec = Recorder(hook)
    result = processor(monitor, clock).process_with_memory_awareness(items, rec)
    assert result["status"] == "success"
    assert result["breaker_trips"] == 1
    assert clock.sleeps[:4] == [0.25, 0.5, 1.0, 2.0]  # exponential, capped at backoff_max_s
    assert max(clock.sleeps) == 2.0
    # After the trip: one half-open probe batch of the minimum size, then full batches.
    assert rec.sizes == [5, 5, 5, 1, 5, 1]
    assert_at_most_once_in_order(items, rec, result)
    assert result["cleanups"] >= 1
    assert result["peak_memory_gb"] == pytest.approx(1.6)
    assert monitor.breaker.state.name == "CLOSED"


def test_never_calls_fn_while_open(config, clock):
    probe = ScriptedProbe(rss=gb(1.7))
    monitor = MemoryMonitor(config, probe=probe, clock=clock)
    rec = Recorder()
    result = processor(monitor, clock).process_with_memory_awareness(list(range(5)), rec)
    assert rec.calls == []
    assert result["status"] == "aborted" and result["unprocessed"] == [0, 1, 2, 3, 4]


def test_abort_after_breaker_timeout(monitor, probe, clock, memlog):
    items = list(range(40))

    def hook(batch):
        if 12 in batch:
            probe.set_gb(1.8)  # a leak that no cleanup can undo

    rec = Recorder(hook)
    start = clock.now()
    result = processor(monitor, clock).process_with_memory_awareness(items, rec)
    assert result["status"] == "aborted"
    assert "stayed open" in result["reason"]
    assert result["processed"] == 15 and result["unprocessed"] == items[15:]
    assert_at_most_once_in_order(items, rec, result)
    assert rec.sizes == [5, 5, 5]  # nothing was attempted after the trip
    # Gave up at breaker_timeout_s (10 s) of fake time, without overshooting it.
    assert clock.now() - start == pytest.approx(10.0)
    assert sum(clock.sleeps) == pytest.approx(10.0)
    assert result["breaker_trips"] == 1 and result["memory_warnings"] == 1
    assert result["peak_memory_gb"] == pytest.approx(1.8)
    assert any("gave up" in m for m in memlog.messages)


def test_timeout_is_per_open_episode(config, clock):
    # Two open spells of 6 s each, with progress in between, must not add up to the 10 s timeout.
    spells = [[clock.now() + 1, clock.now() + 7]]
    probe = ScriptedProbe(on_read=lambda _n: gb(1.6) if any(a <= clock.now() < b for a, b in spells) else gb(0.5))
    monitor = MemoryMonitor(config, probe=probe, clock=clock)
    state = {"second": False}

    def hook(batch):
        clock.advance(0.5)
        if 20 in batch and not state["second"]:
            state["second"] = True
            spells.append([clock.now(), clock.now() + 6])

    rec = Recorder(hook)
    result = processor(monitor, clock).process_with_memory_awareness(list(range(30)), rec)
    assert result["status"] == "success"
    assert result["breaker_trips"] == 2


def test_memory_error_retries_the_batch_smaller(monitor, clock, memlog):
    items = list(range(12))

    def hook(batch):
        if len(batch) > 2:
            raise MemoryError

    rec = Recorder(hook)
    result = processor(monitor, clock).process_with_memory_awareness(items, rec)
    assert result["status"] == "success"
    assert_at_most_once_in_order(items, rec, result)
    failed = [c for c in rec.calls if len(c) > 2]
    assert failed, "the scenario must raise"
    for i, call in enumerate(rec.calls):
        if call in failed:
            retry = rec.calls[i + 1]
            assert retry[0] == call[0] and len(retry) < len(call)  # same start, smaller
    assert rec.calls[:2] == [[0, 1, 2, 3, 4], [0, 1]]
    assert result["cleanups"] == len(failed)
    assert len(clock.sleeps) == len(failed) and all(s == 0.25 for s in clock.sleeps)
    assert any("MemoryError on a batch of 5" in m for m in memlog.messages)


def test_batch_size_grows_back_one_by_one_after_memory_error(monitor, clock):
    seen = {"raised": False}

    def hook(batch):
        if not seen["raised"]:
            seen["raised"] = True
            raise MemoryError

    rec = Recorder(hook)
    processor(monitor, clock).process_with_memory_awareness(list(range(30)), rec)
    assert rec.calls[0] == [0, 1, 2, 3, 4]
    assert rec.sizes[:5] == [2, 3, 4, 5, 5]


def test_backoff_grows_across_consecutive_memory_errors(monitor, clock):
    fails = {"n": 0}

    def hook(batch):
        if fails["n"] < 4:
            fails["n"] += 1
            raise MemoryError

    rec = Recorder(hook)
    result = processor(monitor, clock).process_with_memory_awareness(list(range(6)), rec)
    assert [len(c) for c in rec.calls[:5]] == [5, 2, 1, 1, 1]
    assert clock.sleeps == [0.25, 0.5, 1.0, 2.0]
    assert result["status"] == "success"
    assert_at_most_once_in_order(list(range(6)), rec, result)


def test_gives_up_on_an_item_that_always_raises(monitor, clock):
    items = list(range(12))

    def hook(batch):
        if 7 in batch:
            raise MemoryError

    rec = Recorder(hook)
    result = processor(monitor, clock).process_with_memory_awareness(items, rec)
    assert result["status"] == "aborted" and "MemoryError" in result["reason"]
    assert result["processed"] == 7 and result["unprocessed"] == items[7:]
    assert_at_most_once_in_order(items, rec, result)
    singles = [c for c in rec.calls if c == [7]]
    assert len(singles) == monitor.config.memory_error_retries + 1


def test_other_exceptions_propagate(monitor, clock):
    def hook(batch):
        raise ValueError("bad row")

    with pytest.raises(ValueError, match="bad row"):
        processor(monitor, clock).process_with_memory_awareness([1, 2, 3], Recorder(hook))


def test_config_given_to_the_processor_applies(monitor, clock):
    cfg = MemoryConfig(batch_size_max=3, batch_size_min=2)
    rec = Recorder()
    proc = SmartBatchProcessor(monitor, cfg, sleep=clock.sleep, clock=clock)
    assert monitor.config is cfg and proc.config is cfg
    proc.process_with_memory_awareness(list(range(7)), rec)
    assert rec.sizes == [3, 3, 1]


def test_leak_is_stopped_near_the_breaker_level(monitor, probe, clock):
    """Each item leaks 50 MB: the run must stop with the peak at most one min-size batch over max."""
    leak = gb(0.05)

    def hook(batch):
        probe.rss += leak * len(batch)
        clock.advance(0.1)

    rec = Recorder(hook)
    items = list(range(100))
    result = processor(monitor, clock).process_with_memory_awareness(items, rec)
    assert result["status"] == "aborted"
    assert result["unprocessed"] and result["unprocessed"] == items[result["processed"] :]
    assert result["peak_memory_gb"] <= 1.5 + 0.05 + 1e-3
    assert_at_most_once_in_order(items, rec, result)


@pytest.mark.parametrize("seed", range(25))
def test_random_pressure_never_repeats_or_reorders(seed):
    """Random memory swings and MemoryErrors: whatever happens, every item at most once, in order."""
    rng = random.Random(seed)
    clock = FakeClock()
    levels = [gb(0.5), gb(1.2), gb(1.6)]
    current = {"rss": levels[0]}

    def rss(_reads):
        if rng.random() < 0.15:
            current["rss"] = rng.choice(levels)
        return current["rss"]

    config = MemoryConfig(
        batch_size_max=rng.randint(1, 8),
        batch_size_min=1,
        reset_hold_s=0.5,
        reset_hold_max_s=4,
        backoff_initial_s=0.1,
        backoff_max_s=1,
        breaker_timeout_s=20,
        memory_error_retries=3,
    )
    monitor = MemoryMonitor(config, probe=ScriptedProbe(on_read=rss), clock=clock)
    monitor.cleaner = Cleaner(monitor.probe, collect=lambda: 0, trim=lambda: False)  # fake memory: skip real gc

    def hook(batch):
        clock.advance(0.2)
        if rng.random() < 0.2:
            raise MemoryError

    rec = Recorder(hook)
    items = [f"item{i}" for i in range(rng.randint(0, 60))]
    result = SmartBatchProcessor(monitor, sleep=clock.sleep, clock=clock).process_with_memory_awareness(items, rec)
    assert result["status"] in ("success", "aborted")
    assert (result["status"] == "success") == (result["unprocessed"] == [])
    done = [x for b in rec.ok for x in b]
    assert done == items[: result["processed"]]
    assert result["unprocessed"] == items[result["processed"] :]
    assert all(len(b) <= config.batch_size_max for b in rec.calls)


def test_backoff_never_overflows():
    from memtui.memory import Backoff

    backoff = Backoff(0.25, 8.0)
    delays = [backoff.next_delay() for _ in range(5000)]
    assert delays[:6] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
    assert delays[-1] == 8.0
    backoff.reset()
    assert backoff.next_delay() == 0.25


def test_long_open_wait_with_a_large_clock_ends():
    # Regression: the last sleep before the deadline used to be a remainder too small to move
    # a clock reading ~1e10 s, so a fake (or very long-running) clock never reached the deadline.
    clock = FakeClock(start=1e10 + 0.1)
    config = MemoryConfig(breaker_timeout_s=7.3, backoff_initial_s=0.1, backoff_max_s=0.7)
    monitor = MemoryMonitor(config, probe=ScriptedProbe(rss=gb(1.7)), clock=clock)
    monitor.cleaner = Cleaner(monitor.probe, collect=lambda: 0, trim=lambda: False)
    result = processor(monitor, clock).process_with_memory_awareness([1], Recorder())
    assert result["status"] == "aborted"
    assert len(clock.sleeps) < 50


def test_every_trip_is_followed_by_a_cleanup_before_waiting(config, clock):
    """Also a re-trip from half-open: each entry into OPEN cleans up at once, not 4 backoffs later."""
    spells = []
    probe = ScriptedProbe(on_read=lambda _n: gb(1.6) if any(a <= clock.now() < b for a, b in spells) else gb(0.5))
    monitor = MemoryMonitor(config, probe=probe, clock=clock)
    events = []
    monitor.breaker.add_listener(lambda t: events.append(("open", clock.now())) if t.new.name == "OPEN" else None)
    monitor.add_cleanup_listener(lambda r: events.append(("cleanup", clock.now())))

    def hook(batch):
        clock.advance(0.1)
        if batch[0] in (5, 10):  # the second spell starts on the half-open probe batch
            spells.append([clock.now(), clock.now() + 1.5])

    rec = Recorder(hook)
    result = processor(monitor, clock).process_with_memory_awareness(list(range(20)), rec)
    assert result["breaker_trips"] == 2 and result["status"] == "success"
    opens = [t for kind, t in events if kind == "open"]
    for at in opens:
        assert ("cleanup", at) in events, f"no cleanup right after the trip at {at}: {events}"
    assert_at_most_once_in_order(list(range(20)), rec, result)


def test_config_changes_mid_run_apply_to_the_next_batch(monitor, clock):
    def hook(batch):
        if batch[0] == 0:
            monitor.update_config(batch_size_max=2)

    rec = Recorder(hook)
    processor(monitor, clock).process_with_memory_awareness(list(range(9)), rec)
    assert rec.sizes == [5, 2, 2]


def test_peak_is_this_runs_not_the_monitors_lifetime(monitor, probe, clock):
    probe.set_gb(1.4)
    monitor.sample()  # an earlier spike, before this run
    probe.set_gb(0.5)
    monitor.sample()
    clock.advance(10)
    monitor.sample()
    assert monitor.breaker.state.name == "CLOSED"

    def hook(batch):
        probe.set_gb(0.6 + 0.01 * batch[0])  # 0.60 then 0.65 GB: two batches of five

    result = processor(monitor, clock).process_with_memory_awareness(list(range(10)), Recorder(hook))
    assert result["peak_memory_gb"] == pytest.approx(0.65)
    assert monitor.peak_bytes == gb(1.4)  # the monitor's own peak is left alone
    result = processor(monitor, clock).process_with_memory_awareness([0], Recorder(lambda b: probe.set_gb(1.45)))
    assert result["peak_memory_gb"] == pytest.approx(1.45)


# -- the headroom brake ---------------------------------------------------------------------------


def braked_processor(monitor, probe, clock, tmp_path, sleep_hook=None):
    """A processor with a HeadroomWatch on a fake v2 tree (2GB limit); each batch grows RSS by 100MB for its
    duration (one batch's measured cost)."""
    tree = Tree(tmp_path)
    watch = HeadroomWatch(tree.reader())

    def sleep(seconds):
        clock.sleep(seconds)
        if sleep_hook is not None:
            sleep_hook(tree)

    def grow(batch):
        probe.rss += 100 * MB_
        monitor.sample()  # the peak, inside the batch
        probe.rss -= 100 * MB_
        clock.advance(1.0)

    return SmartBatchProcessor(monitor, sleep=sleep, clock=clock, headroom=watch), tree, Recorder(grow)


def test_low_headroom_holds_batches_with_cleanups_then_resumes_at_the_smallest_size(
    monitor, probe, clock, tmp_path, memlog
):
    waited = []

    def neighbour_leaves(tree):
        waited.append(clock())
        if len(waited) == 5:
            tree.use(1 * GB_)  # 1GB left: past 1.25 x 100MB

    proc, tree, rec = braked_processor(monitor, probe, clock, tmp_path, neighbour_leaves)
    calls_before = []

    def squeeze(batch):
        rec(batch)
        calls_before.append(len(waited))
        if len(rec.ok) == 2:
            tree.use(2 * GB_ - 60 * MB_)  # a neighbour: 60MB left, below the 100MB one batch costs

    result = proc.process_with_memory_awareness(list(range(20)), squeeze)
    assert result["status"] == "success" and result["processed"] == 20
    assert len(waited) >= 5, "it waited while the headroom was low"
    third = rec.calls[2]
    assert calls_before[2] >= 5, "no batch ran while the headroom was below one batch's cost"
    assert len(third) == monitor.config.batch_size_min, "the first batch after the brake is the smallest"
    assert rec.sizes[3] == monitor.config.batch_size_max
    lows = [r for r in memlog.records if "below one batch's measured cost" in r.getMessage()]
    backs = [r for r in memlog.records if "Memory headroom back" in r.getMessage()]
    assert len(lows) == 1 and len(backs) == 1, "one line each way, not one per batch or per round"
    assert result["cleanups"] >= 2, "the wait cleaned up (on entering, then at the escalation round)"


def test_a_headroom_that_never_comes_back_ends_the_call_with_a_reason(monitor, probe, clock, tmp_path, memlog):
    proc, tree, rec = braked_processor(monitor, probe, clock, tmp_path)

    def squeeze(batch):
        rec(batch)
        tree.use(2 * GB_ - 60 * MB_)

    result = proc.process_with_memory_awareness(list(range(20)), squeeze)
    assert result["status"] == "aborted"
    assert "Memory headroom stayed below one batch's cost" in result["reason"]
    assert result["processed"] < 20 and result["unprocessed"] == list(range(20))[result["processed"] :]
    assert len(rec.ok) <= 2, "once the watch read the low headroom (at most a second late) no batch ran"
    assert "for 10s" in result["reason"], "the breaker's timeout (10 s of running time) ended it"
