import dataclasses
import logging
import threading
import time

import pytest

from memtui.errors import ConfigError
from memtui.memory import BreakerState, MemoryConfig, MemoryMonitor
from memtui.memory.probe import MemoryLimit

from .fakes import ScriptedProbe, gb


def test_sample_records_current_peak_and_history(monitor, probe, clock):
    for value in (0.3, 0.7, 0.5):
        probe.set_gb(value)
        assert monitor.sample() == gb(value)
        clock.advance(0.1)
    assert monitor.rss_bytes == gb(0.5)
    assert monitor.peak_bytes == gb(0.7)
    snap = monitor.snapshot()
    assert snap.samples == 3
    assert [r for _, r in snap.history] == [gb(0.3), gb(0.7), gb(0.5)]
    assert [t for t, _ in snap.history] == pytest.approx([1000.0, 1000.1, 1000.2])
    assert snap.rss_gb == pytest.approx(0.5) and snap.peak_gb == pytest.approx(0.7)


def test_current_gb_samples(monitor, probe):
    probe.set_gb(0.85)
    assert monitor.current_gb() == pytest.approx(0.85)
    assert probe.reads == 1


def test_reset_peak(monitor, probe):
    probe.set_gb(1.2)
    monitor.sample()
    probe.set_gb(0.4)
    monitor.sample()
    monitor.reset_peak()
    assert monitor.peak_bytes == gb(0.4)


def test_history_is_a_bounded_ring(config, probe, clock):
    monitor = MemoryMonitor(config.replace(history_size=4), probe=probe, clock=clock)
    for i in range(10):
        probe.rss = i
        monitor.sample()
    assert [r for _, r in monitor.snapshot().history] == [6, 7, 8, 9]
    monitor.update_config(history_size=2)
    assert [r for _, r in monitor.snapshot().history] == [8, 9]
    monitor.update_config(history_size=5)
    probe.rss = 10
    monitor.sample()
    assert [r for _, r in monitor.snapshot().history] == [8, 9, 10]


def test_sample_drives_the_breaker(monitor, probe):
    probe.set_gb(1.2)
    monitor.sample()
    assert monitor.breaker.state is BreakerState.WARNING
    probe.set_gb(1.6)
    monitor.sample()
    assert monitor.snapshot().state is BreakerState.OPEN


def test_warnings_counted_once_per_excursion(monitor, probe, clock):
    def feed(*values, step=0.2):
        for value in values:
            probe.set_gb(value)
            monitor.sample()
            clock.advance(step)

    feed(0.5, 1.01, 0.99, 1.01, 0.99, 1.2, 1.6, 1.7)  # one excursion, through warning to open
    assert monitor.warnings == 1
    feed(*[0.5] * 8)  # hold below reset: half-open
    assert monitor.breaker.state is BreakerState.HALF_OPEN
    monitor.breaker.record_success()
    assert monitor.breaker.state is BreakerState.CLOSED and monitor.warnings == 1
    feed(1.1)  # a new excursion
    assert monitor.warnings == 2
    feed(0.99, 1.0, 0.99, 1.05)  # inside the hysteresis band: still the same one
    assert monitor.warnings == 2
    feed(*[0.5] * 8, 2.0)  # back to normal, then straight to open: a third
    assert monitor.warnings == 3


def test_warning_log_lines(monitor, probe, clock, memlog):
    probe.set_gb(1.12)
    monitor.sample()
    assert "⚠️ Memory warning: 1.12GB" in memlog.messages
    probe.set_gb(1.55)
    monitor.sample()
    assert any(m.startswith("🚨 Circuit breaker OPEN at 1.55GB") for m in memlog.messages)
    probe.set_gb(0.5)
    monitor.sample()
    clock.advance(1)
    monitor.sample()
    assert any("HALF-OPEN" in m for m in memlog.messages)
    monitor.breaker.record_success()
    assert any(m.startswith("✅ Circuit breaker CLOSED") for m in memlog.messages)


def test_snapshot_is_an_immutable_copy(monitor, probe):
    probe.set_gb(0.5)
    monitor.sample()
    snap = monitor.snapshot()
    probe.set_gb(1.6)
    monitor.sample()
    assert snap.rss_bytes == gb(0.5) and snap.state is BreakerState.CLOSED and snap.samples == 1
    assert isinstance(snap.history, tuple) and len(snap.history) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.rss_bytes = 0  # type: ignore[misc]
    later = monitor.snapshot()
    assert later.state is BreakerState.OPEN and later.breaker.trips == 1


def test_snapshot_carries_levels_and_limit(config, probe, clock):
    limit = MemoryLimit(2 << 30, "cgroup memory.max (/)")
    monitor = MemoryMonitor(config, probe=probe, clock=clock, limit=limit)
    snap = monitor.snapshot()
    assert (snap.warning_bytes, snap.max_bytes, snap.reset_bytes) == (
        config.warning_bytes,
        config.max_bytes,
        config.reset_bytes,
    )
    assert snap.limit is limit
    assert snap.last_cleanup is None


def test_seconds_to_limit(monitor, probe, clock):
    assert monitor.snapshot().seconds_to_limit() is None
    for i, value in enumerate((0.5, 0.6, 0.7)):  # +0.1 GB per second
        clock.advance(1 if i else 0)
        probe.set_gb(value)
        monitor.sample()
    assert monitor.snapshot().seconds_to_limit(window_s=3) == pytest.approx(8.0, rel=1e-3)  # 0.8 GB to go
    probe.set_gb(0.6)
    clock.advance(1)
    monitor.sample()
    assert monitor.snapshot().seconds_to_limit(window_s=1.5) is None  # falling


def test_time_to_breaker_follows_the_trend_not_the_sawtooth():
    from memtui.memory.monitor import seconds_to_level

    gb = 1 << 30
    # A flat run whose RSS swings 0.55 <-> 0.85 GB with every sub-batch: no trend, no alarm.
    saw = tuple((float(t), int((0.55 + 0.3 * ((t % 7) / 6)) * gb)) for t in range(0, 60))
    eta = seconds_to_level(saw, saw[-1][1], int(1.5 * gb))
    assert eta is None or eta > 3600
    # A steady leak of 5 MB/s from 1.0 GB: after a minute at ~1.29 GB, the 1.5 GB breaker is ~43 s away.
    leak = tuple((float(t), int(gb + t * 5 * 2**20)) for t in range(0, 60))
    eta = seconds_to_level(leak, leak[-1][1], int(1.5 * gb))
    assert eta is not None and 40 < eta < 46
    assert seconds_to_level(leak[:2], leak[1][1], int(1.5 * gb)) is None, "too few samples to say"


def test_set_config_applies_mid_run(monitor, probe):
    probe.set_gb(0.9)
    monitor.sample()
    new = monitor.update_config(warning_memory_gb=0.8, max_memory_gb=1.2)
    assert monitor.config is new and monitor.breaker.config is new
    assert monitor.breaker.state is BreakerState.WARNING
    assert monitor.snapshot().max_bytes == gb(1.2)


def test_invalid_update_keeps_the_old_config(monitor):
    before = monitor.config
    with pytest.raises(ConfigError):
        monitor.update_config(warning_memory_gb=5.0)
    assert monitor.config is before and monitor.breaker.config is before


def test_cleanup_counts_logs_and_notifies(monitor, probe, memlog):
    probe.set_gb(0.9)
    got = []
    monitor.add_cleanup_listener(got.append)
    cleared = []
    monitor.cleaner.register("model cache", lambda: cleared.append(1))
    report = monitor.cleanup("test")
    assert monitor.cleanups == 1 and got == [report] and cleared == [1]
    assert report.reason == "test" and report.cleared == ("model cache",)
    assert "🧹 Forcing memory cleanup..." in memlog.messages
    assert f"✅ Cleanup: {report.objects} objects collected, now 0.90GB" in memlog.messages
    snap = monitor.snapshot()
    assert snap.cleanups == 1 and snap.last_cleanup is report


def test_cleanup_resamples_so_the_breaker_sees_the_drop(config, clock):
    probe = ScriptedProbe(rss=gb(1.6))
    monitor = MemoryMonitor(config, probe=probe, clock=clock)
    monitor.sample()
    monitor.cleaner.register("drop", lambda: probe.set_gb(0.4))
    monitor.cleanup()
    assert monitor.rss_bytes == gb(0.4)
    clock.advance(1)
    monitor.sample()
    assert monitor.breaker.state is BreakerState.HALF_OPEN


# -- the sampler thread (real time, but only waiting for it to run, never for a state machine) --


def wait_for(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_sampler_thread_start_stop(probe):
    monitor = MemoryMonitor(MemoryConfig(sample_interval_s=0.005), probe=probe)
    assert not monitor.running
    assert monitor.start() is monitor
    thread = monitor._thread
    assert monitor.running and thread.daemon and thread.name == "memtui-sampler"
    assert monitor.start()._thread is thread  # idempotent
    assert wait_for(lambda: monitor.snapshot().samples >= 5)
    monitor.stop()
    assert not monitor.running and not thread.is_alive()
    frozen = monitor.snapshot().samples
    time.sleep(0.03)
    assert monitor.snapshot().samples == frozen
    monitor.start()  # restartable
    assert wait_for(lambda: monitor.snapshot().samples > frozen + 2)
    monitor.stop()


def test_context_manager(probe):
    with MemoryMonitor(MemoryConfig(sample_interval_s=0.005), probe=probe) as monitor:
        assert monitor.running
        probe.set_gb(1.2)
        assert wait_for(lambda: monitor.breaker.state is BreakerState.WARNING)
    assert not monitor.running


def test_sampler_survives_a_failing_probe(caplog):
    calls = {"n": 0}

    class Flaky:
        def rss_bytes(self):
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError("proc went away")
            return gb(0.2)

    monitor = MemoryMonitor(MemoryConfig(sample_interval_s=0.002), probe=Flaky())
    with caplog.at_level(logging.ERROR, logger="memtui"), monitor:
        assert wait_for(lambda: monitor.snapshot().samples >= 6)
        assert monitor.running
    assert "memory sampler failed" in caplog.text


def test_snapshots_are_consistent_under_concurrent_sampling():
    class Rising:
        """RSS that only ever grows: any reordering by the monitor shows up in its history."""

        def __init__(self):
            self.n = 0
            self.lock = threading.Lock()

        def rss_bytes(self):
            with self.lock:
                self.n += 1
                return self.n * 4096

    monitor = MemoryMonitor(MemoryConfig(sample_interval_s=0.0005, history_size=50), probe=Rising())
    problems = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            snap = monitor.snapshot()
            hist = snap.history
            if hist and hist[-1][1] != snap.rss_bytes:
                problems.append(("rss not the last sample", snap.rss_bytes, hist[-1]))
            if snap.peak_bytes < snap.rss_bytes:
                problems.append(("peak below rss", snap.peak_bytes, snap.rss_bytes))
            if len(hist) > 50 or snap.samples < len(hist):
                problems.append(("history size", len(hist), snap.samples))
            if any(b[1] <= a[1] or b[0] < a[0] for a, b in zip(hist, hist[1:])):
                problems.append(("history out of order",))

    def sampler():
        while not stop.is_set():
            monitor.sample()

    threads = [threading.Thread(target=reader) for _ in range(2)] + [threading.Thread(target=sampler)]
    with monitor:
        for t in threads:
            t.start()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join()
    assert monitor.snapshot().samples > 100
    assert problems == []
