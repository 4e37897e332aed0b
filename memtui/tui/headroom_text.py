"""The memory panel's two headroom lines: what is left before the limit that kills, and the readings behind it.

    headroom 0.85GB to cgroup  batch +0.05GB
    cgroup 1.15/2.00GB  avail 21.8GB  no swap

Below one batch's measured cost the first line turns bold $error; within two
batches' cost, $warning.
"""

from __future__ import annotations

from textual.content import Content

from memtui.memory.headroom import Headroom
from memtui.memory.units import GB
from memtui.tui.text import gb

#: Headroom within this many batches' cost is drawn in $warning (one batch away is $error).
NEAR_BATCHES = 2.0


def _digits(n_bytes: float) -> int:
    """2 decimals below 10GB, 1 below 100GB, none above: a big machine's numbers fit 46 columns."""
    value = n_bytes / GB
    return 2 if value < 10 else 1 if value < 100 else 0


def short_gb(n_bytes: float) -> str:
    return f"{n_bytes / GB:.{_digits(n_bytes)}f}GB"


def gb_pair(used: float, total: float) -> str:
    """``0.58/0.63GB``: both with the total's digits, so a small limit's usage still shows."""
    digits = _digits(total)
    return f"{used / GB:.{digits}f}/{total / GB:.{digits}f}GB"


def binds_label(binds: str) -> str:
    """A short name for the limit that binds (the log line and the report name it in full)."""
    if binds.startswith("cgroup"):
        return "cgroup"
    if binds == "system MemAvailable":
        return "available"
    return binds


def headroom_line(h: Headroom) -> Content:
    cost = h.batch_cost_bytes
    where = binds_label(h.binds)
    if h.low and cost is not None:
        return Content.styled(f"headroom {short_gb(h.bytes)} < batch +{gb(cost)} ({where})", "bold $error")
    style = "$warning" if cost is not None and h.bytes < NEAR_BATCHES * cost else "bold"
    batch = ("batch none yet", "$text-muted") if cost is None else ("batch ", "$text-muted")
    parts: list[str | tuple[str, str]] = [
        ("headroom ", "$text-muted"),
        (short_gb(h.bytes), style),
        (f" to {where}  ", "$text-muted"),
        batch,
    ]
    if cost is not None:
        parts.append(f"+{gb(cost)}")
    return Content.assemble(*parts)


def readings_line(h: Headroom, width: int = 0) -> Content:
    """The cgroup's working set against its limit, the system's available memory, swap.

    Wider than ``width`` cells with two spaces between the three, it closes up to one.
    """
    line = _readings(h, "  ")
    return _readings(h, " ") if width and line.cell_length > width else line


def _readings(h: Headroom, sep: str) -> Content:
    muted = "$text-muted"
    parts: list[str | tuple[str, str]]
    if h.cgroup is None:
        parts = [("no memory cgroup", muted)]
    elif h.cgroup_limit_bytes is None:
        parts = [("cgroup no limit", muted)]
    else:
        parts = [("cgroup ", muted), gb_pair(h.cgroup_used_bytes or 0, h.cgroup_limit_bytes)]
    if h.available_bytes is not None:
        parts += [(f"{sep}avail ", muted), short_gb(h.available_bytes)]
    if not h.swap_total_bytes:
        parts.append((f"{sep}no swap", muted))
    else:
        swap = f"{(h.swap_used_bytes or 0) / GB:.1f}/{h.swap_total_bytes / GB:.1f}GB"
        parts += [(f"{sep}swap ", muted), (swap, "$warning" if h.swap_used_bytes else "")]
    return Content.assemble(*parts)
