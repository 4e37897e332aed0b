"""A cluster run's workers, one row each: name, RSS, a sparkline of the last seconds, breaker, batch,
responses done, and what the worker does (its domain, paused, waiting for memory).

Each worker guards itself with its own breaker, so a row is that worker's memory core
seen from the client (``RunSnapshot.workers``); the panels above stay the client's own and
the run's totals. The sparkline uses the memory panel's fixed scale (0 to a little above
the worker's breaker level), so the same height is the same memory on every row. Rows are
keyed by address, a lost worker keeps its last row (dimmed); many workers scroll (Tab
focuses the table, arrows move). Only wide terminals show each worker's responses done
(they are in the report); narrow ones shorten the sparkline. Colors come only from the
theme, through component classes in app.tcss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from rich.style import Style
from rich.text import Text
from textual.events import Resize
from textual.widgets import DataTable

from memtui.memory.units import GB
from memtui.records import WorkerRow
from memtui.runner import RunSnapshot
from memtui.tui.text import STATE_NAME, gb
from memtui.tui.widgets.memory_sparkline import HEADROOM

_BLOCKS = " ▁▂▃▄▅▆▇█"
#: Below this many cells of content the panel shortens the name and the sparkline more.
NARROW = 70
#: From this many cells of content up the panel shows each worker's responses done.
WIDE = 90


class Column(NamedTuple):
    key: str
    label: str
    width: int


def columns(width: int) -> tuple[Column, ...]:
    """The columns for ``width`` cells of content: the domain takes what the others leave."""
    fixed = [
        Column("name", "Worker", 8 if width >= WIDE else 6),
        Column("rss", "RSS", 7),
        Column("trend", "Last 20s", 12 if width >= WIDE else 10 if width >= NARROW else 6),
        Column("breaker", "Breaker", 9),
        Column("batch", "Texts", 5),  # a worker's sub-batch counts texts, the Batch panel domains
    ]
    if width >= WIDE:
        fixed.append(Column("done", "Done", 6))
    # one cell of padding on both sides of each column; one cell for a scrollbar when rows overflow
    used = sum(c.width + 2 for c in fixed) + 2 + 1
    return (*fixed, Column("doing", "Doing", max(8, width - used)))


def spark(values: Sequence[int], width: int, warning_bytes: int, max_bytes: int) -> list[tuple[str, str]]:
    """One row of blocks on a fixed scale (0 to HEADROOM x the breaker, rounded up to 0.1GB), each with
    its zone (normal, warning, critical); the peak of each slice when there are more values than cells."""
    if width <= 0 or not values:
        return []
    if len(values) > width:
        step = len(values) / width
        values = [max(values[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]) for i in range(width)]
    tenth = GB // 10
    top = max(tenth, -(-int(max_bytes * HEADROOM) // tenth) * tenth)
    out = []
    for v in values:
        level = min(8, max(1, round(v / top * 8)))  # the lowest block still draws: a worker is never empty
        zone = "critical" if v >= max_bytes else "warning" if v >= warning_bytes else "normal"
        out.append((_BLOCKS[level], zone))
    return out


#: What a worker does, in a word, before its domain (the domain is what the operator looks for).
_SHORT = {"paused": "paused", "waiting for memory": "waiting", "loading model": "loading"}


def doing(row: WorkerRow) -> str:
    """The worker's domain, after a word when it is not simply embedding it; else what it does."""
    if row.lost:
        return "lost"
    if row.current_domain:
        # paused but still embedding: the pause arrived, the sub-batch in flight finishes first
        word = "pausing" if row.paused and row.activity == "embedding" else _SHORT.get(row.activity)
        return f"{word}: {row.current_domain}" if word else row.current_domain
    return "paused" if row.paused else row.activity


class WorkersPanel(DataTable):
    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "workers-panel--normal",
        "workers-panel--warning",
        "workers-panel--critical",
        "workers-panel--closed",
        "workers-panel--open",
        "workers-panel--half-open",
        "workers-panel--paused",
        "workers-panel--muted",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="none", show_cursor=False, zebra_stripes=False)
        self._rows: tuple[WorkerRow, ...] = ()
        self._layout: tuple[Column, ...] = ()

    def on_mount(self) -> None:
        self.border_title = "Workers"
        self._draw()

    def on_resize(self, _event: Resize) -> None:
        self._draw()

    def show(self, s: RunSnapshot) -> None:
        """The snapshot's worker rows (the app polls a few times a second)."""
        if s.workers == self._rows:
            return
        self._rows = s.workers
        if self.is_mounted:
            self._draw()

    def _draw(self) -> None:
        layout = columns(self.size.width or 80)
        if layout != self._layout:
            self.clear(columns=True)
            for c in layout:
                self.add_column(c.label, key=c.key, width=c.width)
            self._layout = layout
        for row in self._rows:
            cells = self._cells(row)
            if row.address in self.rows:
                for c, cell in zip(layout, cells):
                    self.update_cell(row.address, c.key, cell)
            else:
                self.add_row(*cells, key=row.address)
        lost = sum(w.lost for w in self._rows)
        self.border_title = f"Workers {len(self._rows) - lost}" + (f" · {lost} lost" if lost else "")
        self.border_subtitle = "per-worker breaker"

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"workers-panel--{name}", partial=True)

    def _cells(self, row: WorkerRow) -> list[Text]:
        dim = self._style("muted") if row.lost else None
        widths = {c.key: c.width for c in self._layout}
        trend = Text(no_wrap=True, overflow="crop")
        for ch, zone in spark(row.history, widths["trend"], row.warning_bytes, row.max_bytes):
            trend.append(ch, style=dim or self._style(zone))
        breaker = Text("—" if row.lost else row.breaker.label, style=dim or self._style(STATE_NAME[row.breaker]))
        activity = doing(row)
        busy = row.paused or row.activity in ("paused", "waiting for memory")
        cells = {
            "name": Text(row.name, style=dim or "", overflow="ellipsis", no_wrap=True),
            "rss": Text(gb(row.rss_bytes), style=dim or "", justify="right"),
            "trend": trend,
            "breaker": breaker,
            "batch": Text(str(row.batch_size), style=dim or "", justify="right"),
            "done": Text(f"{row.items_done:,}", style=dim or "", justify="right"),
            "doing": Text(
                activity,
                style=dim or (self._style("paused") if busy else ""),
                overflow="ellipsis",
                no_wrap=True,
            ),
        }
        return [cells[c.key] for c in self._layout]
