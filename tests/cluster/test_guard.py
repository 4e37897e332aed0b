"""A worker's guard without a cluster: the pause lease on a fake clock, a held task waking for a cleanup
and for resume, orders by version, and a worker's row from plain data to the wire and the report.

No model is loaded here (the guard loads it on its first sub-batch); the cluster tests run the same
guard inside real Dask workers."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from memtui import wire
from memtui.cluster.plugin import PAUSE_LEASE_S, Orders, WorkerGaveUp, WorkerGuard
from memtui.cluster.rows import newer, recent_peaks, report_entry, worker_row
from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor
from memtui.memory.admission import Admission, MemoryGate
from memtui.memory.breaker import BreakerState
from memtui.memory.headroom import HeadroomWatch
from memtui.memory.units import GB, MB
from memtui.runner import Runner
from tests.memory.test_headroom import Tree
from tests.support.executors import FakeExecutor
from tests.support.fakes import FakeClock
from tests.support.inputs import write_input

CONFIG = MemoryConfig(max_memory_gb=3.0, warning_memory_gb=2.0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def guard(clock: FakeClock) -> WorkerGuard:
    return WorkerGuard("tcp://127.0.0.1:4000", None, "torch", CONFIG, None, name="0", clock=clock)


def _held(guard: WorkerGuard) -> threading.Thread:
    """A task's checkpoint between two sub-batches, in its own thread (as in a worker)."""
    thread = threading.Thread(target=guard._hold, daemon=True)
    thread.start()
    return thread


def _until(predicate, what: str) -> None:
    done = threading.Event()
    for _ in range(200):
        if predicate():
            return
        done.wait(0.05)
    raise AssertionError(f"never: {what}")


def test_a_pause_holds_while_renewed_and_lapses_without_its_client(guard, clock):
    guard.follow(Orders(1, True, CONFIG))
    assert guard.row()["paused"] and guard.row()["orders"] == 1
    clock.advance(PAUSE_LEASE_S - 1)
    guard.follow(Orders(1, True, CONFIG))  # the client renews it
    clock.advance(PAUSE_LEASE_S - 1)
    assert guard.row()["paused"]
    guard.follow(Orders(0, False, CONFIG))  # an older order changes nothing
    assert guard.row()["paused"] and guard.row()["orders"] == 1
    clock.advance(2)  # the client stopped renewing: the worker goes on
    assert not guard.row()["paused"]


def test_a_held_task_runs_a_cleanup_asked_for_and_goes_on_at_resume(guard):
    guard.follow(Orders(1, True, CONFIG))
    with guard._lock:  # a task is running: a cleanup waits for its next checkpoint
        thread = _held(guard)
        _until(lambda: guard.activity == "paused", "the task holds")
        guard.request_cleanup()
        _until(lambda: guard.monitor.cleanups == 1, "the held task cleans up, in its own thread")
        assert thread.is_alive(), "a cleanup does not end the pause"
        guard.follow(Orders(2, False, CONFIG))
        thread.join(timeout=10)
        assert not thread.is_alive()


def test_an_idle_worker_cleans_up_at_once_a_busy_one_at_its_next_checkpoint(guard):
    guard.request_cleanup()
    assert guard.monitor.cleanups == 1
    with guard._lock:
        guard.request_cleanup()
        assert guard.monitor.cleanups == 1
        guard._hold()  # not paused: runs the cleanup and returns
        assert guard.monitor.cleanups == 2


def test_new_levels_reach_the_monitor_and_the_row(guard):
    config = CONFIG.replace(max_memory_gb=3.5, warning_memory_gb=2.5)
    guard.follow(Orders(1, False, config))
    row = guard.row()
    assert guard.monitor.config == config
    assert row["max_bytes"] == int(3.5 * GB) and row["warning_bytes"] == int(2.5 * GB) and row["orders"] == 1


def test_recent_peaks_keep_the_peak_of_each_second_oldest_first():
    # whole seconds counted back from the last sample, oldest first: (99, 100], (100, 101], (101, 102]
    history = [(100.0, 5 * MB), (100.5, 9 * MB), (101.2, 7 * MB), (101.9, 6 * MB), (102.0, 8 * MB)]
    assert recent_peaks(history, seconds=20) == [5 * MB, 9 * MB, 8 * MB]
    assert recent_peaks(history, seconds=1) == [8 * MB]
    assert recent_peaks([]) == []


def test_a_newer_reading_wins_and_a_restarted_worker_is_newer(guard):
    first, second = guard.row(), guard.row()
    assert newer(second, first) and not newer(first, second) and newer(first, None)
    restarted = WorkerGuard("tcp://127.0.0.1:4000", None, "torch", CONFIG, None).row()
    assert newer(restarted, second)


def test_a_snapshot_with_worker_rows_crosses_the_wire_and_the_report_lists_them(tmp_path: Path, guard):
    source = write_input(tmp_path / "in.jsonl", domains=2, per_domain=2)
    runner = Runner(CacheJob(source, tmp_path / "c.sqlite", FakeExecutor(), model_id="fake"), MemoryMonitor(CONFIG))
    runner.open()
    guard.monitor.sample()
    row = worker_row(guard.row())
    lost = replace(row, address="tcp://127.0.0.1:4001", name="1", breaker=BreakerState.OPEN, lost=True)
    snapshot = replace(runner.snapshot(), workers=(row, lost))
    kind, back = wire.loads(wire.dumps("snapshot", snapshot))
    assert kind == "snapshot" and back == snapshot and isinstance(back.workers, tuple)
    entry = report_entry(lost)
    assert entry["lost"] and entry["breaker"] == "open" and entry["name"] == "1"
    assert entry["max_memory_gb"] == 3.0 and entry["peak_memory_gb"] == round(row.peak_bytes / GB, 3)


def test_the_client_sends_orders_until_each_row_shows_them_and_renews_a_pause(tmp_path: Path, guard):
    from memtui.cluster.engine import PAUSE_RENEW_S, POLL_S, ClusterRunner

    source = write_input(tmp_path / "in.jsonl", domains=1, per_domain=1)
    job = CacheJob(source, tmp_path / "c.sqlite", FakeExecutor(), model_id="fake")
    runner = ClusterRunner(job, MemoryMonitor(CONFIG), scheduler="tcp://127.0.0.1:1")  # connects only in run()
    address, now = "tcp://127.0.0.1:4000", 1000.0
    pause = Orders(1, True, CONFIG)
    assert runner._due(address, pause, now), "a worker with no row yet gets the orders"
    runner._sent[address] = (1, now)
    assert not runner._due(address, pause, now + POLL_S / 2), "not again before the next poll"
    assert runner._due(address, pause, now + POLL_S), "its row still lags: sent again"
    runner._workers[address] = replace(worker_row(guard.row()), orders=1)
    assert not runner._due(address, pause, now + PAUSE_RENEW_S / 2), "the row shows them"
    assert runner._due(address, pause, now + PAUSE_RENEW_S), "a pause is renewed"
    assert not runner._due(address, Orders(1, False, CONFIG), now + 10 * PAUSE_RENEW_S), "nothing to renew"
    assert runner._due(address, Orders(2, False, CONFIG), now + POLL_S / 2), "new orders go at once"


class _BudgetedEmbedder:
    """Stands in for the Embedder: records whether memory had the adaptive budget give way at each call."""

    loaded = True

    def __init__(self) -> None:
        from memtui.embed.budget import AdaptiveBudget

        self.budget = AdaptiveBudget(2048)
        self.tight: list[bool] = []

    def encode_iter(self, texts):
        import numpy as np

        self.tight.append(self.budget.memory_tight)
        yield list(range(len(texts))), np.zeros((len(texts), 4), dtype=np.float32)


def test_a_worker_gives_its_token_budget_the_smallest_size_when_memory_allows_less_than_a_batch(guard):
    """The one admission policy (Admission.full) decides for a worker as for the local Runner."""
    embedder = guard.embedder = _BudgetedEmbedder()  # type: ignore[assignment]
    guard._embed(["a", "b"])
    guard.follow(Orders(1, False, CONFIG.replace(warning_memory_gb=0.001, max_memory_gb=100.0)))  # this RSS: WARNING
    cleanups = guard.monitor.cleanups
    guard._embed(["c", "d"])
    assert embedder.tight[0] is False and embedder.tight[-1] is True
    assert guard.monitor.breaker.state is BreakerState.WARNING
    assert guard.monitor.cleanups == cleanups + 1, "one cleanup on entering WARNING, as the local Runner's"


# -- the headroom brake, as the local Runner's -------------------------------------------------------


def _braked_guard(tmp_path, clock, **config):
    tree = Tree(tmp_path)  # a v2 cgroup with a 2GB limit on a fake tree
    watch = HeadroomWatch(tree.reader(), every_s=0.0)
    cfg = CONFIG.replace(backoff_initial_s=0.01, backoff_max_s=0.05, **config)
    guard = WorkerGuard("tcp://127.0.0.1:4000", None, "torch", cfg, None, name="0", clock=clock, headroom=watch)
    guard.monitor.add_sample_listener(guard._on_sample)  # what start() does, without the sampler thread
    watch.cost.begin(500 * MB)
    watch.cost.end(600 * MB)  # one sub-batch cost 100MB
    tree.use(2 * GB - 60 * MB)  # a neighbour leaves 60MB
    guard.monitor.sample()
    assert watch.latest is not None and watch.latest.low
    return guard, tree


def test_a_worker_holds_its_sub_batch_while_the_headroom_is_low_then_takes_the_smallest(tmp_path, clock):
    guard, tree = _braked_guard(tmp_path, clock)
    admission = Admission(guard.monitor.config)
    thread = threading.Thread(target=lambda: guard._admit(MemoryGate(admission, time.monotonic)), daemon=True)
    thread.start()
    _until(lambda: guard.activity == "waiting for memory" and guard.monitor.cleanups >= 1, "the worker waits")
    assert thread.is_alive() and guard.sub_batch == 0
    tree.use(1 * GB)  # the neighbour leaves
    thread.join(timeout=30)
    assert not thread.is_alive() and admission.braked, "the next sub-batch takes the smallest share"
    cfg = guard.monitor.config
    assert admission.scaled_size(guard.monitor.breaker.state, cfg, guard.sub_batch_texts) == max(
        1, guard.sub_batch_texts * cfg.batch_size_min // cfg.batch_size_max
    )


def test_a_worker_whose_headroom_never_comes_back_gives_up_with_the_reason(tmp_path, clock):
    guard, _tree = _braked_guard(tmp_path, clock, breaker_timeout_s=60.0)
    with pytest.raises(WorkerGaveUp, match="Memory headroom stays at 0.06GB to cgroup v2 /job after cleanups"):
        guard._admit(MemoryGate(Admission(guard.monitor.config), time.monotonic))
