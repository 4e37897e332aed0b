"""Fixtures for the memory-core tests: a fake clock, a scripted probe and a monitor built on them."""

from __future__ import annotations

import logging

import pytest

from memtui.memory import Cleaner, MemoryConfig, MemoryMonitor

from .fakes import FakeClock, ScriptedProbe


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def probe() -> ScriptedProbe:
    return ScriptedProbe(rss=int(0.5 * (1 << 30)))


@pytest.fixture
def config() -> MemoryConfig:
    """The issue's thresholds with short, round timings."""
    return MemoryConfig(
        max_memory_gb=1.5,
        warning_memory_gb=1.0,
        batch_size_max=5,
        batch_size_min=1,
        reset_hold_s=1.0,
        reset_hold_max_s=8.0,
        warning_hysteresis=0.05,
        backoff_initial_s=0.25,
        backoff_max_s=2.0,
        breaker_timeout_s=10.0,
    )


@pytest.fixture
def monitor(config: MemoryConfig, probe: ScriptedProbe, clock: FakeClock) -> MemoryMonitor:
    monitor = MemoryMonitor(config, probe=probe, clock=clock)
    # Memory here is fake, so a real gc.collect() per cleanup would only cost time.
    monitor.cleaner = Cleaner(probe, collect=lambda: 7, trim=lambda: False)
    return monitor


@pytest.fixture
def memlog(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="memtui")
    return caplog
