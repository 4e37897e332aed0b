"""SmartBatchProcessor: the original guide's integration API for existing scripts.

It walks ``items`` in order, in batches whose size follows the breaker, and
calls ``fn(batch)`` at most once per item (a batch that raised MemoryError
counts as not processed and is retried smaller). While the breaker is open it
cleans up and backs off; if memory does not come back within
``breaker_timeout_s`` it gives up and returns what was not processed.

Every rule (batch sizes, MemoryError retries, the open-breaker wait, the
low-headroom brake) is ``memtui.memory.admission``'s, shared with the engine;
this loop only applies them to ``fn``. With a ``HeadroomWatch`` it brakes as the
engine does: each ``fn(batch)`` is one batch's measured cost, and while the
headroom to the binding limit (cgroup, MemAvailable, RLIMIT_AS) is below it the
loop takes the smallest batch and waits, with cleanups, or gives up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from memtui.memory.admission import Admission, MemoryGate
from memtui.memory.config import MemoryConfig
from memtui.memory.headroom import HeadroomChange, HeadroomWatch
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.units import GB

log = logging.getLogger("memtui")

T = TypeVar("T")


class SmartBatchProcessor:
    def __init__(
        self,
        monitor: MemoryMonitor,
        config: MemoryConfig | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        headroom: HeadroomWatch | None = None,
    ) -> None:
        """``headroom``: brake on the headroom to the binding limit (None: the breaker alone)."""
        self.monitor = monitor
        if config is not None:
            monitor.set_config(config)
        self._sleep = sleep
        self._clock = clock
        self.headroom = headroom

    @property
    def config(self) -> MemoryConfig:
        return self.monitor.config

    def process_with_memory_awareness(self, items: Iterable[T], fn: Callable[[list[T]], Any]) -> dict[str, Any]:
        if self.headroom is None:
            return self._process(items, fn)
        self.monitor.add_sample_listener(self._on_sample)
        try:
            return self._process(items, fn)
        finally:
            self.monitor.remove_sample_listener(self._on_sample)

    def _on_sample(self, now: float, rss: int) -> None:
        assert self.headroom is not None
        change: HeadroomChange | None = self.headroom.observe(now, rss)
        if change is not None:
            (log.warning if change.low else log.info)("%s", change.message)

    def _process(self, items: Iterable[T], fn: Callable[[list[T]], Any]) -> dict[str, Any]:
        monitor, breaker = self.monitor, self.monitor.breaker
        pending = list(items)
        start_trips, start_warnings, start_cleanups = breaker.trips, monitor.warnings, monitor.cleanups
        start_peak = monitor.peak_bytes
        own_peak = 0  # highest RSS this call sampled itself
        results: list[Any] = []
        position = 0
        batches = 0
        admission = Admission(self.config)
        gate = MemoryGate(admission, self._clock, floor=False)
        status, reason = "success", ""

        while position < len(pending):
            own_peak = max(own_peak, monitor.sample())
            snap = breaker.snapshot()
            state = snap.state
            headroom = self.headroom.latest if self.headroom is not None else None
            gate_step = gate.step(self.config, snap, headroom, monitor.rss_bytes, model_loaded=False)
            if gate_step.warning_cleanup:
                monitor.cleanup(f"breaker {state.label}")
                continue  # re-judge after the cleanup
            step = gate_step.wait
            if step is not None:
                if step.give_up is not None:
                    status, reason = "aborted", step.give_up
                    if not gate.waiting_on_headroom:
                        reason = (
                            f"circuit breaker stayed open for {gate.wait.open_s if gate.wait else 0:.0f}s "
                            f"(memory {monitor.rss_bytes / GB:.2f}GB); gave up"
                        )
                    log.error("🚨 %s", reason)
                    break
                if step.cleanup is not None:
                    gate.cleaned(monitor.cleanup(step.cleanup).freed)
                self._sleep(step.sleep_s)
                continue
            batch = pending[position : position + admission.batch_size(state, self.config)]
            try:
                if self.headroom is not None:
                    self.headroom.cost.begin(monitor.sample())
                try:
                    result = fn(batch)
                finally:
                    if self.headroom is not None:
                        self.headroom.cost.end(monitor.sample())
            except MemoryError:
                retry = admission.memory_error(len(batch), self.config)
                if retry.give_up:
                    status = "aborted"
                    reason = f"MemoryError {retry.errors} times in a row on a single item; gave up"
                    log.error("🚨 %s", reason)
                    break
                log.warning("⚠️ MemoryError on a batch of %d; cleaning up, retrying with %d", len(batch), retry.size)
                monitor.cleanup("MemoryError")
                self._sleep(retry.sleep_s)
                continue
            results.append(result)
            position += len(batch)
            batches += 1
            admission.succeeded(self.config)
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
