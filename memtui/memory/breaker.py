"""CircuitBreaker: the state machine that decides whether work may be admitted.

It is fed RSS samples and never sleeps; time comes from an injectable clock,
so every transition is testable without waiting.

    CLOSED --rss>=warning--> WARNING --rss>=max--> OPEN (tripped)
    OPEN --rss below the reset level for the hold time--> HALF_OPEN
    HALF_OPEN --a probe batch succeeds--> CLOSED (or WARNING if not below the warning clear level)
    HALF_OPEN --rss>=max--> OPEN (a re-trip doubles the hold time)

Hysteresis: OPEN half-opens only after memory has stayed below the reset level
(the warning level by default) for ``reset_hold_s``; WARNING clears only below
the warning level minus ``warning_hysteresis``, held as long. So the breaker
never flaps around one threshold. Each consecutive trip doubles that hold (up
to ``reset_hold_max_s``); trips stop being consecutive once the breaker has
stayed shut (CLOSED or WARNING) for ``reset_hold_max_s``.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from memtui.memory.config import MemoryConfig

Clock = Callable[[], float]

log = logging.getLogger("memtui")


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    WARNING = "warning"
    OPEN = "open"
    HALF_OPEN = "half_open"

    @property
    def label(self) -> str:
        return self.name.replace("_", "-")


@dataclass(frozen=True)
class BreakerTransition:
    old: BreakerState
    new: BreakerState
    rss: int
    at: float
    reason: str

    @property
    def counts_as_warning(self) -> bool:
        """A memory warning is the breaker leaving CLOSED upward (to WARNING, or straight to OPEN).

        The one place this rule lives: the monitor's warning count and log line, the runner's
        MemoryWarning event and the pid watcher's per-target warnings all ask this. WARNING
        reached from OPEN or HALF-OPEN is the same excursion, not a new warning.
        """
        return self.old is BreakerState.CLOSED and self.new in (BreakerState.WARNING, BreakerState.OPEN)


@dataclass(frozen=True)
class BreakerSnapshot:
    state: BreakerState
    since: float
    time_in_state_s: float
    trips: int
    consecutive_trips: int
    required_hold_s: float


Listener = Callable[[BreakerTransition], None]


class CircuitBreaker:
    def __init__(self, config: MemoryConfig | None = None, *, clock: Clock = time.monotonic) -> None:
        self._config = config or MemoryConfig()
        self._clock = clock
        self._lock = threading.RLock()
        self._state = BreakerState.CLOSED
        self._since = clock()
        self._below_since: float | None = None  # when rss last went under the level that ends this state
        self._trips = 0
        self._consecutive = 0
        self._shut_since = self._since  # when the breaker last shut (CLOSED or WARNING) after a trip
        self._last_rss = 0
        self._last_at = float("-inf")
        self._listeners: list[Listener] = []

    # -- configuration ------------------------------------------------------------
    @property
    def config(self) -> MemoryConfig:
        return self._config

    def set_config(self, config: MemoryConfig) -> None:
        """New thresholds take effect at once, judged against the last RSS seen."""
        with self._lock:
            self._config = config
            self._below_since = None
        self.update(self._last_rss)

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    # -- reading ------------------------------------------------------------------
    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def trips(self) -> int:
        return self._trips

    @property
    def required_hold_s(self) -> float:
        """How long memory must stay low before an open breaker half-opens (grows per trip)."""
        cfg = self._config
        extra = max(0, self._consecutive - 1)
        return min(cfg.reset_hold_s * (2**extra), cfg.reset_hold_max_s)

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            now = self._clock()
            return BreakerSnapshot(
                state=self._state,
                since=self._since,
                time_in_state_s=max(0.0, now - self._since),
                trips=self._trips,
                consecutive_trips=self._consecutive,
                required_hold_s=self.required_hold_s,
            )

    # -- driving ------------------------------------------------------------------
    def update(self, rss: int, at: float | None = None) -> BreakerState:
        """Feed one RSS sample (taken at time ``at``, default now); returns the state after it.

        A sample older than one already seen is ignored: with two samplers a stale
        reading must not undo a newer one (or restart a reset hold).
        """
        fired: list[BreakerTransition] = []
        with self._lock:
            now = self._clock() if at is None else at
            if now < self._last_at:
                return self._state
            self._last_at = now
            self._last_rss = rss
            cfg = self._config
            self._forget_old_trips(now)
            state = self._state
            if rss >= cfg.max_bytes and state is not BreakerState.OPEN:
                self._trip(rss, now, fired)
            elif state is BreakerState.CLOSED:
                if rss >= cfg.warning_bytes:
                    self._move(BreakerState.WARNING, rss, now, "memory above warning level", fired)
            elif state is BreakerState.WARNING:
                if self._held_below(rss, cfg.warning_clear_bytes, now, cfg.reset_hold_s):
                    self._move(BreakerState.CLOSED, rss, now, "memory back to normal", fired)
            elif state is BreakerState.OPEN:
                if self._held_below(rss, cfg.reset_bytes, now, self.required_hold_s):
                    self._move(BreakerState.HALF_OPEN, rss, now, "memory back below reset level", fired)
            # HALF_OPEN leaves through record_success() or a re-trip above.
            result = self._state
        self._notify(fired)
        return result

    def record_success(self) -> BreakerState:
        """A probe batch finished: a half-open breaker closes (or goes to WARNING if still high)."""
        fired: list[BreakerTransition] = []
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                now = self._clock()
                rss = self._last_rss
                # Close only below the warning *clear* level, as WARNING itself does: closing
                # just under the warning level would flap back on the next few kB.
                if rss >= self._config.warning_clear_bytes:
                    self._move(BreakerState.WARNING, rss, now, "probe succeeded, memory still high", fired)
                else:
                    self._move(BreakerState.CLOSED, rss, now, "probe succeeded", fired)
            result = self._state
        self._notify(fired)
        return result

    def trip(self, rss: int, reason: str = "tripped by request") -> None:
        """Open the breaker now (a MemoryError seen by the worker, an operator's command)."""
        fired: list[BreakerTransition] = []
        with self._lock:
            if self._state is not BreakerState.OPEN:
                self._trip(rss, self._clock(), fired, reason)
        self._notify(fired)

    # -- internals (called with the lock held) -------------------------------------
    def _trip(
        self, rss: int, now: float, fired: list[BreakerTransition], reason: str = "memory above breaker level"
    ) -> None:
        self._forget_old_trips(now)
        self._trips += 1
        self._consecutive += 1
        self._move(BreakerState.OPEN, rss, now, reason, fired)

    def _forget_old_trips(self, now: float) -> None:
        """Trips stop counting as consecutive once the breaker has stayed shut (CLOSED or WARNING,
        however often it moved between those) for reset_hold_max_s since it last recovered.

        Checked on every sample and again when tripping, so a long quiet batch with no
        samples in between is not mistaken for a consecutive trip.
        """
        if (
            self._consecutive
            and self._state in (BreakerState.CLOSED, BreakerState.WARNING)
            and now - self._shut_since >= self._config.reset_hold_max_s
        ):
            self._consecutive = 0

    def _held_below(self, rss: int, level: int, now: float, hold: float) -> bool:
        if rss >= level:
            self._below_since = None
            return False
        if self._below_since is None:
            self._below_since = now
        return now - self._below_since >= hold

    def _move(self, new: BreakerState, rss: int, now: float, reason: str, fired: list[BreakerTransition]) -> None:
        old = self._state
        self._state = new
        self._since = now
        if old in (BreakerState.OPEN, BreakerState.HALF_OPEN) and new in (BreakerState.CLOSED, BreakerState.WARNING):
            self._shut_since = now
        self._below_since = None
        fired.append(BreakerTransition(old=old, new=new, rss=rss, at=now, reason=reason))

    def _notify(self, fired: list[BreakerTransition]) -> None:
        if not fired:
            return
        with self._lock:
            listeners = list(self._listeners)
        for transition in fired:
            for listener in listeners:
                try:
                    listener(transition)
                except Exception:
                    # A broken face must not stop the sampler, the worker or the other listeners.
                    log.exception("breaker listener %r failed", listener)
