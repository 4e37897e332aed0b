"""Batch-size policy and backoff: pure functions of the breaker state and a counter."""

from __future__ import annotations

from memtui.memory.breaker import BreakerState
from memtui.memory.config import MemoryConfig


def batch_size_for(state: BreakerState, config: MemoryConfig) -> int:
    """The original guide's table: normal -> max, warning -> min, breaker open -> 0.

    A half-open breaker probes with the minimum, like a warning.
    """
    if state is BreakerState.CLOSED:
        return config.batch_size_max
    if state is BreakerState.OPEN:
        return 0
    return config.batch_size_min


class Backoff:
    """Exponential delays: initial, 2x, 4x ... capped; ``reset()`` after a success."""

    def __init__(self, initial_s: float, max_s: float, factor: float = 2.0) -> None:
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.attempts = 0

    @classmethod
    def from_config(cls, config: MemoryConfig) -> Backoff:
        return cls(config.backoff_initial_s, config.backoff_max_s)

    def next_delay(self) -> float:
        # The exponent is capped: a breaker open for hours must not overflow the float power.
        delay = min(self.initial_s * self.factor ** min(self.attempts, 64), self.max_s)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0
