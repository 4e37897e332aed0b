"""What every engine shares, written once: its commands, its event bus, and its clock of working time.

An engine (memtui.engine.Engine: the Runner, the MonitorEngine, a third one) inherits ``EngineCore``:

* the commands every face may send from any thread (``pause``, ``resume``, ``stop``,
  ``request_cleanup``) set flags under one lock and wake the engine's thread at once; each says
  what it did in the engine's own words (``Wording``), once per change (a second pause says nothing);
* the engine's own thread reads them at its checkpoints (``_requests``, ``_take_cleanup``) and waits
  on them (``_wait_for``): the flags themselves are the core's, not the engine's;
* ``subscribe``/``unsubscribe``/``_publish``: the event bus every face drains;
* time: ``_begin``/``_end`` frame the run (``_elapsed``: wall time, frozen at the end); ``_hold``
  marks the spells the engine is held (the Runner: while paused), which ``_active`` leaves out, so a
  rate counts working time only.

The clock is injected, so the state machine is tested without sleeping (tests/test_engine_core.py).
This protected interface (the names above, ``_lock``, ``_wake``, ``_clock``; a ``_wait_for`` predicate may
read the flags ``_paused``, ``_stop_requested``, ``_cleanup_requested``) is what subclasses use;
nothing else of an engine's internals is shared.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from memtui.events import Event, EventBus, EventQueue, Notice


@dataclass(frozen=True)
class Wording:
    """What each command says in the log, in the engine's terms."""

    pause: str
    resume: str
    stop: str


@dataclass(frozen=True)
class Requests:
    """The operator's standing requests, read at once under the lock (a cleanup is taken separately)."""

    stop: bool
    paused: bool
    cleanup: bool


class EngineCore:
    """Commands, events and working time for one engine; thread-safe, with an injectable clock."""

    def __init__(self, *, clock: Callable[[], float], wording: Wording, reentrant: bool = False) -> None:
        """``reentrant``: the engine calls back into itself with its lock held (the monitor's policy)."""
        self._clock = clock
        self._wording = wording
        self._lock: threading.Lock | threading.RLock = threading.RLock() if reentrant else threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._bus = EventBus()
        self._paused = False
        self._stop_requested = False
        self._cleanup_requested = False
        self._t0: float | None = None
        self._t_end: float | None = None
        self._held_total_s = 0.0  # time held (left out of the working time)
        self._held_at: float | None = None  # when the current hold began

    # -- commands (any thread) ------------------------------------------------------
    def pause(self) -> None:
        if self._set_paused(True):
            self._publish(Notice(self._wording.pause))

    def resume(self) -> None:
        if self._set_paused(False):
            self._publish(Notice(self._wording.resume))

    def stop(self) -> None:
        with self._wake:
            self._stop_requested = True
            self._wake.notify_all()
        self._publish(Notice(self._wording.stop))
        self._stopping()

    def _stopping(self) -> None:
        """After a stop request, in the caller's thread: what an engine adds (the Runner: its stop's grace)."""

    def request_cleanup(self) -> None:
        """Run memtui's own cleanup at the engine's next checkpoint, in the engine's thread."""
        with self._wake:
            self._cleanup_requested = True
            self._wake.notify_all()

    def _set_paused(self, paused: bool) -> bool:
        """Whether this changed anything."""
        with self._wake:
            if self._paused == paused:
                return False
            self._paused = paused
            self._wake.notify_all()
        return True

    # -- reading the commands (the engine's thread) ---------------------------------
    @property
    def paused(self) -> bool:
        return self._paused

    def _requests(self) -> Requests:
        with self._lock:
            return Requests(self._stop_requested, self._paused, self._cleanup_requested)

    def _take_cleanup(self) -> bool:
        """A requested cleanup, taken (the next call says False until another request)."""
        with self._lock:
            cleanup, self._cleanup_requested = self._cleanup_requested, False
            return cleanup

    def _wait_for(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (at most ``timeout``) until ``predicate`` holds; any command re-checks it at once."""
        with self._wake:
            self._wake.wait_for(predicate, timeout=max(0.0, timeout))

    def _notify(self) -> None:
        """Wake whatever waits on the commands (the engine's own reasons: the breaker let go)."""
        with self._wake:
            self._wake.notify_all()

    # -- events ---------------------------------------------------------------------
    def subscribe(self) -> EventQueue:
        return self._bus.subscribe()

    def unsubscribe(self, queue: EventQueue) -> None:
        self._bus.unsubscribe(queue)

    def _publish(self, event: Event) -> None:
        self._bus.publish(event)

    # -- time -----------------------------------------------------------------------
    def _begin(self) -> float:
        with self._lock:
            self._t0 = self._clock()
            return self._t0

    def _end(self) -> float:
        with self._lock:
            self._t_end = self._clock()
            return self._t_end

    def _hold(self, held: bool, now: float) -> None:
        """The engine is held from ``now`` (True) or works again (False); lock held."""
        if held and self._held_at is None:
            self._held_at = now
        elif not held and self._held_at is not None:
            self._held_total_s += max(0.0, now - self._held_at)
            self._held_at = None

    def _now(self) -> float:
        """The clock, frozen at the run's end (lock held)."""
        return self._t_end if self._t_end is not None else self._clock()

    def _elapsed(self, now: float | None = None) -> float:
        """Wall time since the run began, held spells included (lock held); 0 before it began."""
        if self._t0 is None:
            return 0.0
        return (self._t_end if self._t_end is not None else (self._clock() if now is None else now)) - self._t0

    def _active(self, now: float) -> float:
        """The clock with held spells left out (lock held): rates and ETAs count working time only."""
        held = self._held_total_s + (max(0.0, now - self._held_at) if self._held_at is not None else 0.0)
        return now - held

    def _working(self, now: float | None = None) -> float:
        """Working time since the run began (lock held): elapsed less the held spells; frozen at the end."""
        if self._t0 is None:
            return 0.0
        end = self._t_end if self._t_end is not None else (self._clock() if now is None else now)
        return self._active(end) - self._t0
