"""TargetTracker: one watched process's numbers, breaker and record.

Fed one PidSample per interval from the engine's thread: it keeps a history
ring (growth rate and time-to-limit come from it), the peak, warnings, trips,
the actions taken on the process, and hands out immutable TargetSnapshots.
"""

from __future__ import annotations

import collections
import enum
import itertools
from dataclasses import dataclass
from typing import Any

from memtui.memory.breaker import BreakerState, BreakerTransition, CircuitBreaker, Clock
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import growth_rate, seconds_to_level
from memtui.memory.pid_probe import PidProbe, PidSample
from memtui.memory.units import GB

#: The growth rate (``growth_rate``, a least-squares fit) looks this far back (or three intervals, if longer).
GROWTH_WINDOW_S = 10.0
#: USS/PSS are read only while that costs under this share of the interval (it scales with RSS).
DETAIL_BUDGET = 0.02
#: Shown instead of a long command line.
LABEL_WIDTH = 40
#: Each TargetTracker's ``watch_id``: a pid watched again (re-entered, or reused) is another watch.
_WATCHES = itertools.count(1)


class TargetState(str, enum.Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    EXITED = "exited"
    DENIED = "access denied"
    LEFT = "left"  # dropped out of a live top N (memtui.jobs.monitor.targets.TopN)


@dataclass(frozen=True)
class Action:
    """A signal memtui sent (or tried to send) to a target."""

    at: str  # wall-clock time, ISO 8601
    elapsed_s: float  # since the watch started
    action: str  # "stop" | "resume" | "terminate"
    signal: str  # "SIGSTOP" | "SIGCONT" | "SIGTERM"
    reason: str
    by: str  # "breaker" | "operator" | "memtui"
    ok: bool
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {
            "at": self.at,
            "elapsed_s": round(self.elapsed_s, 3),
            "action": self.action,
            "signal": self.signal,
            "reason": self.reason,
            "by": self.by,
            "ok": self.ok,
        }
        if self.error:
            out["error"] = self.error
        return out


def short_label(name: str, cmdline: str, width: int = LABEL_WIDTH) -> str:
    """``python3 train.py --epochs 3`` from ``/usr/bin/python3 /home/me/train.py --epochs 3``, cut to ``width``.

    Newlines and runs of spaces (``python -c "<script>"``) become single spaces: a label is one line.
    """
    args = cmdline.split()
    if not args:
        return name
    head = [args[0].rsplit("/", 1)[-1]]
    if len(args) > 1:
        head.append(args[1].rsplit("/", 1)[-1] if "/" in args[1] and not args[1].startswith("-") else args[1])
    text = " ".join(head + args[2:])
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclass(frozen=True)
class TargetSnapshot:
    pid: int
    name: str
    cmdline: str
    label: str
    state: TargetState
    status: str  # psutil's word for the process ("sleeping", "stopped", ...)
    note: str  # why it is exited / denied / stopped
    rss: int
    uss: int | None
    pss: int | None
    processes: int
    peak: int
    rate_bps: float | None  # bytes per second over the recent window
    seconds_to_limit: float | None
    breaker: BreakerState
    trips: int
    warnings: int
    warning_bytes: int
    max_bytes: int
    reset_bytes: int
    own_thresholds: bool  # set for this target alone
    held_by: str | None  # who stopped it: "breaker" | "operator" | None
    actions: tuple[Action, ...]
    samples: int
    sample_cost_s: float
    history: tuple[tuple[float, int], ...]
    watch_id: int = 0  # which watch of this pid: a face checks it before a signal it asked about

    @property
    def gone(self) -> bool:
        return self.state in (TargetState.EXITED, TargetState.DENIED, TargetState.LEFT)

    def as_report(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "name": self.name,
            "cmdline": self.cmdline,
            "state": self.state.value,
            "note": self.note,
            "memory_usage_gb": round(self.rss / GB, 3),
            "peak_memory_gb": round(self.peak / GB, 3),
            "uss_gb": None if self.uss is None else round(self.uss / GB, 3),
            "processes": self.processes,
            "memory_warnings": self.warnings,
            "breaker_trips": self.trips,
            "breaker_state": self.breaker.value,
            "warning_memory_gb": round(self.warning_bytes / GB, 3),
            "max_memory_gb": round(self.max_bytes / GB, 3),
            "samples": self.samples,
            "actions": [a.as_dict() for a in self.actions],
        }


class TargetTracker:
    """Not thread-safe: the engine calls it under its own lock."""

    def __init__(self, probe: PidProbe, config: MemoryConfig, *, clock: Clock, interval_s: float) -> None:
        self.probe = probe
        self.pid = probe.pid
        self.watch_id = next(_WATCHES)
        self.label = short_label(probe.name, probe.cmdline)
        self.interval_s = interval_s
        self._clock = clock
        self.breaker = CircuitBreaker(config, clock=clock)
        self._transitions: list[BreakerTransition] = []
        self.breaker.add_listener(self._transitions.append)
        self.own_thresholds = False
        self._history: collections.deque[tuple[float, int]] = collections.deque(maxlen=config.history_size)
        self._last: PidSample | None = None
        self._peak = 0
        self._warnings = 0
        self._samples = 0
        self._cost = 0.0
        self._detail_cost: tuple[float, int] | None = None  # (seconds, at this RSS)
        self._detail_denied = False
        self._gone: tuple[TargetState, str] | None = None
        self.held_by: str | None = None
        self.actions: list[Action] = []
        self._signalled: str | None = None  # status implied by a stop/resume sent since the last sample

    @property
    def config(self) -> MemoryConfig:
        return self.breaker.config

    def set_config(self, config: MemoryConfig, *, own: bool) -> list[BreakerTransition]:
        self.own_thresholds = own
        self.breaker.set_config(config)
        return self._drain()

    @property
    def gone(self) -> bool:
        return self._gone is not None

    def wants_detail(self) -> bool:
        """Read USS/PSS this round? Only while the last read, scaled to today's RSS, fits the budget."""
        if self._detail_denied:
            return False
        if self._detail_cost is None:
            return True
        cost, at_rss = self._detail_cost
        rss = self._last.rss if self._last else at_rss
        return cost * rss / max(at_rss, 1) <= DETAIL_BUDGET * self.interval_s

    def record(self, sample: PidSample, cost_s: float) -> list[BreakerTransition]:
        """One interval's sample; returns the breaker transitions it caused."""
        now = self._clock()
        self._last = sample
        self._samples += 1
        self._cost = cost_s
        self._peak = max(self._peak, sample.rss)
        self._history.append((now, sample.rss))
        self._signalled = None
        if sample.detail_denied:
            self._detail_denied = True
        elif sample.detail_cost_s is not None:
            self._detail_cost = (sample.detail_cost_s, sample.rss)
        was_half_open = self.breaker.state is BreakerState.HALF_OPEN
        self.breaker.update(sample.rss)
        if was_half_open and self.breaker.state is BreakerState.HALF_OPEN:
            # Half-open is the probation after a recovery: a whole interval without re-tripping closes it.
            self.breaker.record_success()
        return self._drain()

    def mark(self, state: TargetState, note: str) -> None:
        """The process exited or became unreadable: keep its numbers, stop sampling it."""
        self._gone = (state, note)
        self.held_by = None

    def add_action(self, action: Action) -> None:
        self.actions.append(action)
        if action.ok and action.action in ("stop", "resume"):
            self._signalled = "stopped" if action.action == "stop" else "running"

    def _drain(self) -> list[BreakerTransition]:
        out = list(self._transitions)
        self._transitions.clear()
        for t in out:
            if t.counts_as_warning:
                self._warnings += 1
        return out

    def _window_s(self) -> float:
        return max(GROWTH_WINDOW_S, 3 * self.interval_s)

    def snapshot(self) -> TargetSnapshot:
        cfg = self.config
        last = self._last
        rss = last.rss if last else 0
        rate = None if self._gone else growth_rate(self._history, self._window_s(), 2 * self.interval_s)
        if self._gone:
            eta = None
        elif rss >= cfg.max_bytes:
            eta = 0.0
        else:  # the one estimator (the engine's memory panel uses it too)
            eta = seconds_to_level(self._history, rss, cfg.max_bytes, self._window_s(), 2 * self.interval_s)
        status = self._signalled or (last.status if last else "?")
        if self._gone:
            state, note = self._gone
        elif status in ("stopped", "tracing-stop"):
            state = TargetState.STOPPED
            note = {"breaker": "stopped by memtui (breaker open)", "operator": "paused by the operator"}.get(
                self.held_by or "", "stopped (not by memtui)"
            )
        else:
            state, note = TargetState.RUNNING, ""
        return TargetSnapshot(
            pid=self.pid,
            name=self.probe.name,
            cmdline=self.probe.cmdline,
            label=self.label,
            state=state,
            status=status,
            note=note,
            rss=rss,
            uss=last.uss if last else None,
            pss=last.pss if last else None,
            processes=last.processes if last else 0,
            peak=self._peak,
            rate_bps=rate,
            seconds_to_limit=eta,
            breaker=self.breaker.state,
            trips=self.breaker.trips,
            warnings=self._warnings,
            warning_bytes=cfg.warning_bytes,
            max_bytes=cfg.max_bytes,
            reset_bytes=cfg.reset_bytes,
            own_thresholds=self.own_thresholds,
            held_by=self.held_by,
            actions=tuple(self.actions),
            samples=self._samples,
            sample_cost_s=self._cost,
            history=tuple(self._history),
            watch_id=self.watch_id,
        )
