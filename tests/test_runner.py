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
from memtui.events import BatchDone, BatchStarted, BreakerChanged, CleanupRan, RunFinished
from memtui.jobs.cache import CacheJob
from memtui.memory import BreakerState, MemoryConfig, MemoryLimit, MemoryMonitor
from memtui.memory.units import GB
from memtui.runner import Runner
from tests.memory.fakes import ScriptedProbe
from tests.support.inputs import domain_names, write_input
from tests.support.executors import FakeExecutor


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

FAST = dict(sample_interval_s=0.01, backoff_initial_s=0.01, backoff_max_s=0.05, reset_hold_s=0.01,
            reset_hold_max_s=0.05, breaker_timeout_s=0.5)


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


def wait_until(predicate, timeout=10.0):
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
    assert report["unprocessed_domains"] == 6 - len(domains)
    assert set(report["unprocessed"]) == set(domain_names(6)) - set(domains)
    # A rerun finishes the job without embedding anything twice.
    rerun, executor2 = make_runner(tmp_path, domains=6)
    assert rerun.run()["status"] == "success"
    assert not set(executor.encoded) & set(executor2.encoded)
    assert committed(tmp_path)[0] == 54


def test_breaker_open_that_never_resets_aborts_after_the_timeout(tmp_path):
    probe = ScriptedProbe(rss=int(0.5 * GB))
    executor = HashExecutor(sub_batch=3, on_sub_batch=lambda texts: probe.set_gb(2.0))  # "leaks" past the breaker
    runner, _ = make_runner(tmp_path, domains=5, executor=executor, probe=probe)
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

    runner, executor = make_runner(tmp_path, domains=6, executor=HashExecutor(on_sub_batch=fail_once))
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
    runner, executor = make_runner(tmp_path, domains=6, executor=HashExecutor(sub_batch=2, delay_s=0.02))
    events = runner.subscribe()
    thread, box = run_in_thread(runner)
    wait_until(lambda: len(executor.encoded) >= 2)
    runner.request_cleanup()
    thread.join(timeout=20)
    cleanups = [e for e in events.drain() if isinstance(e, CleanupRan)]
    assert any(e.report.reason == "requested by operator" for e in cleanups)
    assert executor.cache_clears >= 1
    assert box["report"]["cleanups"] >= 1
