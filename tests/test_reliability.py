"""Memory faults through the real engine, with real allocations and the real RSS probe.

Thresholds sit just above this process's RSS at the start of each test, so the
faults below really cross them. The executor is the fast fake, whose sub-batch
hook makes the memory behaviour under test: a leak, cyclic garbage, a MemoryError.
"""

from __future__ import annotations

import gc
import sqlite3

from memtui.events import CleanupRan
from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor, ProcessProbe
from memtui.memory.units import GB, MB
from tests.support.inputs import domain_names, write_input
from tests.test_runner import HashExecutor

CHUNK = 40 * MB  # one sub-batch's allocation


def touched(n: int) -> bytearray:
    buf = bytearray(n)
    buf[::4096] = b"\x01" * len(range(0, n, 4096))  # resident, not just reserved
    return buf


def guarded_runner(tmp_path, executor, *, domains=8, timeout_s=1.5):
    from memtui.runner import Runner

    gc.collect()
    base = ProcessProbe().rss_bytes()
    config = MemoryConfig(
        warning_memory_gb=(base + 120 * MB) / GB,
        max_memory_gb=(base + 240 * MB) / GB,
        sample_interval_s=0.01,
        backoff_initial_s=0.02,
        backoff_max_s=0.1,
        reset_hold_s=0.05,
        reset_hold_max_s=0.2,
        breaker_timeout_s=timeout_s,
    )
    source = write_input(tmp_path / "in.jsonl", domains=domains, per_domain=9)
    job = CacheJob(source, tmp_path / "cache.sqlite", executor, model_id="hash-test")
    return Runner(job, MemoryMonitor(config)), config


def committed_domains(tmp_path) -> list[str]:
    con = sqlite3.connect(tmp_path / "cache.sqlite")
    try:
        return [d for (d,) in con.execute("SELECT domain FROM domains")]
    finally:
        con.close()


def test_a_leak_ends_aborted_with_finished_batches_kept_and_the_rest_named(tmp_path):
    retained: list[bytearray] = []
    executor = HashExecutor(sub_batch=3, on_sub_batch=lambda texts: retained.append(touched(CHUNK)))
    runner, config = guarded_runner(tmp_path, executor)
    events = runner.subscribe()
    try:
        report = runner.run()
    finally:
        retained.clear()
    assert report["status"] == "aborted" and report["exit_code"] == 1
    assert report["breaker_trips"] >= 1 and executor.unloads == 1  # escalated to unloading the model
    cleanups = [e.report for e in events.drain() if isinstance(e, CleanupRan)]
    assert cleanups and all(c.freed < CHUNK for c in cleanups)  # cleanup could not help a real leak
    done = committed_domains(tmp_path)
    assert report["domains_done"] == len(done) < 8
    assert set(report["unprocessed"]) == set(domain_names(8)) - set(done)
    assert report["peak_memory_gb"] * GB <= config.max_bytes + CHUNK + 30 * MB


def test_cyclic_garbage_is_freed_by_cleanup_and_the_run_completes(tmp_path):
    def make_garbage(texts):
        a, b = {"buf": touched(CHUNK)}, {}
        a["peer"], b["peer"] = b, a  # a cycle: only the cyclic collector frees it

    executor = HashExecutor(sub_batch=3, on_sub_batch=make_garbage)
    runner, config = guarded_runner(tmp_path, executor, timeout_s=10)
    events = runner.subscribe()
    gc.disable()  # so only memtui's cleanup collects, not an automatic pass at a random moment
    try:
        report = runner.run()
    finally:
        gc.enable()
        gc.collect()
    assert report["status"] == "success" and report["domains_done"] == 8
    assert report["memory_warnings"] >= 1
    freed = [e.report.freed for e in events.drain() if isinstance(e, CleanupRan)]
    assert max(freed) >= 2 * CHUNK  # the cleanup really gave memory back
    assert report["peak_memory_gb"] * GB <= config.max_bytes + CHUNK + 30 * MB
    assert len(committed_domains(tmp_path)) == 8


def test_a_memory_error_is_retried_smaller_and_the_run_completes(tmp_path):
    raised = []

    def fail_once(texts):
        if not raised:
            raised.append(touched(CHUNK))
            raised.clear()
            raised.append(True)
            raise MemoryError("simulated allocation failure")

    executor = HashExecutor(sub_batch=3, on_sub_batch=fail_once)
    runner, config = guarded_runner(tmp_path, executor)
    report = runner.run()
    assert report["status"] == "success" and report["domains_done"] == 8
    assert len(executor.encoded) == len(set(executor.encoded)) == 72
    assert report["peak_memory_gb"] * GB <= config.max_bytes + CHUNK
