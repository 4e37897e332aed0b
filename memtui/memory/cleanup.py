"""Forced cleanup: collect garbage, hand freed heap back to the OS, clear registered caches.

gc.collect() alone frees Python objects but glibc keeps the freed arenas, so
RSS would not drop; malloc_trim(0) returns them. Jobs register clearers for
caches only they know about (the embedding model's).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from memtui.memory.probe import Probe
from memtui.memory.units import MB, format_gb

log = logging.getLogger("memtui")


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc (musl, macOS): nothing to trim
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _load_malloc_trim()


def malloc_trim() -> bool:
    """Return freed heap to the OS where glibc allows it; False where unavailable."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True


@dataclass(frozen=True)
class CleanupReport:
    objects: int
    rss_before: int
    rss_after: int
    trimmed: bool
    cleared: tuple[str, ...]
    duration_s: float
    reason: str = ""

    @property
    def freed(self) -> int:
        return self.rss_before - self.rss_after

    @property
    def message(self) -> str:
        return f"Cleanup: {self.objects} objects collected, now {format_gb(self.rss_after)}"

    def describe(self) -> str:
        """A longer line for logs and the GC panel: before -> after and freed."""
        freed_mb = round(self.freed / MB) + 0  # an int: never "-0MB"
        extra = f", cleared {', '.join(self.cleared)}" if self.cleared else ""
        return (
            f"{self.objects} objects, {format_gb(self.rss_before)} -> {format_gb(self.rss_after)} "
            f"(freed {freed_mb:.0f}MB){extra}"
        )


CacheClearer = Callable[[], object]


class Cleaner:
    """Runs the cleanup steps in order; cache clearers can be added and removed by jobs."""

    def __init__(
        self,
        probe: Probe,
        *,
        clock: Callable[[], float] = time.perf_counter,
        collect: Callable[[], int] = gc.collect,
        trim: Callable[[], bool] = malloc_trim,
    ) -> None:
        self._probe = probe
        self._clock = clock
        # Injectable so fake-clock tests need not pay for a full collection per cleanup.
        self._collect = collect
        self._trim = trim
        self._clearers: dict[str, CacheClearer] = {}
        self._lock = threading.Lock()

    def register(self, name: str, clearer: CacheClearer) -> None:
        with self._lock:
            self._clearers[name] = clearer

    def unregister(self, name: str) -> None:
        with self._lock:
            self._clearers.pop(name, None)

    def run(self, reason: str = "", *, clear_caches: bool = True) -> CleanupReport:
        start = self._clock()
        before = self._probe.rss_bytes()
        cleared: list[str] = []
        if clear_caches:
            with self._lock:
                clearers = list(self._clearers.items())
            for name, clear in clearers:
                try:
                    clear()
                    cleared.append(name)
                except Exception as exc:  # a failing clearer must not stop the cleanup
                    log.warning("cache clearer %s failed: %s", name, exc)
        objects = self._collect()
        trimmed = self._trim()
        after = self._probe.rss_bytes()
        return CleanupReport(
            objects=objects,
            rss_before=before,
            rss_after=after,
            trimmed=trimmed,
            cleared=tuple(cleared),
            duration_s=self._clock() - start,
            reason=reason,
        )
