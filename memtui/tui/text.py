"""Small text helpers shared by the panels (pure functions, no widgets).

Durations reuse memtui.memory.units.format_duration, so every face says
"1m02s" the same way.
"""

from __future__ import annotations

import os
import unicodedata

from memtui.events import (
    BatchDone,
    BatchStarted,
    BreakerChanged,
    CleanupRan,
    Event,
    MemoryWarning,
    Notice,
    PhaseChanged,
    RunFinished,
    WorkerDone,
)
from memtui.memory.breaker import BreakerState
from memtui.memory.units import GB, format_duration

__all__ = [
    "STATE_CLASS",
    "STATE_NAME",
    "STATE_STYLE",
    "bar",
    "classify",
    "count",
    "format_duration",
    "gb",
    "short_path",
    "strip_icon",
]

#: Theme variable for each breaker state (colors only ever come from the theme).
STATE_STYLE = {
    BreakerState.CLOSED: "$success",
    BreakerState.WARNING: "$warning",
    BreakerState.OPEN: "$error",
    BreakerState.HALF_OPEN: "$accent",
}
#: Each breaker state's name in CSS: component classes (``process-table--open``) and, dashed, classes.
STATE_NAME = {
    BreakerState.CLOSED: "closed",
    BreakerState.WARNING: "warning",
    BreakerState.OPEN: "open",
    BreakerState.HALF_OPEN: "half-open",
}
#: CSS class for each breaker state, so .tcss can color borders.
STATE_CLASS = {state: f"-{name}" for state, name in STATE_NAME.items()}


def gb(n_bytes: float) -> str:
    """GB to 0.01, by the run report's rule (rounded to 0.001GB first), so a panel and the summary agree."""
    return f"{round(n_bytes / GB, 3):.2f}GB"


def count(n: int) -> str:
    return f"{n:,}"


def strip_icon(message: str) -> str:
    """Drop the leading emoji of an event message.

    The headless log keeps the original guide's emoji; on a terminal grid over
    SSH/tmux, emoji like '⚠️' have no agreed width and shift borders, so the
    TUI shows a fixed-width text tag instead.
    """
    head, sep, rest = message.partition(" ")
    if (
        sep
        and head
        and not any(ch.isalnum() for ch in head)
        and any(ord(ch) > 0x2000 or unicodedata.category(ch) == "So" for ch in head)
    ):
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
        kind = {
            BreakerState.OPEN: "error",
            BreakerState.WARNING: "warning",
            BreakerState.HALF_OPEN: "info",
            BreakerState.CLOSED: "success",
        }[event.new]
        return "BRKR", kind
    if isinstance(event, (BatchDone, BatchStarted, WorkerDone)):
        return None  # batches are the batch, progress and workers panels' (the headless log keeps its lines)
    if isinstance(event, RunFinished):
        return "DONE", "success" if event.report.status == "success" else "error"
    if isinstance(event, PhaseChanged):
        return ("PHASE", "info") if event.phase in _LOGGED_PHASES else None
    if isinstance(event, Notice):
        return {"error": ("ERROR", "error"), "warning": ("WARN", "warning")}.get(event.level, ("NOTE", "info"))
    return ("NOTE", "info")


def short_path(path: str, width: int = 40) -> str:
    """A path an operator recognises in ``width`` cells: ~ for home, then the tail."""
    home = os.path.expanduser("~")
    if home != "/" and path.startswith(home + os.sep):
        path = "~" + path[len(home) :]
    if len(path) <= width:
        return path
    return "…" + path[-(width - 1) :]


def bar(fraction: float, width: int) -> tuple[str, str]:
    """(filled, empty) parts of a progress bar, with eighth blocks for smoothness."""
    width = max(0, width)
    fraction = min(1.0, max(0.0, fraction))
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    filled = "█" * full + ("" if part == 0 or full >= width else " ▏▎▍▌▋▊▉"[part])
    return filled, "░" * (width - len(filled))
