"""memory_guard: wrap a memory-hungry block in existing scripts."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from memtui.errors import MemtuiError
from memtui.memory.breaker import BreakerState
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.units import format_gb

log = logging.getLogger("memtui")


class MemoryBreakerOpen(MemtuiError):
    """Raised instead of starting work while the circuit breaker is open."""

    def __init__(self, operation: str, rss_bytes: int, max_bytes: int) -> None:
        self.operation = operation
        self.rss_bytes = rss_bytes
        self.max_bytes = max_bytes
        super().__init__(
            f"{operation}: circuit breaker is open (memory {format_gb(rss_bytes)}, breaker {format_gb(max_bytes)}); "
            "not starting - free memory or wait for the breaker to reset"
        )


@contextlib.contextmanager
def memory_guard(monitor: MemoryMonitor, name: str = "operation") -> Iterator[MemoryMonitor]:
    """Refuse to start while the breaker is open; log memory going in and warn when it is high.

    The monitor logs a warning whenever memory crosses the warning level: its
    sampler thread does so inside the block, and the sample taken on the way
    out catches it if no sampler runs. A block that finishes while the breaker
    is half-open counts as the probe that closes it; one that raises does not.
    """
    rss = monitor.sample()
    state = monitor.breaker.state
    if state is BreakerState.OPEN:
        raise MemoryBreakerOpen(name, rss, monitor.config.max_bytes)
    suffix = "" if name == "operation" else f" [{name}]"
    log.info("🔍 Starting operation (Memory: %s)%s", format_gb(rss), suffix)
    if state is not BreakerState.CLOSED:
        # The crossing was logged when it happened, maybe long ago: say it again where it matters.
        log.warning("⚠️ Memory warning: %s (breaker %s)%s", format_gb(rss), state.label, suffix)
    finished = False
    try:
        yield monitor
        finished = True
    finally:
        monitor.sample()
        if finished:
            monitor.breaker.record_success()
