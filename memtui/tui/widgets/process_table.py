"""The watched processes, one row each: memory, growth, peak, breaker, state, time to the breaker level.

Rows are keyed by pid, so the cursor stays on its process while rows update;
a process that exits keeps its row (dimmed) with its last numbers. Colors come
only from the theme, through component classes styled in monitor_app.tcss.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from memtui.jobs.monitor.events import format_rate
from memtui.jobs.monitor.tracker import TargetSnapshot, TargetState
from memtui.memory.breaker import BreakerState
from memtui.tui.text import format_duration, gb

COLUMNS = (
    ("pid", "PID", 8),
    ("name", "Process", 28),
    ("rss", "RSS", 8),
    ("rate", "Growth", 11),
    ("peak", "Peak", 8),
    ("breaker", "Breaker", 9),
    ("state", "State", 16),
    ("eta", "To breaker", 10),
)

_BREAKER_CLASS = {
    BreakerState.CLOSED: "closed",
    BreakerState.WARNING: "warning",
    BreakerState.OPEN: "open",
    BreakerState.HALF_OPEN: "half-open",
}


class ProcessTable(DataTable):
    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "process-table--closed",
        "process-table--warning",
        "process-table--open",
        "process-table--half-open",
        "process-table--stopped",
        "process-table--gone",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        for key, label, width in COLUMNS:
            self.add_column(label, key=key, width=width)

    @property
    def selected_pid(self) -> int | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return int(row_key.value) if row_key.value is not None else None

    def show(self, targets: tuple[TargetSnapshot, ...]) -> None:
        """Add new processes, refresh every cell (a theme switch recolors on the next poll)."""
        for t in targets:
            cells = self._cells(t)
            key = str(t.pid)
            if key in self.rows:
                for (column, _, _), cell in zip(COLUMNS, cells):
                    self.update_cell(key, column, cell)
            else:
                self.add_row(*cells, key=key)

    def _style(self, name: str):
        return self.get_component_rich_style(f"process-table--{name}", partial=True)

    def _cells(self, t: TargetSnapshot) -> list[Text]:
        gone = t.gone
        dim = self._style("gone") if gone else ""
        breaker = Text("—" if gone else t.breaker.label.lower(), style=dim or self._style(_BREAKER_CLASS[t.breaker]))
        state_style = dim or (self._style("stopped") if t.state is TargetState.STOPPED else "")
        state = t.state.value + (" (memtui)" if t.held_by == "breaker" else "")
        if gone or t.seconds_to_limit is None:
            eta = "—"
        else:
            eta = "now" if t.seconds_to_limit == 0 else format_duration(t.seconds_to_limit)
        return [
            Text(str(t.pid), style=dim),
            Text(t.label, style=dim, overflow="ellipsis", no_wrap=True),
            Text(gb(t.rss), style=dim, justify="right"),
            Text("—" if gone else format_rate(t.rate_bps), style=dim, justify="right"),
            Text(gb(t.peak), style=dim, justify="right"),
            breaker,
            Text(state, style=state_style),
            Text(eta, style=dim, justify="right"),
        ]
