"""Monitor-mode events: each renders as one log line in the original guide's style.

The headless face prints them; the TUI shows all but the per-interval
TargetSampled lines (its table already says that).
"""

from __future__ import annotations

from dataclasses import dataclass

from memtui.events import Event
from memtui.jobs.monitor.tracker import Action, TargetSnapshot, TargetState
from memtui.memory.breaker import BreakerState
from memtui.memory.units import MB, format_duration, format_gb
from memtui.records import MonitorReport


def format_rate(bps: float | None) -> str:
    return "?MB/s" if bps is None else f"{bps / MB:+.1f}MB/s"


def target_line(t: TargetSnapshot) -> str:
    """``🔍 pid 1234 python worker.py: 0.85GB (+12.0MB/s, peak 0.91GB) breaker closed``."""
    extra = []
    if t.uss is not None:
        extra.append(f"USS {format_gb(t.uss)}")
    if t.processes > 1:
        extra.append(f"{t.processes} processes")
    if t.state is TargetState.STOPPED:
        extra.append(t.note)
    if t.seconds_to_limit is not None and t.breaker is not BreakerState.OPEN:
        extra.append(f"breaker level in {format_duration(t.seconds_to_limit)}")
    tail = "".join(f" · {e}" for e in extra)
    return (
        f"🔍 pid {t.pid} {t.label}: {format_gb(t.rss)} ({format_rate(t.rate_bps)}, peak {format_gb(t.peak)}) "
        f"breaker {t.breaker.value.replace('_', '-')}{tail}"
    )


@dataclass(frozen=True)
class TargetSampled(Event):
    target: TargetSnapshot

    @property
    def message(self) -> str:
        return target_line(self.target)


@dataclass(frozen=True)
class TargetWarning(Event):
    pid: int
    label: str
    rss: int

    @property
    def message(self) -> str:
        return f"⚠️ Memory warning: pid {self.pid} ({self.label}) {format_gb(self.rss)}"


@dataclass(frozen=True)
class TargetBreakerChanged(Event):
    pid: int
    label: str
    old: BreakerState
    new: BreakerState
    rss: int
    reason: str

    @property
    def message(self) -> str:
        icon = {"open": "🚨", "half_open": "🔄", "warning": "⚠️", "closed": "✅"}[self.new.value]
        return (
            f"{icon} Circuit breaker {self.old.label} -> {self.new.label} for pid {self.pid} ({self.label}) "
            f"at {format_gb(self.rss)}: {self.reason}"
        )


@dataclass(frozen=True)
class TargetActed(Event):
    pid: int
    label: str
    action: Action

    @property
    def message(self) -> str:
        a = self.action
        who = {"operator": "by the operator", "memtui": "as memtui exits"}.get(a.by, "by the breaker policy")
        if not a.ok:
            return f"❌ Could not send {a.signal} to pid {self.pid} ({self.label}) {who}: {a.error}"
        icon = {"stop": "⏸️", "resume": "▶️", "terminate": "🛑"}[a.action]
        return f"{icon} Sent {a.signal} to pid {self.pid} ({self.label}) {who}: {a.reason}"


@dataclass(frozen=True)
class TargetGone(Event):
    target: TargetSnapshot
    remaining: int

    @property
    def message(self) -> str:
        t = self.target
        icon = {TargetState.EXITED: "👋", TargetState.LEFT: "↘️"}.get(t.state, "🔒")
        watching = f"still watching {self.remaining}" if self.remaining else "no target left"
        return f"{icon} pid {t.pid} ({t.label}): {t.note}; peak {format_gb(t.peak)}; {watching}"


@dataclass(frozen=True)
class TargetAdded(Event):
    target: TargetSnapshot
    why: str

    @property
    def message(self) -> str:
        t = self.target
        return f"➕ Watching pid {t.pid} ({t.label}): {self.why}"


@dataclass(frozen=True)
class MonitorFinished(Event):
    report: MonitorReport

    @property
    def message(self) -> str:
        r = self.report
        return (
            f"🏁 Monitor {r.status} after {r.duration_s:.1f}s ({r.end_reason}): "
            f"{len(r.targets)} target(s), peak {r.peak_memory_gb:.2f}GB, {r.memory_warnings} warning(s), "
            f"{r.breaker_trips} trip(s), {r.actions} action(s)"
        )
