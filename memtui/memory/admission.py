"""One admission policy: what the breaker admits, how a MemoryError is retried, how an open breaker is waited out.

Both loops that feed batches to a breaker use this module and keep no rules of
their own: the engine (``memtui.runner.Runner``) and the guide's integration
API (``memtui.memory.processor.SmartBatchProcessor``). Nothing here sleeps or
reads the clock on its own: time comes from an injected clock and the caller
sleeps what it is told, so every rule is tested on a fake clock.

- ``Admission``: one run's batch size and MemoryError retries.
  The size is the breaker's (``batch_size_for``: max when CLOSED, min when
  WARNING or HALF-OPEN, 0 when OPEN), capped after a MemoryError. The cap is
  AIMD: halved on a MemoryError, grown back by one per successful batch.
  Doubling it back (what the runner once did) jumps straight to the size that
  just raised and fails every other batch; growing by one approaches the size
  that fits from below.
  Only a MemoryError on a batch of one item counts towards
  ``memory_error_retries`` (as MemoryConfig documents): halving the batch is
  the retry, so a batch of any size gets that many tries at size one before
  the work gives up. Counting every MemoryError (what the runner once did)
  gave up on a large batch after a few halvings, before the single item that
  might fit was ever tried.
- ``WarningCleanup``: one cleanup on every entry into WARNING.
- ``OpenBreakerWait``: one episode of an open breaker (cleanups, backoff,
  unloading the model, giving up).
- ``HeadroomWait``: one episode of low headroom (the headroom to the binding
  limit, cgroup / MemAvailable / RLIMIT_AS, below one batch's measured cost):
  the same cleanups, backoff, timeout and floor rule, so a headroom that never
  comes back ends the run with a reason instead of holding it for ever. While
  it holds, ``Admission.brake`` gives the next batch the smallest size.
- ``MemoryGate``: between two batches, which of these applies now (the WARNING cleanup, the open
  breaker's wait, the headroom's wait), one episode at a time. The Runner, the Dask worker and
  SmartBatchProcessor each run the steps it returns (their sleep, log and give-up differ), not
  their own copy of the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from memtui.memory.batching import Backoff, batch_size_for
from memtui.memory.breaker import BreakerSnapshot, BreakerState
from memtui.memory.config import MemoryConfig
from memtui.memory.headroom import Headroom
from memtui.memory.units import GB, format_gb

#: Backoff rounds of an open breaker between two cleanups, and before the model is unloaded.
ESCALATE_AFTER_ROUNDS = 3
#: Rounds after the escalation during which memory must stay above the reset level to call it a floor.
SETTLE_ROUNDS = 3
#: Memory still falling by more than this over the settle rounds is not a floor yet.
FALLING_BYTES = 16 << 20
#: How much longer than its wait a round may take and still count in full (a slow cleanup, a busy box).
SLACK_S = 2.0
#: A cleanup that freed less than this freed nothing: the next one waits twice as many rounds.
FREED_NOTHING_BYTES = 1 << 20
#: Less than this left of the breaker timeout counts as none: a remainder smaller than a clock
#: reading's resolution (a monotonic clock at 1e10 s moves in ~2 us steps) would never be slept off.
TIMEOUT_EPSILON_S = 1e-3


# -- batch size and MemoryError retries ---------------------------------------------------------


@dataclass(frozen=True)
class Retry:
    """What to do after a MemoryError: give up, or clean up, sleep ``sleep_s`` and retry at most ``size``."""

    give_up: bool
    errors: int  # consecutive MemoryErrors on a single item, this one included
    size: int = 0  # the cap for the retry
    sleep_s: float = 0.0


class Admission:
    """One run's admission state: the MemoryError cap (AIMD), the error count and the retry backoff.

    The config is passed to each call, so thresholds and batch limits changed mid-run apply
    to the next batch.
    """

    def __init__(self, config: MemoryConfig) -> None:
        self.cap: int | None = None  # None: no MemoryError to remember, the breaker's size applies
        self.errors = 0  # consecutive MemoryErrors on a single item
        self.braked = False  # the headroom was low: the smallest size until a batch goes through
        self._backoff = Backoff.from_config(config)

    def brake(self) -> None:
        """The headroom fell below one batch's cost: the next batch takes the smallest size (a probe, as
        at HALF-OPEN), and ``full`` is false, so an adaptive token budget takes its smallest sub-batch."""
        self.braked = True

    def _breaker_size(self, state: BreakerState, config: MemoryConfig) -> int:
        size = batch_size_for(state, config)
        return min(size, config.batch_size_min) if self.braked else size

    def batch_size(self, state: BreakerState, config: MemoryConfig) -> int:
        """How many items the next batch may hold (0: none, the breaker is open)."""
        size = self._breaker_size(state, config)
        return size if self.cap is None else min(size, self.cap)

    def scaled_size(self, state: BreakerState, config: MemoryConfig, full: int) -> int:
        """The next batch in units of another size (a Dask worker's texts per sub-batch, ``full`` when
        CLOSED): the breaker's share of ``full`` (the smallest share when braked), at least 1 unless the
        breaker is open, and the MemoryError cap, which counts in those units (``memory_error`` is told
        the batch's length in them)."""
        size = self._breaker_size(state, config)
        if size <= 0:
            return 0
        scaled = max(1, full * size // max(1, config.batch_size_max))
        return scaled if self.cap is None else min(scaled, self.cap)

    def full(self, state: BreakerState, config: MemoryConfig) -> bool:
        """Memory allows a whole batch (CLOSED, no brake, no MemoryError cap below the maximum). Below
        that, speed gives way: an adaptive token budget takes its smallest size and learns nothing."""
        return (
            state is BreakerState.CLOSED and not self.braked and self.batch_size(state, config) >= config.batch_size_max
        )

    def memory_error(self, batch_len: int, config: MemoryConfig) -> Retry:
        """A batch of ``batch_len`` items raised MemoryError: give up, or retry with half of it."""
        if batch_len <= 1:
            self.errors += 1
        if self.errors > config.memory_error_retries:
            return Retry(give_up=True, errors=self.errors)
        self.cap = max(1, batch_len // 2)
        return Retry(give_up=False, errors=self.errors, size=self.cap, sleep_s=self._backoff.next_delay())

    def succeeded(self, config: MemoryConfig) -> None:
        """A batch went through: forget the errors and the brake, grow the cap back by one (AIMD)."""
        self.errors = 0
        self.braked = False
        self._backoff.reset()
        if self.cap is not None:
            self.cap = self.cap + 1 if self.cap + 1 < config.batch_size_max else None


class WarningCleanup:
    """One cleanup on every entry into WARNING, keyed by when it was entered.

    So a WARNING reached again after an open spell (OPEN, HALF-OPEN, WARNING, with no
    CLOSED in between) cleans up again: the open spell's cleanups ran under other
    conditions, and one gc pass per entry is cheap next to the entries' spacing (the
    breaker leaves a state only after a hold). An open breaker's cleanups are
    ``OpenBreakerWait``'s.
    """

    def __init__(self) -> None:
        self._done_for: float | None = None

    def due(self, snap: BreakerSnapshot) -> bool:
        if snap.state is BreakerState.WARNING and self._done_for != snap.since:
            self._done_for = snap.since
            return True
        return False


# -- the open breaker ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WaitStep:
    """One round's orders: unload first, then clean up, then sleep; or give up with a reason."""

    sleep_s: float = 0.0
    cleanup: str | None = None
    unload: bool = False
    give_up: str | None = None
    floor_bytes: int | None = None


class OpenBreakerWait:
    """What to do while the breaker stays open: clean up, back off, unload the model, and when to give up.

    One episode of an open breaker, as a small state machine on an injected clock
    (no sleeping here: the caller sleeps what it is told). Call ``step`` once per
    round while the breaker is open; start a new instance for the next episode.

    - It cleans up on entering (round 0) and every ``escalate_after`` rounds after
      that; one cadence for every caller. Every 3 rounds rather than 4 so that the
      settle window the floor is judged on (``SETTLE_ROUNDS``, 3) always holds a
      cleanup, and the unload (round 3) comes with one. A cleanup the caller reports
      (``cleaned``) as having freed nothing doubles the rounds to the next one, so a
      flat floor does not log "freed 0 MB" every half minute; one that frees memory
      brings the cadence back.
    - It never sleeps past the deadline: the last sleep is what is left of
      ``breaker_timeout_s``, so the wait ends at the timeout, not up to
      ``backoff_max_s`` after it.
    - The timeout counts *running* time only: a process stopped with SIGSTOP or a
      suspended VM does not use it up (a round that took far longer than the wait
      it was given counts as that wait plus ``SLACK_S``).
    - With ``floor=True`` (the engine) it gives up earlier, once the whole
      escalation has run (cleanups, the model unloaded or never loaded) and memory
      still stays above the reset level without falling: waiting cannot help, since
      the only memory left is memtui's own floor. The reason names the floor it
      measured and the flags that would let a rerun go on. SmartBatchProcessor
      passes ``floor=False``: the memory it watches is its caller's whole process,
      which other threads may still free, it has no model to unload, and the
      flags the reason names are memtui's command line, not the caller's; it
      waits out the timeout it was given.
    """

    def __init__(
        self,
        config: MemoryConfig,
        clock: Callable[[], float],
        *,
        floor: bool = True,
        escalate_after: int = ESCALATE_AFTER_ROUNDS,
        settle_rounds: int = SETTLE_ROUNDS,
    ) -> None:
        self.config = config
        self._clock = clock
        self._backoff = Backoff.from_config(config)
        self.floor = floor
        self.escalate_after = escalate_after
        self.settle_rounds = settle_rounds
        self.rounds = 0
        self.open_s = 0.0  # running time the breaker has been open
        self.suspended_s = 0.0  # time left out of it (stopped, suspended)
        self._last: float | None = None
        self._allowed = 0.0  # the longest the current round may count for
        self._escalated = False
        self._since_escalation: list[int] = []
        self._cleanup_every = escalate_after  # rounds between the regular cleanups; doubles while they free nothing
        self._next_cleanup = escalate_after  # the round of the next regular cleanup

    @property
    def remaining_s(self) -> float:
        """Running time left before the wait gives up."""
        return max(0.0, self.config.breaker_timeout_s - self.open_s)

    def remaining_at(self, now: float) -> float:
        """Running time left at ``now``, counting the round in progress as far as it may count (a countdown)."""
        if self._last is None:
            return self.remaining_s
        return max(0.0, self.remaining_s - min(max(0.0, now - self._last), self._allowed))

    def cleaned(self, freed_bytes: int) -> None:
        """Report what the last cleanup freed: one that freed nothing backs the next one off (twice the rounds)."""
        if freed_bytes < FREED_NOTHING_BYTES:
            self._cleanup_every *= 2
        else:
            self._cleanup_every = self.escalate_after
        self._next_cleanup = self.rounds + self._cleanup_every

    def step(self, rss: int, model_loaded: bool) -> WaitStep:
        """Call once per round with the current RSS; do what the returned step says."""
        now = self._clock()
        if self._last is None:
            self._last = now
            return self._wait(cleanup=self.opening)
        gap = max(0.0, now - self._last)
        self._last = now
        counted = min(gap, self._allowed)
        self.open_s += counted
        self.suspended_s += gap - counted
        if self.remaining_s < TIMEOUT_EPSILON_S:
            return WaitStep(give_up=self._timeout_reason(rss))
        self.rounds += 1
        if self._escalated or not model_loaded:
            self._escalated = True  # with no model to unload, the escalation is already complete
            self._since_escalation.append(rss)
            floor = self._floor() if self.floor else None
            if floor is not None:
                return WaitStep(give_up=self._floor_reason(floor), floor_bytes=floor)
        if model_loaded and (self.rounds >= self.escalate_after or self.open_s >= self.config.breaker_timeout_s / 2):
            self._escalated = True
            self._next_cleanup = self.rounds + self._cleanup_every
            if not self.unloads:
                return self._wait(cleanup=self.still)
            return self._wait(cleanup="model unloaded", unload=True)
        cleanup = None
        if self.rounds >= self._next_cleanup:
            cleanup = self.still
            self._next_cleanup = self.rounds + self._cleanup_every
        return self._wait(cleanup=cleanup)

    # What this wait is for: its cleanups' reasons, its level and its give-up reasons (HeadroomWait's differ).
    opening = "circuit breaker open"
    still = "circuit breaker still open"
    unloads = True  # the escalation unloads the model (HeadroomWait's is a cleanup alone)

    @property
    def _level(self) -> int:
        """The measure must fall to this to clear (here RSS, to the reset level)."""
        return self.config.reset_bytes

    def _timeout_reason(self, measure: int) -> str:
        return (
            f"Circuit breaker stayed open {self.open_s:.0f}s (memory {format_gb(measure)}, reset below "
            f"{format_gb(self.config.reset_bytes)}); giving up after committing"
        )

    def _floor_reason(self, floor: int) -> str:
        return floor_reason(floor, self.config)

    def _wait(self, *, cleanup: str | None = None, unload: bool = False) -> WaitStep:
        # Never past the deadline: a long backoff must not overshoot breaker_timeout_s.
        delay = min(self._backoff.next_delay(), self.remaining_s)
        self._allowed = delay + SLACK_S
        return WaitStep(sleep_s=delay, cleanup=cleanup, unload=unload)

    def _floor(self) -> int | None:
        """memtui's floor, once the rounds after the escalation (with a cleanup among them) stay above reset."""
        seen = self._since_escalation
        if len(seen) <= self.settle_rounds:
            return None
        recent, before = seen[-self.settle_rounds :], seen[: -self.settle_rounds]
        floor = min(recent)
        if floor <= self._level or floor < min(before) - FALLING_BYTES:
            return None
        return floor


def floor_reason(floor: int, config: MemoryConfig) -> str:
    """Why the run ends, what was measured, and thresholds a rerun can live with."""
    warning = math.ceil((floor / GB + 0.2) * 10) / 10
    breaker = math.ceil(warning * 1.5 * 10) / 10
    # Advice is followed as written, so every value offered passes MemoryConfig's checks (reset below the
    # breaker) and clears the floor: an explicit reset level moves with the warning's; the reset-only
    # alternative is offered only where one fits between the floor and the breaker.
    rerun = f"--warning-memory {warning:.1f} --max-memory {breaker:.1f}"
    if config.reset_memory_gb is not None:
        rerun += f" --reset-memory {warning:.1f}"
    reset = math.ceil(floor / GB * 100 + 1) / 100  # at least 0.01GB above the floor, as shown
    alternative = f" (or --reset-memory {reset:.2f})" if reset < round(config.max_bytes / GB, 2) else ""
    return (
        f"Memory cannot get below the reset level {format_gb(config.reset_bytes)}: after cleanups"
        f" with the model unloaded it stays at {format_gb(floor)} (memtui's floor here), so the breaker"
        f" {format_gb(config.max_bytes)} can never close. Rerun with levels above the floor, e.g."
        f" {rerun}{alternative}"
    )


class HeadroomWait(OpenBreakerWait):
    """What to do while the headroom stays below one batch's cost: the open breaker's rules, on the headroom.

    The measure ``step`` takes is the headroom's shortfall (``Headroom.shortfall``: how far it is
    below the all-clear, CLEAR_AT_BATCHES x the cost that raised the warning), which must fall to 0.
    The same cadence of cleanups, the same backoff, the same timeout (``breaker_timeout_s`` of running
    time) and the same floor rule: once the escalation rounds have run and the shortfall stays without
    falling, waiting cannot help and the run ends with the reason. So a headroom that never comes back
    (a neighbour holding the cgroup) ends the run, never hangs it.

    It does not unload the model (its escalation is a cleanup alone, at the same round): the memory
    it waits for is mostly others', and a model unloaded to make room would take it back on reload,
    braking again at once, batch after batch.
    """

    opening = "memory headroom low"
    still = "memory headroom still low"
    unloads = False

    def __init__(
        self, config: MemoryConfig, clock: Callable[[], float], headroom: Headroom, *, floor: bool = True
    ) -> None:
        super().__init__(config, clock, floor=floor)
        self.headroom = headroom  # the latest reading (``seen``): the give-up reasons name it

    def seen(self, headroom: Headroom) -> int:
        """Keep the latest reading; returns its shortfall, the measure to pass to ``step``."""
        self.headroom = headroom
        return headroom.shortfall

    def step(self, rss: int, model_loaded: bool = True) -> WaitStep:
        """``rss`` is the shortfall here. The escalation (a cleanup at the same round the breaker would
        unload) always runs, as if a model were loaded; nothing is unloaded."""
        return super().step(rss, not self._escalated)

    @property
    def _level(self) -> int:
        return 0

    def _timeout_reason(self, measure: int) -> str:
        h = self.headroom
        return (
            f"Memory headroom stayed below one batch's cost for {self.open_s:.0f}s ({h.describe()}, one batch costs "
            f"up to {format_gb(h.batch_cost_bytes or 0)}); giving up after committing"
        )

    def _floor_reason(self, floor: int) -> str:
        h = self.headroom
        return (
            f"Memory headroom stays at {h.describe()} after cleanups, below the {format_gb(h.clear_bytes or 0)} "
            f"the next batch needs (one batch costs up to {format_gb(h.batch_cost_bytes or 0)}) and is not "
            f"coming back, so waiting cannot help; giving up after committing. Free memory under "
            f"{h.binds} (or raise its limit) and rerun"
        )


# -- between two batches ------------------------------------------------------------------------


@dataclass(frozen=True)
class GateStep:
    """What to do before the next batch: go on (after the WARNING cleanup, if due), or run one round
    of the wait under way (``wait``: its orders, which may be to give up)."""

    admit: bool
    warning_cleanup: bool = False  # the breaker just entered WARNING: clean up once, then go on
    wait: WaitStep | None = None
    started: bool = False  # this round began a wait (its countdown, the phase "waiting for memory")


class MemoryGate:
    """Between two batches: the one rule for what memory allows now, for every loop that feeds a breaker.

    The breaker OPEN: wait it out (``OpenBreakerWait``). Else the headroom below one batch's cost:
    wait for it (``HeadroomWait``) and brake ``admission`` (the next batch takes the smallest size).
    Else the batch goes, after one cleanup on every entry into WARNING (``WarningCleanup``). A wait
    lasts one episode: it is started afresh when the breaker opens after a headroom wait (or the
    reverse) and forgotten once memory admits a batch. ``floor``: as ``OpenBreakerWait``'s.
    """

    def __init__(self, admission: Admission, clock: Callable[[], float], *, floor: bool = True) -> None:
        self.admission = admission
        self._clock = clock
        self.floor = floor
        self.wait: OpenBreakerWait | None = None  # the episode under way (its countdown: ``remaining_at``)
        self._warning_cleanup = WarningCleanup()

    def step(
        self,
        config: MemoryConfig,
        breaker: BreakerSnapshot,
        headroom: Headroom | None,
        rss: int,
        model_loaded: bool,
    ) -> GateStep:
        """Call once per round with fresh readings (``headroom``: the latest, low or not); do what it says."""
        low = headroom if headroom is not None and headroom.low else None
        if breaker.state is not BreakerState.OPEN and low is None:
            self.wait = None
            return GateStep(admit=True, warning_cleanup=self._warning_cleanup.due(breaker))
        started = False
        if breaker.state is BreakerState.OPEN:
            if self.wait is None or isinstance(self.wait, HeadroomWait):
                self.wait, started = OpenBreakerWait(config, self._clock, floor=self.floor), True
            measure = rss
        else:
            assert low is not None
            if not isinstance(self.wait, HeadroomWait):
                self.wait, started = HeadroomWait(config, self._clock, low, floor=self.floor), True
                self.admission.brake()  # the next batch takes the smallest size
            measure = self.wait.seen(low)
        return GateStep(admit=False, wait=self.wait.step(measure, model_loaded), started=started)

    def cleaned(self, freed_bytes: int) -> None:
        """Report what the wait's cleanup freed (one that freed nothing backs the next one off)."""
        if self.wait is not None:
            self.wait.cleaned(freed_bytes)

    @property
    def waiting_on_headroom(self) -> bool:
        return isinstance(self.wait, HeadroomWait)
