"""The sub-batch token budget, adapted during a run to the speed each budget measures.

Why: the fastest budget moves with the load on the cores (2048 tokens on quiet
ones, 1024 while they are contended: BENCHMARKS.md) and with the backend, so
any fixed value is behind somewhere. ``AdaptiveBudget`` learns it per run:

- It runs one rung of a ladder of powers of two (``low`` .. ``high``) and,
  every ``hold`` measured sub-batches, probes a neighbour rung: neighbour and
  current take turns (N C N C ...), so both arms see texts of about the same
  length (the Embedder feeds sub-batches shortest first).
- Speed is real tokens per second (padding counts as time, not as work). A
  sub-batch that filled less than half its budget (the input's end, the
  max-batch cap) says little about the budget and is left out.
- It moves only when the neighbour was faster by more than ``hysteresis``,
  and keeps climbing the same way after a move; a probe that loses turns the
  next one the other way and doubles the hold (up to ``max_hold``), so a
  settled run rarely pays for a losing probe.
- Memory wins: while ``memory_tight`` is set (the runner sets it whenever the
  admission policy allows less than a full batch: WARNING, HALF-OPEN, OPEN,
  after a MemoryError) every sub-batch gets ``low`` and nothing is learnt.
  ``high`` bounds the activations (the budget's memory cost) whatever the speed.

Nothing here reads the clock but the injected one, so the state machine is
tested with a fake clock and made-up timings.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

LOW = 512
# The fixed default it replaces: the adaptive budget only ever goes down from there, so it never holds
# more activations than before (4096 added ~80MB over 2048 and was never faster here: BENCHMARKS.md).
HIGH = 2048
HOLD = 12  # measured sub-batches on the current rung before the first probe
MAX_HOLD = 96
PROBE_PAIRS = 3  # neighbour sub-batches per probe (each followed by one on the current rung): 3 beat 2 in noise
HYSTERESIS = 0.05  # a neighbour must be this much faster to win


def ladder(low: int, high: int) -> list[int]:
    """Powers of two from ``low`` up to ``high`` (both rounded down to one)."""
    rungs = [1 << (max(1, low).bit_length() - 1)]
    while rungs[-1] * 2 <= high:
        rungs.append(rungs[-1] * 2)
    return rungs


class AdaptiveBudget:
    """One run's token budget: hill-climbs a ladder of budgets on measured tokens/s."""

    def __init__(
        self,
        start: int,
        *,
        low: int = LOW,
        high: int = HIGH,
        hold: int = HOLD,
        max_hold: int = MAX_HOLD,
        probe_pairs: int = PROBE_PAIRS,
        hysteresis: float = HYSTERESIS,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.rungs = ladder(low, max(low, high))
        self._at = min(range(len(self.rungs)), key=lambda i: abs(self.rungs[i] - start))
        self.base_hold = hold
        self.hold = hold
        self.max_hold = max_hold
        self.probe_pairs = probe_pairs
        self.hysteresis = hysteresis
        self._clock = clock
        self.memory_tight = False
        self.direction = -1  # the first probe looks down: cheaper in memory, and faster on contended cores
        self._held = 0  # measured sub-batches on the current rung since the last probe
        self._probe: int | None = None  # the neighbour rung being probed
        self._turns: list[tuple[bool, int, float]] = []  # (neighbour's turn, tokens, seconds) of the probe
        self.moves: list[tuple[int, int]] = []  # (from, to) budgets, for the bench and the curious

    @property
    def current(self) -> int:
        """The rung the run settles on between probes."""
        return self.rungs[self._at]

    def next(self) -> int:
        """The budget for the next sub-batch."""
        if self.memory_tight:
            return self.rungs[0]
        if self._probe is None and self._held >= self.hold:
            self._probe = self._neighbour()
            self._turns = []
            if self._probe is None:  # a single rung: nothing to probe
                self._held = 0
        if self._probe is not None and len(self._turns) % 2 == 0:
            return self.rungs[self._probe]
        return self.current

    @contextlib.contextmanager
    def measure(self, budget: int, tokens: int) -> Iterator[None]:
        """Time the sub-batch run inside; record it if it finishes (an exception records nothing)."""
        start = self._clock()
        yield
        self.record(budget, tokens, self._clock() - start)

    def record(self, budget: int, tokens: int, seconds: float) -> None:
        """One sub-batch of ``tokens`` real tokens took ``seconds`` at ``budget``."""
        if self.memory_tight or budget != self.next() or 2 * tokens < budget or seconds <= 0:
            return  # memory chose it, or it says little about its budget
        if self._probe is None:
            self._held += 1
            return
        self._turns.append((len(self._turns) % 2 == 0, tokens, seconds))
        if len(self._turns) == 2 * self.probe_pairs:
            self._decide()

    def _neighbour(self) -> int | None:
        for direction in (self.direction, -self.direction):
            rung = self._at + direction
            if 0 <= rung < len(self.rungs):
                self.direction = direction
                return rung
        return None

    def _decide(self) -> None:
        probe = self._probe
        assert probe is not None
        theirs = _rate([(t, s) for mine, t, s in self._turns if mine])
        ours = _rate([(t, s) for mine, t, s in self._turns if not mine])
        if theirs > ours * (1 + self.hysteresis):
            self.moves.append((self.current, self.rungs[probe]))
            self._at = probe
            self.hold = self.base_hold  # keep climbing this way soon
        else:
            self.direction = -self.direction
            self.hold = min(self.max_hold, self.hold * 2)
        self._probe = None
        self._turns = []
        self._held = 0


def _rate(turns: list[tuple[int, float]]) -> float:
    return sum(t for t, _ in turns) / sum(s for _, s in turns)
