"""MemoryMonitor: samples RSS, keeps history and peak, drives the breaker, runs cleanups.

One object to hand around: SmartBatchProcessor, memory_guard and the runner
all take a monitor. Sampling runs on a daemon thread (``start()``) or on demand
(``sample()``); everything read from other threads goes through ``snapshot()``,
an immutable copy.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from memtui.memory.breaker import BreakerSnapshot, BreakerState, BreakerTransition, CircuitBreaker, Clock
from memtui.memory.cleanup import Cleaner, CleanupReport
from memtui.memory.config import MemoryConfig
from memtui.memory.config_layers import ThresholdOrigin
from memtui.memory.probe import MemoryLimit, Probe, ProcessProbe
from memtui.memory.units import GB, format_gb

log = logging.getLogger("memtui")


@dataclass(frozen=True)
class MemorySnapshot:
    """What a face needs to draw memory, copied at one instant."""

    time: float
    rss_bytes: int
    peak_bytes: int
    samples: int
    warnings: int
    cleanups: int
    history: tuple[tuple[float, int], ...]
    warning_bytes: int
    max_bytes: int
    reset_bytes: int
    breaker: BreakerSnapshot
    limit: MemoryLimit | None
    last_cleanup: CleanupReport | None

    @property
    def rss_gb(self) -> float:
        return self.rss_bytes / GB

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GB

    @property
    def state(self) -> BreakerState:
        return self.breaker.state

    def seconds_to_limit(self, window_s: float = 60.0) -> float | None:
        """Time until RSS reaches the breaker level at the recent trend; None if not rising."""
        if self.rss_bytes >= self.max_bytes:
            return 0.0
        return seconds_to_level(self.history, self.rss_bytes, self.max_bytes, window_s)


def seconds_to_level(
    history: Sequence[tuple[float, int]], rss: int, level: int, window_s: float = 60.0, min_span_s: float | None = None
) -> float | None:
    """Time until RSS reaches ``level`` at the trend of the last ``window_s`` (``growth_rate``); None if not rising.

    The one estimator of time to the breaker: the engine's memory panel and the monitor engine's
    targets both use it.
    """
    slope = growth_rate(history, window_s, min_span_s)
    if slope is None or slope <= 0:
        return None
    return max(0.0, (level - rss) / slope)


def growth_rate(history: Sequence[tuple[float, int]], window_s: float, min_span_s: float | None = None) -> float | None:
    """Bytes per second, least-squares fitted to the (time, RSS) samples of the last ``window_s``; None
    below 3 samples or with less than ``min_span_s`` (by default a sixth of the window) between the first
    and the last. A caller sampling at a known interval (the monitor engine) passes two intervals.

    A fitted slope, not first-versus-last sample: an embedding job's RSS is a
    sawtooth (each sub-batch allocates, then frees), and two samples taken at a
    trough and a peak would predict the breaker within a minute on a flat run.
    """
    if not history:
        return None
    end = history[-1][0]
    points = [(t, r) for t, r in history if t >= end - window_s]
    span = window_s / 6 if min_span_s is None else min_span_s
    if len(points) < 3 or points[-1][0] - points[0][0] < span:
        return None
    return least_squares_slope(points)


def least_squares_slope(points: list[tuple[float, int]]) -> float | None:
    """Bytes per second fitted to (time, RSS) points; None for fewer than 3 points or no time spread."""
    if len(points) < 3:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var <= 0:
        return None
    return sum((t - mean_t) * (r - mean_r) for t, r in points) / var


SampleListener = Callable[[float, int], None]
CleanupListener = Callable[[CleanupReport], None]


class MemoryMonitor:
    def __init__(
        self,
        config: MemoryConfig | None = None,
        *,
        probe: Probe | None = None,
        clock: Clock = time.monotonic,
        limit: MemoryLimit | None = None,
    ) -> None:
        self._config = config or MemoryConfig()
        self.probe: Probe = probe or ProcessProbe()
        self._clock = clock
        self.limit = limit
        #: Where each level came from and why (``resolve_config``): the run report's ``thresholds``.
        self.thresholds: ThresholdOrigin | None = None
        self.breaker = CircuitBreaker(self._config, clock=clock)
        self.cleaner = Cleaner(self.probe)
        self._lock = threading.Lock()
        self._history: collections.deque[tuple[float, int]] = collections.deque(maxlen=self._config.history_size)
        self._rss = 0
        self._peak = 0
        self._samples = 0
        self._warnings = 0
        self._cleanups = 0
        self._last_cleanup: CleanupReport | None = None
        self._cleanup_listeners: list[CleanupListener] = []
        self._sample_listeners: list[SampleListener] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.breaker.add_listener(self._on_transition)

    # -- configuration ------------------------------------------------------------
    @property
    def config(self) -> MemoryConfig:
        return self._config

    def set_config(self, config: MemoryConfig) -> None:
        """Apply new thresholds mid-run; the breaker re-judges the last sample at once."""
        with self._lock:
            self._config = config
            if config.history_size != self._history.maxlen:
                self._history = collections.deque(self._history, maxlen=config.history_size)
        self.breaker.set_config(config)

    def update_config(self, **changes: object) -> MemoryConfig:
        config = self._config.replace(**changes)
        self.set_config(config)
        return config

    # -- sampling -----------------------------------------------------------------
    def sample(self) -> int:
        """Read RSS once, record it, feed the breaker; returns RSS in bytes."""
        # Read under the lock so concurrent samplers (the thread, the worker) record history
        # in order; a statm pread is microseconds. The breaker is fed outside it (its listeners
        # take this lock) with the sample's time, so it can drop a sample that arrives stale.
        with self._lock:
            rss = self.probe.rss_bytes()
            now = self._clock()
            self._rss = rss
            self._peak = max(self._peak, rss)
            self._samples += 1
            self._history.append((now, rss))
            listeners = list(self._sample_listeners)
        self.breaker.update(rss, at=now)
        for listener in listeners:  # in the sampling thread: keep them cheap
            listener(now, rss)
        return rss

    def add_sample_listener(self, listener: SampleListener) -> None:
        """Called with (time, rss) after every sample, in whichever thread sampled."""
        with self._lock:
            self._sample_listeners.append(listener)

    def remove_sample_listener(self, listener: SampleListener) -> None:
        with self._lock:
            if listener in self._sample_listeners:
                self._sample_listeners.remove(listener)

    @property
    def rss_bytes(self) -> int:
        return self._rss

    def current_gb(self) -> float:
        return self.sample() / GB

    @property
    def peak_bytes(self) -> int:
        return self._peak

    @property
    def warnings(self) -> int:
        return self._warnings

    @property
    def cleanups(self) -> int:
        return self._cleanups

    def reset_peak(self) -> None:
        with self._lock:
            self._peak = self._rss

    # -- the sampler thread ---------------------------------------------------------
    def start(self) -> MemoryMonitor:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="memtui-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self._config.sample_interval_s):
            try:
                self.sample()
            except Exception:  # the sampler must never die silently mid-run
                log.exception("memory sampler failed")

    def __enter__(self) -> MemoryMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- cleanup ------------------------------------------------------------------
    def cleanup(self, reason: str = "", *, clear_caches: bool = True) -> CleanupReport:
        """Force a cleanup now, log it in the original guide's words, and tell listeners."""
        log.info("🧹 Forcing memory cleanup...")
        report = self.cleaner.run(reason, clear_caches=clear_caches)
        log.info("✅ %s", report.message)
        with self._lock:
            self._cleanups += 1
            self._last_cleanup = report
            listeners = list(self._cleanup_listeners)
        self.sample()
        for listener in listeners:
            listener(report)
        return report

    def add_cleanup_listener(self, listener: CleanupListener) -> None:
        with self._lock:
            self._cleanup_listeners.append(listener)

    def remove_cleanup_listener(self, listener: CleanupListener) -> None:
        with self._lock:
            if listener in self._cleanup_listeners:
                self._cleanup_listeners.remove(listener)

    # -- reading ------------------------------------------------------------------
    def snapshot(self) -> MemorySnapshot:
        with self._lock:
            cfg = self._config
            return MemorySnapshot(
                time=self._clock(),
                rss_bytes=self._rss,
                peak_bytes=self._peak,
                samples=self._samples,
                warnings=self._warnings,
                cleanups=self._cleanups,
                history=tuple(self._history),
                warning_bytes=cfg.warning_bytes,
                max_bytes=cfg.max_bytes,
                reset_bytes=cfg.reset_bytes,
                breaker=self.breaker.snapshot(),
                limit=self.limit,
                last_cleanup=self._last_cleanup,
            )

    def _on_transition(self, t: BreakerTransition) -> None:
        cfg = self._config
        if t.counts_as_warning:
            with self._lock:
                self._warnings += 1
            log.warning("⚠️ Memory warning: %s", format_gb(t.rss))
        if t.new is BreakerState.OPEN:
            log.error(
                "🚨 Circuit breaker OPEN at %s (breaker %s): batch size 0 until memory is back below %s",
                format_gb(t.rss),
                format_gb(cfg.max_bytes),
                format_gb(cfg.reset_bytes),
            )
        elif t.new is BreakerState.HALF_OPEN:
            log.info(
                "🔄 Circuit breaker HALF-OPEN: memory back to %s, probing with batch size %d",
                format_gb(t.rss),
                cfg.batch_size_min,
            )
        elif t.new is BreakerState.CLOSED and t.old is not BreakerState.CLOSED:
            log.info("✅ Circuit breaker CLOSED: memory normal at %s", format_gb(t.rss))
