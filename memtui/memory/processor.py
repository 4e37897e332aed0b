"""SmartBatchProcessor: the original guide's integration API for existing scripts.

It walks ``items`` in order, in batches whose size follows the breaker, and
calls ``fn(batch)`` at most once per item (a batch that raised MemoryError
counts as not processed and is retried smaller). While the breaker is open it
cleans up and backs off; if memory does not come back within
``breaker_timeout_s`` it gives up and returns what was not processed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any, Callable, TypeVar

from memtui.memory.batching import Backoff, batch_size_for
from memtui.memory.breaker import BreakerState
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.units import GB

log = logging.getLogger("memtui")

T = TypeVar("T")


class SmartBatchProcessor:
    def __init__(self, monitor: MemoryMonitor, config: MemoryConfig | None = None, *,
                 sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.monitor = monitor
        if config is not None:
            monitor.set_config(config)
        self._sleep = sleep
        self._clock = clock

    @property
    def config(self) -> MemoryConfig:
        return self.monitor.config

    def process_with_memory_awareness(self, items: Iterable[T], fn: Callable[[list[T]], Any]) -> dict[str, Any]:
        monitor, breaker = self.monitor, self.monitor.breaker
        pending = list(items)
        start_trips, start_warnings, start_cleanups = breaker.trips, monitor.warnings, monitor.cleanups
        start_peak = monitor.peak_bytes
        own_peak = 0  # highest RSS this call sampled itself
        results: list[Any] = []
        position = 0
        batches = 0
        backoff = Backoff.from_config(self.config)
        size_cap: int | None = None  # halved after a MemoryError, relaxed by one per success
        memory_errors = 0
        open_since: float | None = None
        cleaned_for: tuple[BreakerState, float] | None = None
        status, reason = "success", ""

        while position < len(pending):
            own_peak = max(own_peak, monitor.sample())
            snap = breaker.snapshot()
            state = snap.state
            # Clean up once on every entry into a high state, keyed by when it was entered, so a
            # re-trip from half-open (OPEN again, with no CLOSED in between) cleans up too.
            if state in (BreakerState.WARNING, BreakerState.OPEN) and cleaned_for != (state, snap.since):
                monitor.cleanup(f"breaker {state.label}")
                cleaned_for = (state, snap.since)
                continue  # re-judge after the cleanup
            size = batch_size_for(breaker.state, self.config)
            if size == 0:
                now = self._clock()
                open_since = now if open_since is None else open_since
                # Compare against a fixed deadline: "deadline - now" is exact, so sleeping it
                # really reaches the deadline (a recomputed "timeout - elapsed" remainder can be
                # smaller than the clock's resolution and never get there).
                deadline = open_since + self.config.breaker_timeout_s
                if now >= deadline:
                    status = "aborted"
                    reason = (f"circuit breaker stayed open for {now - open_since:.0f}s "
                              f"(memory {monitor.rss_bytes / GB:.2f}GB); gave up")
                    log.error("🚨 %s", reason)
                    break
                # Never sleep past the deadline: a long backoff must not overshoot breaker_timeout_s.
                self._sleep(min(backoff.next_delay(), deadline - now))
                if backoff.attempts % 4 == 0:
                    monitor.cleanup("breaker still open")
                continue
            open_since = None
            if size_cap is not None:
                size = min(size, size_cap)
            batch = pending[position:position + size]
            try:
                result = fn(batch)
            except MemoryError:
                # Halving the batch is the retry; only failures of a single item count towards
                # giving up, so a batch of any size gets memory_error_retries tries at size one.
                if len(batch) == 1:
                    memory_errors += 1
                if memory_errors > self.config.memory_error_retries:
                    status = "aborted"
                    reason = f"MemoryError {memory_errors} times in a row on a single item; gave up"
                    log.error("🚨 %s", reason)
                    break
                size_cap = max(1, len(batch) // 2)
                log.warning("⚠️ MemoryError on a batch of %d; cleaning up, retrying with %d",
                            len(batch), size_cap)
                monitor.cleanup("MemoryError")
                self._sleep(backoff.next_delay())
                continue
            results.append(result)
            position += len(batch)
            batches += 1
            memory_errors = 0
            backoff.reset()
            if size_cap is not None:
                # Grow back one item per success (AIMD): doubling would jump straight back to the
                # size that just raised MemoryError and fail every other batch.
                size_cap = size_cap + 1 if size_cap + 1 < self.config.batch_size_max else None
            own_peak = max(own_peak, monitor.sample())
            breaker.record_success()

        # This run's peak, not the monitor's lifetime one: if the monitor's peak rose during the
        # run, the new peak was reached in it (also between our samples, by a sampler thread);
        # otherwise the highest RSS sampled here is the best we know.
        peak = monitor.peak_bytes if monitor.peak_bytes > start_peak else own_peak

        return {
            "status": status,
            "reason": reason,
            "results": results,
            "processed": position,
            "unprocessed": pending[position:],
            "memory_usage_gb": round(monitor.rss_bytes / GB, 3),
            "peak_memory_gb": round(peak / GB, 3),
            "memory_warnings": monitor.warnings - start_warnings,
            "breaker_trips": breaker.trips - start_trips,
            "cleanups": monitor.cleanups - start_cleanups,
            "batches": batches,
        }
