"""The core against REAL resident memory: allocations of hundreds of MB, touched so they count.

Thresholds are set relative to this process's RSS when each test starts, so the
tests do not depend on how much the interpreter and pytest already hold. Every
test frees what it allocated.
"""

from __future__ import annotations

import gc
import logging
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from memtui.memory import BreakerState, MemoryConfig, MemoryMonitor, ProcessProbe, SmartBatchProcessor
from memtui.memory.units import GB, MB

from .fakes import FakeClock

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

_ISOLATED = "MEMTUI_TEST_ISOLATED"


def in_fresh_process(test) -> bool:
    """Run ``test`` again in its own interpreter and report there (True: the caller returns at once).

    What glibc gives back depends on the whole heap: after a session that loaded the model (torch,
    onnxruntime, Dask), a heap measurement in the same process measures that history, not the core.
    """
    if os.environ.get(_ISOLATED):
        return False
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"{__file__}::{test.__name__}"],
        env={**os.environ, _ISOLATED: "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    return True


def touched(n_bytes: int) -> bytearray:
    """n bytes that are really resident: one write per page."""
    block = bytearray(n_bytes)
    for i in range(0, n_bytes, 4096):
        block[i] = 1
    return block


def levels(baseline: int, warning_mb: int, max_mb: int, **extra) -> MemoryConfig:
    return MemoryConfig(
        warning_memory_gb=(baseline + warning_mb * MB) / GB, max_memory_gb=(baseline + max_mb * MB) / GB, **extra
    )


@pytest.fixture
def real_probe():
    probe = ProcessProbe()
    gc.collect()
    yield probe
    gc.collect()
    probe.close()


def test_breaker_follows_real_rss(real_probe):
    baseline = real_probe.rss_bytes()
    clock = FakeClock()
    monitor = MemoryMonitor(levels(baseline, 150, 300), probe=real_probe, clock=clock)
    monitor.sample()
    assert monitor.breaker.state is BreakerState.CLOSED
    first = np.ones(200 * MB, dtype=np.uint8)  # numpy.ones writes every byte: all resident
    monitor.sample()
    assert monitor.breaker.state is BreakerState.WARNING
    second = touched(150 * MB)
    monitor.sample()
    assert monitor.breaker.state is BreakerState.OPEN
    peak = monitor.peak_bytes
    assert peak - baseline >= 340 * MB
    del first, second
    monitor.cleanup("test")  # (the blocks may sit in the heap's free lists: trim hands them back)
    assert monitor.rss_bytes - baseline < 100 * MB
    clock.advance(monitor.config.reset_hold_s)
    monitor.sample()
    assert monitor.breaker.state is BreakerState.HALF_OPEN
    assert monitor.peak_bytes == peak
    assert monitor.warnings == 1 and monitor.breaker.trips == 1


def test_sampler_thread_sees_real_rss(real_probe):
    baseline = real_probe.rss_bytes()
    monitor = MemoryMonitor(levels(baseline, 100, 400, sample_interval_s=0.01), probe=real_probe)
    with monitor:
        block = touched(200 * MB)
        deadline = time.monotonic() + 3
        while monitor.breaker.state is not BreakerState.WARNING and time.monotonic() < deadline:
            time.sleep(0.01)
        assert monitor.breaker.state is BreakerState.WARNING
        assert monitor.snapshot().rss_bytes - baseline >= 190 * MB
        del block
    assert monitor.warnings == 1


class Holder:
    def __init__(self, payload: bytearray):
        self.payload = payload
        self.me = self  # a cycle: only the collector frees it


CHUNK = 96 * 1024  # under glibc's smallest mmap threshold (128 KiB): always from the malloc heap


def fragmented_cyclic_garbage(n_mb: int) -> list[bytearray]:
    """n_mb MB of unreachable cycles on the malloc heap, pinned in place by small live blocks.

    Each 96 KiB payload is followed by a live 2 KiB pin, so freeing the payloads
    cannot shrink the heap from its top; only malloc_trim(0) hands such pages
    back: the shape of a long run's heap. Returns the pins (keep them alive).
    """
    pins, garbage = [], []
    for _ in range(n_mb * MB // CHUNK):
        garbage.append(Holder(touched(CHUNK)))
        pins.append(bytearray(2048))
    garbage.clear()
    return pins


@pytest.fixture
def no_auto_gc():
    """Keep the automatic collector from freeing the cycles before the cleanup under test."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()
    gc.collect()


def test_cleanup_really_returns_cyclic_garbage(real_probe, no_auto_gc, caplog):
    baseline = real_probe.rss_bytes()
    monitor = MemoryMonitor(levels(baseline, 500, 1000), probe=real_probe)
    pins = fragmented_cyclic_garbage(250)
    small = [Holder(bytearray(1000)) for _ in range(50_000)]  # small cycles, in pymalloc arenas
    del small
    before = monitor.sample()
    assert before - baseline >= 250 * MB  # unreachable, yet still resident
    with caplog.at_level(logging.INFO, logger="memtui"):
        report = monitor.cleanup("test")
    assert report.objects >= 50_000 + 250 * MB // CHUNK
    assert report.trimmed
    assert report.rss_before - report.rss_after >= 230 * MB, report.describe()
    assert monitor.rss_bytes - baseline < 60 * MB
    assert f"✅ Cleanup: {report.objects} objects collected, now {report.rss_after / GB:.2f}GB" in caplog.messages
    print(f"\ncleanup: {report.describe()}")
    del pins


def test_gc_alone_does_not_return_the_heap_malloc_trim_does(real_probe, no_auto_gc):
    if in_fresh_process(test_gc_alone_does_not_return_the_heap_malloc_trim_does):
        return
    from memtui.memory import Cleaner
    from memtui.memory.cleanup import malloc_trim

    baseline = real_probe.rss_bytes()
    pins = fragmented_cyclic_garbage(200)
    gc_only = Cleaner(real_probe, trim=lambda: False).run()
    assert gc_only.objects >= 200 * MB // CHUNK
    assert gc_only.rss_after - baseline >= 150 * MB, gc_only.describe()  # freed, but still resident
    if not malloc_trim():
        pytest.skip("no glibc malloc_trim here")
    assert real_probe.rss_bytes() - baseline < 50 * MB
    del pins


def test_leaking_fn_is_aborted_near_the_breaker_level(real_probe):
    """Each item leaks 10 MB for real; the run must stop about one batch above the breaker level."""
    if in_fresh_process(test_leaking_fn_is_aborted_near_the_breaker_level):
        return
    baseline = real_probe.rss_bytes()
    config = levels(
        baseline,
        200,
        400,
        batch_size_max=5,
        batch_size_min=1,
        breaker_timeout_s=0.4,
        backoff_initial_s=0.02,
        backoff_max_s=0.1,
        reset_hold_s=0.2,
        reset_hold_max_s=1,
    )
    monitor = MemoryMonitor(config, probe=real_probe)
    leak: list[bytearray] = []
    per_item = 10 * MB

    def fn(batch):
        for _ in batch:
            leak.append(touched(per_item))
        return len(batch)

    items = list(range(100))
    try:
        start = time.monotonic()
        result = SmartBatchProcessor(monitor).process_with_memory_awareness(items, fn)
        took = time.monotonic() - start
        processed = result["processed"]
        assert result["status"] == "aborted"
        assert result["unprocessed"] == items[processed:] and result["unprocessed"]
        assert len(leak) == processed  # no item ran twice
        assert 38 <= processed <= 45  # ~400 MB of leak at 10 MB an item
        one_batch = config.batch_size_min * per_item
        over = result["peak_memory_gb"] * GB - config.max_bytes
        assert over <= one_batch + 16 * MB, f"peak {over / MB:.0f} MB over the breaker level"
        assert result["breaker_trips"] == 1 and result["memory_warnings"] == 1
        assert took < 5
        print(f"\nleak: processed {processed}, peak {over / MB:+.0f} MB vs breaker, {took:.2f}s")
    finally:
        leak.clear()
