"""Small text helpers shared by the panels (pure functions, no widgets).

Durations reuse the headless face's ``format_duration`` so both faces say
"1m02s" the same way.
"""

from __future__ import annotations

import os
import unicodedata

from memtui.events import (BatchDone, BatchStarted, BreakerChanged, CleanupRan, Event, MemoryWarning,
                           Notice, PhaseChanged, RunFinished)
from memtui.headless import format_duration
from memtui.memory.breaker import BreakerState
from memtui.memory.units import GB

__all__ = ["format_duration", "gb", "strip_icon", "classify", "short_path", "STATE_STYLE", "STATE_CLASS",
           "bar", "count", "seconds_to_breaker"]

#: Theme variable for each breaker state (colors only ever come from the theme).
STATE_STYLE = {
    BreakerState.CLOSED: "$success",
    BreakerState.WARNING: "$warning",
    BreakerState.OPEN: "$error",
    BreakerState.HALF_OPEN: "$accent",
}
#: CSS class for each breaker state, so .tcss can color borders.
STATE_CLASS = {
    BreakerState.CLOSED: "-closed",
    BreakerState.WARNING: "-warning",
    BreakerState.OPEN: "-open",
    BreakerState.HALF_OPEN: "-half-open",
}


def gb(n_bytes: float) -> str:
    return f"{n_bytes / GB:.2f}GB"


def count(n: int) -> str:
    return f"{n:,}"


def strip_icon(message: str) -> str:
    """Drop the leading emoji of an event message.

    The headless log keeps the original guide's emoji; on a terminal grid over
    SSH/tmux, emoji like '⚠️' have no agreed width and shift borders, so the
    TUI shows a fixed-width text tag instead.
    """
    head, sep, rest = message.partition(" ")
    if sep and head and not any(ch.isalnum() for ch in head) and any(
            ord(ch) > 0x2000 or unicodedata.category(ch) == "So" for ch in head):
        return rest
    return message


#: Phases worth a log line (the header shows the others).
_LOGGED_PHASES = {"loading model", "waiting for memory", "stopping"}


def classify(event: Event) -> tuple[str, str] | None:
    """(tag, kind) for an event's GC-log line, or None if it does not belong in the log.

    ``kind`` names a component class of the log (info, muted, cleanup, warning, error, success).
    """
    if isinstance(event, CleanupRan):
        return "GC", "cleanup"
    if isinstance(event, MemoryWarning):
        return "WARN", "warning"
    if isinstance(event, BreakerChanged):
        kind = {BreakerState.OPEN: "error", BreakerState.WARNING: "warning",
                BreakerState.HALF_OPEN: "info", BreakerState.CLOSED: "success"}[event.new]
        return "BRKR", kind
    if isinstance(event, BatchDone):
        return "BATCH", "muted"
    if isinstance(event, BatchStarted):
        return None
    if isinstance(event, RunFinished):
        return "DONE", "success" if event.report.get("status") == "success" else "error"
    if isinstance(event, PhaseChanged):
        return ("PHASE", "info") if event.phase in _LOGGED_PHASES else None
    if isinstance(event, Notice):
        return {"error": ("ERROR", "error"), "warning": ("WARN", "warning")}.get(event.level, ("NOTE", "info"))
    return ("NOTE", "info")


def seconds_to_breaker(history: tuple[tuple[float, int], ...], rss: int, max_bytes: int,
                       window_s: float = 60.0) -> float | None:
    """Time until RSS reaches the breaker at the trend of the last ``window_s``; None if not rising.

    A least-squares slope, not first-versus-last sample: an embedding job's RSS is
    a sawtooth (each sub-batch allocates, then frees), so two samples taken at a
    trough and a peak would predict the breaker in a minute on a flat run.
    """
    if not history:
        return None
    end = history[-1][0]
    points = [(t, r) for t, r in history if t >= end - window_s]
    if len(points) < 3 or points[-1][0] - points[0][0] < window_s / 6:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var <= 0:
        return None
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / var  # bytes per second
    if slope <= 0:
        return None
    return max(0.0, (max_bytes - rss) / slope)


def short_path(path: str, width: int = 40) -> str:
    """A path an operator recognises in ``width`` cells: ~ for home, then the tail."""
    home = os.path.expanduser("~")
    if home != "/" and path.startswith(home + os.sep):
        path = "~" + path[len(home):]
    if len(path) <= width:
        return path
    return "…" + path[-(width - 1):]


def bar(fraction: float, width: int) -> tuple[str, str]:
    """(filled, empty) parts of a progress bar, with eighth blocks for smoothness."""
    width = max(0, width)
    fraction = min(1.0, max(0.0, fraction))
    eighths = int(round(fraction * width * 8))
    full, part = divmod(eighths, 8)
    filled = "█" * full + ("" if part == 0 or full >= width else " ▏▎▍▌▋▊▉"[part])
    return filled, "░" * (width - len(filled))
