"""The watched processes, one row each, in columns that fit the terminal (memtui.tui.process_columns).

Rows are keyed by pid and the cursor follows its pid when rows are re-sorted,
filtered, enter or leave: an operator about to press k must not find the
cursor on another process. A process that exits or leaves the top N leaves the
table (the log says so). Colors come only from the theme, through component
classes styled in monitor_app.tcss.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widgets import DataTable

from memtui.jobs.monitor.tracker import TargetSnapshot, TargetState
from memtui.memory.breaker import BreakerState
from memtui.tui.process_columns import Column, Order, fit, rows, size, trend
from memtui.tui.text import STATE_NAME, format_duration
from memtui.tui.widgets.row_sparkline import row_sparkline

#: Columns kept free on the right for the vertical scrollbar, so a long list does not push a column out.
SCROLLBAR = 2


def _same(a: object, b: Text) -> bool:
    return isinstance(a, Text) and (a.plain, a.style, a.justify) == (b.plain, b.style, b.justify)


class ProcessTable(DataTable):
    COMPONENT_CLASSES = DataTable.COMPONENT_CLASSES | {
        "process-table--closed",
        "process-table--warning",
        "process-table--open",
        "process-table--half-open",
        "process-table--stopped",
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.targets: tuple[TargetSnapshot, ...] = ()
        self.order = Order.RSS
        self.filter_text = ""
        self.layout_columns: tuple[Column, ...] = ()

    @property
    def selected_pid(self) -> int | None:
        if not self.row_count:
            return None
        row_key, _ = self.coordinate_to_cell_key(self.cursor_coordinate)
        return int(row_key.value) if row_key.value is not None else None

    @property
    def shown_pids(self) -> list[int]:
        return [int(row.key.value) for row in self.ordered_rows if row.key.value is not None]

    def show(self, targets: tuple[TargetSnapshot, ...]) -> None:
        """The latest targets: update the rows (a theme switch recolors on the next poll)."""
        self.targets = targets
        self._redraw()

    def sort_by(self, order: Order) -> None:
        self.order = order
        self._redraw()

    def filter_by(self, text: str) -> None:
        self.filter_text = text
        self._redraw()

    def on_resize(self, _event: events.Resize) -> None:
        self._redraw()

    def _redraw(self) -> None:
        if not self.is_mounted:
            return
        pid, index = self.selected_pid, self.cursor_row
        columns = fit(self.size.width - SCROLLBAR)
        if columns != self.layout_columns:
            self.clear(columns=True)
            for c in columns:
                self.add_column(c.label, key=c.key, width=c.width)
            self.layout_columns = columns
        wanted = rows(self.targets, self.order, self.filter_text)
        if [t.pid for t in wanted] == self.shown_pids:
            for t in wanted:
                for c, cell in zip(columns, self._cells(t, columns)):
                    if not _same(self.get_cell(str(t.pid), c.key), cell):  # most cells hold still
                        self.update_cell(str(t.pid), c.key, cell)
        else:
            self.clear()
            for t in wanted:
                self.add_row(*self._cells(t, columns), key=str(t.pid))
            keys = [t.pid for t in wanted]
            if wanted:
                self.move_cursor(row=keys.index(pid) if pid in keys else min(index, len(keys) - 1), scroll=True)
        self._title(len(wanted))

    def _title(self, shown: int) -> None:
        live = sum(not t.gone for t in self.targets)
        count = f"{shown} of {live}" if self.filter_text else f"{live}"
        where = f" · filter {self.filter_text!r}" if self.filter_text else ""
        noun = "process" if live == 1 else "processes"
        self.border_title = f"{count} {noun} · by {self.order.value}{where}"

    def _style(self, name: str) -> Style:
        return self.get_component_rich_style(f"process-table--{name}", partial=True)

    def _cells(self, t: TargetSnapshot, columns: tuple[Column, ...]) -> list[Text]:
        breaker = self._style(STATE_NAME[t.breaker])
        alarm = breaker if t.breaker is not BreakerState.CLOSED else Style()
        stopped = t.state is TargetState.STOPPED
        if t.breaker is BreakerState.OPEN:
            eta = "open"
        elif t.breaker is BreakerState.HALF_OPEN:
            eta = "half-open"
        elif t.seconds_to_limit is None:
            eta = "—"
        else:
            eta = "now" if t.seconds_to_limit == 0 else format_duration(t.seconds_to_limit)
        cells = {
            "pid": Text(str(t.pid)),
            "rss": Text(size(t.rss) if t.samples else "—", style=alarm),  # a newcomer not sampled yet
            "trend": Text(trend(t.rate_bps)),
            "peak": Text(size(t.peak)),
            "breaker": Text(t.breaker.label.lower(), style=breaker),
            "eta": Text(eta, style=alarm),
        }
        out = []
        for c in columns:
            if c.key == "name":
                cell = Text(t.label, overflow="ellipsis", no_wrap=True)
            elif c.key == "history":
                cell = Text(row_sparkline([rss for _, rss in t.history], c.width), style=alarm)
            elif c.key == "state":
                held = " (memtui)" if t.held_by == "breaker" and c.width >= len("stopped (memtui)") else ""
                cell = Text(t.state.value + held, style=self._style("stopped") if stopped else "")
            else:
                cell = cells[c.key]
            cell.justify = c.justify  # type: ignore[assignment]
            out.append(cell)
        return out
