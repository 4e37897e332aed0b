"""What to do while the breaker stays open: clean up, back off, unload the model, and when to give up.

One episode of an open breaker, as a small state machine on an injected clock
(no sleeping here: the caller sleeps what it is told). It gives up

- after ``breaker_timeout_s`` of *running* time: a process stopped with SIGSTOP
  or a suspended VM does not use up the timeout (a round that took far longer
  than the wait it was given counts as that wait plus a little slack);
- earlier, once the whole escalation has run (cleanups, the model unloaded or
  never loaded) and memory still stays above the reset level without falling:
  waiting cannot help, since the only memory left is memtui's own floor. The
  reason names the floor it measured and the flags that would let a rerun go on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from memtui.memory.batching import Backoff
from memtui.memory.config import MemoryConfig
from memtui.memory.units import GB, format_gb

#: Backoff rounds (each with a cleanup every so often) before the model is unloaded.
ESCALATE_AFTER_ROUNDS = 3
#: Rounds after the escalation during which memory must stay above the reset level to call it a floor.
SETTLE_ROUNDS = 3
#: Memory still falling by more than this over the settle rounds is not a floor yet.
FALLING_BYTES = 16 << 20
#: How much longer than its wait a round may take and still count in full (a slow cleanup, a busy box).
SLACK_S = 2.0


@dataclass(frozen=True)
class WaitStep:
    """One round's orders: unload first, then clean up, then sleep; or give up with a reason."""

    sleep_s: float = 0.0
    cleanup: str | None = None
    unload: bool = False
    give_up: str | None = None
    floor_bytes: int | None = None


class OpenBreakerWait:
    def __init__(self, config: MemoryConfig, clock: Callable[[], float], *,
                 escalate_after: int = ESCALATE_AFTER_ROUNDS, settle_rounds: int = SETTLE_ROUNDS) -> None:
        self.config = config
        self._clock = clock
        self._backoff = Backoff.from_config(config)
        self.escalate_after = escalate_after
        self.settle_rounds = settle_rounds
        self.rounds = 0
        self.open_s = 0.0        # running time the breaker has been open
        self.suspended_s = 0.0   # time left out of it (stopped, suspended)
        self._last: float | None = None
        self._allowed = 0.0      # the longest the current round may count for
        self._escalated = False
        self._since_escalation: list[int] = []

    def step(self, rss: int, model_loaded: bool) -> WaitStep:
        """Call once per round with the current RSS; do what the returned step says."""
        now = self._clock()
        if self._last is None:
            self._last = now
            return self._wait(cleanup="circuit breaker open")
        gap = max(0.0, now - self._last)
        self._last = now
        counted = min(gap, self._allowed)
        self.open_s += counted
        self.suspended_s += gap - counted
        if self.open_s >= self.config.breaker_timeout_s:
            return WaitStep(give_up=(
                f"Circuit breaker stayed open {self.open_s:.0f}s (memory {format_gb(rss)}, reset below "
                f"{format_gb(self.config.reset_bytes)}); giving up after committing"))
        self.rounds += 1
        if self._escalated or not model_loaded:
            self._escalated = True  # with no model to unload, the escalation is already complete
            self._since_escalation.append(rss)
            floor = self._floor()
            if floor is not None:
                return WaitStep(give_up=floor_reason(floor, self.config), floor_bytes=floor)
        if model_loaded and (self.rounds >= self.escalate_after
                             or self.open_s >= self.config.breaker_timeout_s / 2):
            self._escalated = True
            return self._wait(cleanup="model unloaded", unload=True)
        cleanup = "circuit breaker still open" if self.rounds % self.escalate_after == 0 else None
        return self._wait(cleanup=cleanup)

    def _wait(self, *, cleanup: str | None = None, unload: bool = False) -> WaitStep:
        delay = self._backoff.next_delay()
        self._allowed = delay + SLACK_S
        return WaitStep(sleep_s=delay, cleanup=cleanup, unload=unload)

    def _floor(self) -> int | None:
        """memtui's floor, once the rounds after the escalation (with a cleanup among them) stay above reset."""
        seen = self._since_escalation
        if len(seen) <= self.settle_rounds:
            return None
        recent, before = seen[-self.settle_rounds:], seen[:-self.settle_rounds]
        floor = min(recent)
        if floor <= self.config.reset_bytes or floor < min(before) - FALLING_BYTES:
            return None
        return floor


def floor_reason(floor: int, config: MemoryConfig) -> str:
    """Why the run ends, what was measured, and thresholds a rerun can live with."""
    warning = math.ceil((floor / GB + 0.2) * 10) / 10
    breaker = math.ceil(warning * 1.5 * 10) / 10
    return (f"Memory cannot get below the reset level {format_gb(config.reset_bytes)}: after cleanups"
            f" with the model unloaded it stays at {format_gb(floor)} (memtui's floor here), so the breaker"
            f" {format_gb(config.max_bytes)} can never close. Rerun with levels above the floor, e.g."
            f" --warning-memory {warning:.1f} --max-memory {breaker:.1f} (or a --reset-memory above"
            f" {format_gb(floor)})")
