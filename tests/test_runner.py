"""The engine's loop, commands and memory decisions, on a real job and a real SQLite file.

The executor is the fast hash embedder (tests/support/executors.py) and memory
comes from a scripted probe where a test must steer the breaker; the real
model and real memory are exercised in tests/test_cli.py and tests/test_reliability.py.
"""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from memtui.errors import ConfigError
from memtui.events import BatchDone, BatchStarted, BreakerChanged, CleanupRan, Notice, RunFinished
from memtui.faces.job import progress_line
from memtui.jobs.cache import CacheJob
from memtui.memory import BreakerState, Cleaner, MemoryConfig, MemoryLimit, MemoryMonitor
from memtui.memory.units import GB, MB
from memtui.runner import Runner
from tests.memory.fakes import ScriptedProbe
from tests.support.executors import FakeExecutor
from tests.support.fakes import FakeClock
from tests.support.inputs import domain_names, write_input


class HashExecutor(FakeExecutor):
    """The shared fake executor, recording each text it encodes and calling ``on_texts`` per sub-batch."""

    def __init__(self, *, on_sub_batch=None, **kw) -> None:
        super().__init__(**kw)
        self.on_texts = on_sub_batch
        self.encoded: list[str] = []

    @property
    def cache_clears(self) -> int:
        return self.clears

    def encode_iter(self, texts):
        for indices, vectors in super().encode_iter(texts):
            if self.on_texts is not None:
                self.on_texts([texts[i] for i in indices])
            self.encoded.extend(texts[i] for i in indices)
            yield indices, vectors


FAST = dict(
    sample_interval_s=0.01,
    backoff_initial_s=0.01,
    backoff_max_s=0.05,
    reset_hold_s=0.01,
    reset_hold_max_s=0.05,
    breaker_timeout_s=0.5,
)


def make_runner(tmp_path, *, domains=4, executor=None, probe=None, config=None, **job_kw):
    source = write_input(tmp_path / "in.jsonl", domains=domains, per_domain=9)
    executor = executor or HashExecutor()
    job = CacheJob(source, tmp_path / "cache.sqlite", executor, model_id="hash-test", **job_kw)
    monitor = MemoryMonitor(config or MemoryConfig(**FAST), probe=probe)
    return Runner(job, monitor), executor


def committed(tmp_path) -> tuple[int, int, list[str]]:
    con = sqlite3.connect(tmp_path / "cache.sqlite")
    try:
        vectors = con.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        keys = con.execute("SELECT count(DISTINCT key) FROM embeddings").fetchone()[0]
        domains = [d for (d,) in con.execute("SELECT domain FROM domains ORDER BY domain")]
    finally:
        con.close()
    return vectors, keys, domains


def run_in_thread(runner: Runner) -> tuple[threading.Thread, dict]:
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("report", runner.run()), daemon=True)
    thread.start()
    return thread, box


def wait_until(predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def test_a_run_embeds_each_text_once_and_reports(tmp_path):
    runner, executor = make_runner(tmp_path, domains=7)
    events = runner.subscribe()
    report = runner.run()
    assert report["status"] == "success" and report["exit_code"] == 0
    assert report["items"] == 63 and report["domains_done"] == 7 and report["batches"] == 2
    assert len(executor.encoded) == len(set(executor.encoded)) == 63
    vectors, keys, domains = committed(tmp_path)
    assert vectors == keys == 63 and domains == domain_names(7)
    kinds = [type(e) for e in events.drain()]
    assert kinds.count(BatchStarted) == kinds.count(BatchDone) == 2 and kinds[-1] is RunFinished
    assert report["rss_anon_gb"] > 0 and report["rss_file_gb"] >= 0
    assert report["rss_anon_gb"] + report["rss_file_gb"] <= report["peak_memory_gb"] + 0.05
    snap = runner.snapshot()
    assert snap.finished and snap.items_done == snap.items_total == 63 and snap.report == report


def test_a_complete_cache_never_loads_the_model(tmp_path):
    make_runner(tmp_path)[0].run()
    runner, executor = make_runner(tmp_path)
    report = runner.run()
    assert report["status"] == "success" and report["items_skipped"] == 36 and report["items_embedded"] == 0
    assert executor.loads == 0


def test_batch_size_follows_the_breaker(tmp_path):
    probe = ScriptedProbe(rss=int(1.2 * GB))  # above warning, below the breaker: one domain a batch
    runner, _ = make_runner(tmp_path, domains=3, probe=probe)
    events = runner.subscribe()
    report = runner.run()
    sizes = [len(e.units) for e in events.drain() if isinstance(e, BatchStarted)]
    assert sizes == [1, 1, 1] and report["memory_warnings"] == 1 and report["cleanups"] >= 1


def test_pause_holds_between_sub_batches_and_resume_continues(tmp_path):
    runner, executor = make_runner(tmp_path, domains=6, executor=HashExecutor(sub_batch=2, delay_s=0.02))
    thread, box = run_in_thread(runner)
    wait_until(lambda: len(executor.encoded) >= 4)
    runner.pause()
    wait_until(lambda: runner.snapshot().phase == "paused")
    held = len(executor.encoded)
    time.sleep(0.3)
    assert len(executor.encoded) == held, "encoding went on while paused"
    runner.resume()
    thread.join(timeout=20)
    assert box["report"]["status"] == "success" and len(executor.encoded) == 54


def test_stop_mid_batch_commits_what_was_embedded_and_names_the_rest(tmp_path):
    runner, executor = make_runner(tmp_path, domains=6, executor=HashExecutor(sub_batch=2, delay_s=0.02))
    thread, box = run_in_thread(runner)
    wait_until(lambda: len(executor.encoded) >= 6)
    runner.stop()
    thread.join(timeout=20)
    report = box["report"]
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    vectors, keys, domains = committed(tmp_path)
    assert vectors == len(executor.encoded) == keys  # every embedded vector kept, none twice
    assert report["domains_done"] == len(domains)
    con = sqlite3.connect(tmp_path / "cache.sqlite")
    try:
        stored = con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    finally:
        con.close()
    assert stored >= report["items"]
    assert report["responses_committed"] == stored, "the report counts what the cache holds, partial domains too"
    assert f"{stored} responses committed to the cache" in report.summary_lines()[0]
    assert report["unprocessed_domains"] == 6 - len(domains)
    assert set(report["unprocessed"]) == set(domain_names(6)) - set(domains)
    # A rerun finishes the job without embedding anything twice.
    rerun, executor2 = make_runner(tmp_path, domains=6)
    assert rerun.run()["status"] == "success"
    assert not set(executor.encoded) & set(executor2.encoded)
    assert committed(tmp_path)[0] == 54


def test_breaker_open_that_never_resets_aborts_after_the_timeout(tmp_path):
    # On the fake clock (the wait's rounds, cleanups and unload are counted, not timed): with a real
    # clock and a 0.5 s timeout, a loaded machine could time the wait out before the unload came.
    probe = ScriptedProbe(rss=int(0.5 * GB))
    executor = HashExecutor(sub_batch=3, on_sub_batch=lambda texts: probe.set_gb(2.0))  # "leaks" past the breaker
    runner, _, clock = fake_time_runner(tmp_path, domains=5, executor=executor, probe=probe)
    events = runner.subscribe()
    report = runner.run()
    assert report["status"] == "aborted" and report["exit_code"] == 1
    assert report["breaker_trips"] == 1 and report["unprocessed_domains"] >= 1
    assert executor.unloads == 1, "the model is unloaded as a last resort"
    vectors, _, domains = committed(tmp_path)
    assert report["domains_done"] == len(domains) and vectors == len(executor.encoded)
    drained = events.drain()
    assert any(isinstance(e, BreakerChanged) and e.new is BreakerState.OPEN for e in drained)
    assert any(isinstance(e, CleanupRan) for e in drained)
    assert 0 < sum(clock.sleeps) <= FAKE_TIME["breaker_timeout_s"], "it waited, and never past the timeout"


def test_breaker_that_resets_lets_the_run_complete(tmp_path):
    probe = ScriptedProbe(rss=int(0.5 * GB))
    state = {"tripped": False}

    def spike_once(texts):
        if not state["tripped"]:
            state["tripped"] = True
            probe.set_gb(1.6)
            threading.Timer(0.1, probe.set_gb, args=(0.5,)).start()  # memory comes back

    runner, executor = make_runner(tmp_path, domains=4, executor=HashExecutor(on_sub_batch=spike_once), probe=probe)
    report = runner.run()
    assert report["status"] == "success" and report["breaker_trips"] == 1
    assert len(executor.encoded) == len(set(executor.encoded)) == 36


def test_memory_error_is_retried_smaller(tmp_path):
    calls = {"n": 0}

    def fail_once(texts):
        calls["n"] += 1
        if calls["n"] == 4:  # after three sub-batches: the first domain (9 texts) is already whole
            raise MemoryError("simulated")

    runner, _executor = make_runner(tmp_path, domains=6, executor=HashExecutor(on_sub_batch=fail_once))
    events = runner.subscribe()
    report = runner.run()
    assert report["status"] == "success"
    started = [len(e.units) for e in events.drain() if isinstance(e, BatchStarted)]
    assert started[0] == 5 and started[1] < 5  # the failed batch came back smaller
    vectors, keys, domains = committed(tmp_path)
    assert vectors == keys == 54 and len(domains) == 6
    assert report["domains_done"] == 6 and runner.snapshot().items_done == 54  # the finished domain counted once


def test_thresholds_are_validated_and_applied_mid_run(tmp_path):
    probe = ScriptedProbe(rss=int(0.7 * GB))
    runner, _ = make_runner(tmp_path, probe=probe)
    with pytest.raises(ConfigError):
        runner.set_thresholds(warning=2.0, max=1.8)
    assert runner.monitor.config.max_memory_gb == 1.5  # nothing applied
    with pytest.raises(ConfigError):
        runner.set_thresholds(max="lots")
    runner.monitor.sample()
    runner.set_thresholds(warning=0.4, max=0.6)  # below current RSS: the breaker trips at once
    assert runner.monitor.breaker.state is BreakerState.OPEN
    runner.monitor.limit = MemoryLimit(4 * GB, "test cgroup")
    runner.set_thresholds(warning="50%", max="60%")
    assert runner.monitor.config.warning_memory_gb == pytest.approx(2.0)
    assert runner.monitor.config.max_memory_gb == pytest.approx(2.4)


def test_requested_cleanup_runs_in_the_job_thread_and_is_reported(tmp_path):
    # The first sub-batch is held at the gate until the request is in: the run cannot end before it lands.
    gate = threading.Event()
    runner, executor = make_runner(tmp_path, domains=6, executor=HashExecutor(sub_batch=2, gate=gate))
    events = runner.subscribe()
    thread, box = run_in_thread(runner)
    assert executor.holding.wait(60), "the job never reached its first sub-batch"
    runner.request_cleanup()
    gate.set()
    thread.join(timeout=60)
    cleanups = [e for e in events.drain() if isinstance(e, CleanupRan)]
    assert any(e.report.reason == "requested by operator" for e in cleanups)
    assert executor.cache_clears >= 1
    assert box["report"]["cleanups"] >= 1


# -- the admission policy in the engine, on a fake clock ---------------------------------------
# Every wait below (the backoff after a MemoryError, the open breaker) is a FakeClock sleep: no
# real timer runs, and the time a wait took is exact.

FAKE_TIME = dict(
    sample_interval_s=3600.0,  # the sampler thread stays quiet: the job samples at its checkpoints
    backoff_initial_s=0.25,
    backoff_max_s=4.0,
    reset_hold_s=1.0,
    reset_hold_max_s=8.0,
    breaker_timeout_s=30.0,
)


def fake_time_runner(tmp_path, *, domains, executor=None, probe=None, **config):
    """A Runner whose clock and sleep are one FakeClock (its monitor's too); returns it, the executor, the clock."""
    clock = FakeClock()
    base, executor = make_runner(tmp_path, domains=domains, executor=executor)
    probe = probe or ScriptedProbe(rss=int(0.5 * GB))
    monitor = MemoryMonitor(MemoryConfig(**{**FAKE_TIME, **config}), probe=probe, clock=clock)
    monitor.cleaner = Cleaner(probe, clock=clock, collect=lambda: 0, trim=lambda: False)  # fake memory: no real gc
    return Runner(base.job, monitor, clock=clock, sleep=clock.sleep), executor, clock


def fail_at_sub_batch(n: int):
    """on_sub_batch hook: MemoryError on the n-th sub-batch only (after n-1 sub-batches went through)."""
    calls = {"n": 0}

    def hook(texts):
        calls["n"] += 1
        if calls["n"] == n:
            raise MemoryError("simulated")

    return hook


class OneDomainAtATime(HashExecutor):
    """MemoryError whenever asked for more than one domain's texts (9) at once, before encoding any."""

    def encode_iter(self, texts):
        if len(texts) > 9:
            raise MemoryError("simulated")
        yield from super().encode_iter(texts)


def test_a_memory_error_keeps_the_part_already_embedded(tmp_path):
    # Sub-batches of 4: the 4th fails after 12 texts, the first domain (9) whole and 3 of the second.
    runner, executor = fake_time_runner(tmp_path, domains=6, executor=HashExecutor(on_sub_batch=fail_at_sub_batch(4)))[
        :2
    ]
    report = runner.run()
    assert report["status"] == "success"
    assert len(executor.encoded) == len(set(executor.encoded)) == 54, "a text was embedded twice"
    assert report["items_embedded"] == 54 and report["domains_done"] == 6
    vectors, keys, _ = committed(tmp_path)
    assert vectors == keys == 54


def test_after_a_memory_error_the_batch_halves_then_grows_back_one_by_one(tmp_path):
    runner, _, clock = fake_time_runner(tmp_path, domains=20, executor=HashExecutor(on_sub_batch=fail_at_sub_batch(4)))
    events = runner.subscribe()
    report = runner.run()
    assert report["status"] == "success" and report["domains_done"] == 20
    started = [len(e.units) for e in events.drain() if isinstance(e, BatchStarted)]
    # AIMD: 5 fails (one domain already whole), then 2, 3, 4 and the full 5 again; not 2, 4 (doubling
    # jumps back to the size that failed) and not 2, 2, 2 (never relaxed).
    assert started == [5, 2, 3, 4, 5, 5]
    assert clock.sleeps == [0.25], "one backoff for the one MemoryError"


def test_the_snapshot_s_batch_size_is_the_one_admitted_after_a_memory_error(tmp_path):
    """The faces show what admission allows (the MemoryError cap included), not the breaker's size alone."""
    shown: list[int] = []
    fail = fail_at_sub_batch(4)
    holder: list[Runner] = []

    def hook(texts):
        shown.append(holder[0].snapshot().batch_size)
        fail(texts)

    runner, _, _ = fake_time_runner(tmp_path, domains=20, executor=HashExecutor(on_sub_batch=hook))
    holder.append(runner)
    assert runner.run()["status"] == "success"
    assert shown[0] == 5 and 2 in shown and 3 in shown, shown  # 5, then the cap 2, 3, 4 as it grows back


def test_only_memory_errors_on_a_single_domain_count_towards_giving_up(tmp_path):
    # memory_error_retries=1: two MemoryErrors in a row would end the run if every one counted.
    runner, executor = fake_time_runner(tmp_path, domains=4, executor=OneDomainAtATime(), memory_error_retries=1)[:2]
    events = runner.subscribe()
    report = runner.run()
    assert report["status"] == "success" and report["domains_done"] == 4
    assert len(executor.encoded) == len(set(executor.encoded)) == 36
    started = [len(e.units) for e in events.drain() if isinstance(e, BatchStarted)]
    assert started[:3] == [4, 2, 1], "halved twice in a row without giving up"


def test_a_domain_that_always_raises_ends_the_run_after_the_retries(tmp_path):
    def poison(texts):
        if any("site002" in t for t in texts):
            raise MemoryError("simulated")

    runner = fake_time_runner(tmp_path, domains=5, executor=HashExecutor(on_sub_batch=poison), memory_error_retries=2)[
        0
    ]
    events = runner.subscribe()
    report = runner.run()
    assert report["status"] == "aborted" and report["exit_code"] == 1
    assert "site002.example" in report["unprocessed"] and report["domains_done"] == 2
    notices = [e.message for e in events.drain() if isinstance(e, Notice)]
    assert "🚨 MemoryError 3 times in a row; giving up" in notices


def test_the_report_peak_is_the_highest_memory_of_the_run_not_the_last(tmp_path):
    probe = ScriptedProbe(rss=int(0.5 * GB))

    def spike(texts):  # the 3rd sub-batch peaks above the warning level, the 6th is back down
        spike.n += 1
        if spike.n == 3:
            probe.set_gb(1.2)
        elif spike.n == 6:
            probe.set_gb(0.6)

    spike.n = 0

    runner, _, _ = fake_time_runner(tmp_path, domains=4, executor=HashExecutor(on_sub_batch=spike), probe=probe)
    report = runner.run()
    assert report["status"] == "success"
    assert report["peak_memory_gb"] == pytest.approx(1.2)
    assert report["memory_usage_gb"] == pytest.approx(0.6)
    assert report["memory_warnings"] == 1


def test_an_open_breaker_gives_up_at_the_timeout_exactly_on_a_fake_clock(tmp_path):
    """breaker_timeout_s (30 s) of waiting, neither more (a doubled timeout, a backoff that overshoots
    the deadline) nor less; memory keeps falling, so no floor ends it early."""
    clock_box = {}
    tripped = {"at": None}

    def rss(_reads):
        at = tripped["at"]
        if at is None:
            return int(0.5 * GB)
        return int(3.0 * GB) - int(20 * MB * (clock_box["clock"].now() - at))  # 20 MB/s down, above 1.5 GB for 75 s

    def leak(texts):
        if tripped["at"] is None:
            tripped["at"] = clock_box["clock"].now()

    probe = ScriptedProbe(on_read=rss)
    runner, executor, clock = fake_time_runner(
        tmp_path, domains=5, executor=HashExecutor(sub_batch=3, on_sub_batch=leak), probe=probe
    )
    clock_box["clock"] = clock
    events = runner.subscribe()
    report = runner.run()
    assert report["status"] == "aborted" and report["exit_code"] == 1
    assert "stayed open" in report["reason"] and "memory_floor_gb" not in report
    waited = clock.now() - tripped["at"]
    assert waited == pytest.approx(30.0), f"gave up after {waited}s of a 30 s timeout"
    assert sum(clock.sleeps) == pytest.approx(30.0) and max(clock.sleeps) <= 4.0
    assert executor.unloads == 1
    assert report["breaker_trips"] == 1
    vectors, _, domains = committed(tmp_path)
    assert report["domains_done"] == len(domains) and vectors == len(executor.encoded)
    assert any(isinstance(e, Notice) and "stayed open" in e.message for e in events.drain())


def test_the_default_sleep_still_wakes_at_once_for_stop(tmp_path):
    """Without an injected sleep, an open-breaker wait is the responsive one: stop ends it at once."""
    probe = ScriptedProbe(rss=int(0.5 * GB))
    executor = HashExecutor(sub_batch=3, on_sub_batch=lambda texts: probe.set_gb(2.0))
    config = MemoryConfig(**{**FAST, "backoff_initial_s": 30.0, "backoff_max_s": 30.0, "breaker_timeout_s": 600.0})
    runner, _ = make_runner(tmp_path, domains=3, executor=executor, probe=probe, config=config)
    thread, box = run_in_thread(runner)
    wait_until(lambda: runner.snapshot().phase == "waiting for memory")
    started = time.monotonic()
    runner.stop()
    thread.join(timeout=10)
    assert box["report"]["status"] == "interrupted" and time.monotonic() - started < 5


def test_an_open_breaker_counts_down_to_giving_up_and_cleanups_that_free_nothing_back_off(tmp_path):
    """The snapshot carries the running time left (the breaker panel's 'gives up in M:SS'), falling
    round by round to 0; cleanups that free nothing come further and further apart."""
    clock_box = {}
    tripped = {"at": None}

    def rss(_reads):
        at = tripped["at"]
        if at is None:
            return int(0.5 * GB)
        return int(3.0 * GB) - int(20 * MB * (clock_box["clock"].now() - at))

    def leak(texts):
        if tripped["at"] is None:
            tripped["at"] = clock_box["clock"].now()

    probe = ScriptedProbe(on_read=rss)
    runner, _executor, clock = fake_time_runner(
        tmp_path, domains=5, executor=HashExecutor(sub_batch=3, on_sub_batch=leak), probe=probe
    )
    clock_box["clock"] = clock
    countdown: list[float | None] = []

    def sleep(seconds: float) -> None:
        countdown.append(runner.snapshot().breaker_gives_up_in_s)
        clock.sleep(seconds)

    runner._sleep = sleep
    events = runner.subscribe()
    report = runner.run()
    assert report.status == "aborted"
    shown = [c for c in countdown if c is not None]
    assert shown and shown[0] == pytest.approx(30.0) and shown == sorted(shown, reverse=True)
    assert runner.snapshot().breaker_gives_up_in_s is None, "no countdown once the run is over"
    rounds = len(countdown)
    cleanups = [e for e in events.drain() if isinstance(e, CleanupRan)]
    # Every 3 rounds would be rounds // 3 + 1; freeing nothing, they back off (the unload's is one of them).
    assert len(cleanups) < rounds // 3, (len(cleanups), rounds)


def test_paused_time_is_left_out_of_rate_and_eta_and_work_in_flight_counts(tmp_path):
    """A 15 s pause leaves items_per_s and the ETA as they were; a batch in flight counts before its commit."""
    box = {}

    def hook(texts):
        clock = box["clock"]
        clock.advance(1.0)
        box["n"] = box.get("n", 0) + 1
        if box["n"] == 2:  # mid first batch: its sub-batches count before the commit
            box["in_flight"] = box["runner"].snapshot()
        if box["n"] == 5:
            box["runner"].pause()

    runner, _executor, clock = fake_time_runner(
        tmp_path, domains=6, executor=HashExecutor(sub_batch=3, on_sub_batch=hook), probe=None
    )
    box["clock"], box["runner"] = clock, runner
    thread, _ = run_in_thread(runner)
    wait_until(lambda: runner.snapshot().phase == "paused")
    mid = box["in_flight"]
    assert mid.batches == 0 and mid.in_flight_progress[0] > 0 and mid.items_per_s > 0 and mid.eta_s is not None
    # every face counts the same: the headless line too counts the batch in flight
    assert mid.responses_done == mid.in_flight_progress[0]
    assert progress_line(mid).startswith(f"⏳ {mid.responses_done}/")
    before = runner.snapshot()
    clock.advance(15.0)
    after = runner.snapshot()
    assert after.elapsed_s == pytest.approx(before.elapsed_s + 15.0)
    assert after.items_per_s == pytest.approx(before.items_per_s) and after.eta_s == pytest.approx(before.eta_s)
    runner.resume()
    thread.join(10)
    report = runner.snapshot().report
    assert report is not None and report.status == "success"
    # the report's rate is the screen's: responses committed per second of working time, the pause left out
    assert report.duration_s >= 15.0 + 1.0
    assert report.items_per_s == pytest.approx(report.responses_committed / (report.duration_s - 15.0), rel=0.01)
