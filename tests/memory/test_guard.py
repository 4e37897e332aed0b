import logging

import pytest

import memtui
from memtui.errors import MemtuiError
from memtui.memory import BreakerState, MemoryBreakerOpen, memory_guard

from .fakes import gb


def test_logs_memory_going_in(monitor, probe, memlog):
    probe.set_gb(0.85)
    with memory_guard(monitor) as inside:
        assert inside is monitor
    assert "🔍 Starting operation (Memory: 0.85GB)" in memlog.messages


def test_names_the_operation(monitor, probe, memlog):
    probe.set_gb(0.85)
    with memory_guard(monitor, "embedding_generation"):
        pass
    assert "🔍 Starting operation (Memory: 0.85GB) [embedding_generation]" in memlog.messages


def test_warns_when_memory_rises_inside(monitor, probe, memlog):
    probe.set_gb(0.85)
    with memory_guard(monitor, "embed"):
        probe.set_gb(1.12)  # no sampler thread: the exit sample must catch it
    assert "⚠️ Memory warning: 1.12GB" in memlog.messages
    assert monitor.warnings == 1


def test_warns_when_starting_under_pressure(monitor, probe, memlog):
    probe.set_gb(1.2)
    monitor.sample()
    memlog.clear()
    with memory_guard(monitor, "embed"):
        pass
    warnings = [r.getMessage() for r in memlog.records if r.levelno == logging.WARNING]
    assert warnings and warnings[0].startswith("⚠️ Memory warning: 1.20GB")
    assert monitor.warnings == 1  # the same excursion is not counted twice


def test_refuses_to_start_while_open(monitor, probe):
    probe.set_gb(1.6)
    entered = []
    with pytest.raises(MemoryBreakerOpen) as info, memory_guard(monitor, "embedding_generation"):
        entered.append(True)
    assert entered == []
    err = info.value
    assert isinstance(err, MemtuiError)
    assert (err.operation, err.rss_bytes, err.max_bytes) == ("embedding_generation", gb(1.6), gb(1.5))
    text = str(err)
    assert "embedding_generation" in text and "1.60GB" in text and "1.50GB" in text and "\n" not in text


def test_half_open_block_that_finishes_closes_the_breaker(monitor, probe, clock):
    probe.set_gb(1.6)
    monitor.sample()
    probe.set_gb(0.5)
    monitor.sample()
    clock.advance(1)
    monitor.sample()
    assert monitor.breaker.state is BreakerState.HALF_OPEN
    with memory_guard(monitor):
        pass
    assert monitor.breaker.state is BreakerState.CLOSED


def test_half_open_block_that_raises_does_not(monitor, probe, clock):
    probe.set_gb(1.6)
    monitor.sample()
    probe.set_gb(0.5)
    monitor.sample()
    clock.advance(1)
    with pytest.raises(MemoryError), memory_guard(monitor):
        probe.set_gb(0.9)
        raise MemoryError
    assert monitor.breaker.state is BreakerState.HALF_OPEN
    assert monitor.rss_bytes == gb(0.9)  # still sampled on the way out


def test_trips_inside_are_seen_on_exit(monitor, probe):
    with memory_guard(monitor):
        probe.set_gb(1.7)
    assert monitor.breaker.state is BreakerState.OPEN
    with pytest.raises(MemoryBreakerOpen), memory_guard(monitor):
        pass


def test_public_names():
    from memtui import MemoryBreakerOpen as A
    from memtui import MemoryConfig, MemoryMonitor, SmartBatchProcessor
    from memtui import memory_guard as g

    assert A is MemoryBreakerOpen and g is memory_guard
    assert {"MemoryConfig", "MemoryMonitor", "SmartBatchProcessor", "memory_guard", "MemoryBreakerOpen"} <= set(
        memtui.__all__
    )
    assert MemoryConfig().max_memory_gb == 1.5 and callable(SmartBatchProcessor) and callable(MemoryMonitor)
