"""The process table's columns for a width, its sort orders and its filter (pure functions, no widgets).

Columns are dropped least important first as the terminal narrows (the
sparkline, then peak and breaker, then the growth rate), so PID, process,
RSS, State and the time to the breaker stay on screen down to 60 columns: the
keys s/r/k act on a row whose state can be seen. The process name takes
whatever width is left.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from memtui.jobs.monitor.tracker import TargetSnapshot
from memtui.memory.units import GB, MB

#: DataTable's cell padding (one column each side), counted for every column.
PADDING = 2


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    width: int  # the name column's is its minimum: it takes the rest
    justify: str = "left"


PID = Column("pid", "PID", 7, "right")
NAME = Column("name", "Process", 12)
RSS = Column("rss", "RSS", 7, "right")
TREND = Column("trend", "Trend", 8, "right")
HISTORY = Column("history", "History", 8)
PEAK = Column("peak", "Peak", 7, "right")
BREAKER = Column("breaker", "Breaker", 9)
STATE = Column("state", "State", 16)  # "stopped (memtui)": stopped by the breaker policy
SHORT_STATE = Column("state", "State", 7)  # "stopped", whoever stopped it
ETA = Column("eta", "To breaker", 10, "right")

#: The name's minimum in the wide layouts: the sparkline comes at 100 columns, peak and breaker at 120.
WIDE_NAME = Column("name", "Process", 26)
#: Widest first; the first whose fixed columns leave the name its minimum is used.
LAYOUTS: tuple[tuple[Column, ...], ...] = (
    (PID, WIDE_NAME, RSS, TREND, HISTORY, PEAK, BREAKER, STATE, ETA),
    (PID, WIDE_NAME, RSS, TREND, HISTORY, STATE, ETA),
    (PID, NAME, RSS, TREND, STATE, ETA),
    (PID, NAME, RSS, TREND, SHORT_STATE, ETA),
    (PID, NAME, RSS, SHORT_STATE, ETA),
    (PID, Column("name", "Process", 6), RSS, SHORT_STATE),
)


def fit(width: int) -> tuple[Column, ...]:
    """The columns for a table ``width`` cells wide, the name column widened to fill it."""
    for layout in LAYOUTS:
        fixed = sum(c.width + PADDING for c in layout if c.key != "name") + PADDING
        name = next(c for c in layout if c.key == "name")
        if width - fixed >= name.width or layout is LAYOUTS[-1]:
            wide = Column(name.key, name.label, max(name.width, width - fixed), name.justify)
            return tuple(wide if c.key == "name" else c for c in layout)
    raise AssertionError("unreachable")


def size(n_bytes: float) -> str:
    """``4.2MB`` below 10MB, ``124MB`` below a GB, ``1.50GB`` from there: a short cell in memtui's units."""
    if n_bytes >= GB:
        return f"{n_bytes / GB:.2f}GB"
    return f"{n_bytes / MB:.1f}MB" if n_bytes < 10 * MB else f"{n_bytes / MB:.0f}MB"


def trend(bps: float | None) -> str:
    """``+12MB/s``, ``-0.4MB/s``, ``+1.2GB/s``; ``—`` while there is no rate yet."""
    if bps is None:
        return "—"
    mb = bps / MB
    if abs(mb) >= 1000:
        return f"{bps / GB:+.1f}GB/s"
    if round(abs(mb), 1) == 0:
        return "0MB/s"
    return f"{mb:+.0f}MB/s" if abs(mb) >= 10 else f"{mb:+.1f}MB/s"


def _growth(t: TargetSnapshot) -> tuple[float, int]:
    return (-(t.rate_bps if t.rate_bps is not None else float("-inf")), t.pid)


class Order(enum.Enum):
    """How the rows are sorted; ``o`` cycles through them in this order."""

    RSS = "RSS"
    GROWTH = "growth"
    PID = "PID"

    @property
    def key(self) -> Callable[[TargetSnapshot], tuple[float, int]]:
        return {
            Order.RSS: lambda t: (-t.rss, t.pid),
            Order.GROWTH: _growth,
            Order.PID: lambda t: (t.pid, 0),
        }[self]

    def next(self) -> Order:
        members = list(Order)
        return members[(members.index(self) + 1) % len(members)]


def matches(t: TargetSnapshot, text: str) -> bool:
    """Does the filter ``text`` appear in the pid, the name or the shown command line (any case)?"""
    needle = text.strip().lower()
    return not needle or needle in str(t.pid) or needle in t.name.lower() or needle in t.label.lower()


def rows(targets: Iterable[TargetSnapshot], order: Order, text: str) -> list[TargetSnapshot]:
    """The live targets the filter keeps, in the chosen order (those that exited or left are not rows)."""
    return sorted((t for t in targets if not t.gone and matches(t, text)), key=order.key)
