"""Cleanups, warnings, breaker changes and operator notices, newest last, bounded.

Lines are kept as data (a bounded deque) and styled through component classes
at write time, so a theme switch can repaint the whole log in the new colors.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual import events
from textual.widgets import RichLog

from memtui.events import Event
from memtui.tui.text import classify, strip_icon

KINDS = ("info", "muted", "cleanup", "warning", "error", "success")


def local_clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))


@dataclass(frozen=True)
class LogEntry:
    at: float
    tag: str
    kind: str
    text: str


class GcLog(RichLog):
    COMPONENT_CLASSES = {"gc-log--time", *(f"gc-log--{kind}" for kind in KINDS)}

    def __init__(
        self,
        *,
        max_entries: int = 500,
        time_format: Callable[[float], str] = local_clock,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        # RichLog bounds rendered lines; the deque bounds entries (a wrapped entry is several lines).
        super().__init__(
            max_lines=max_entries * 4,
            min_width=20,
            wrap=True,
            markup=False,
            highlight=False,
            auto_scroll=True,
            id=id,
            classes=classes,
        )
        self.entries: collections.deque[LogEntry] = collections.deque(maxlen=max_entries)
        self.time_format = time_format

    def on_mount(self) -> None:
        self.border_title = "GC log"
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self.call_after_refresh(self.repaint))

    def on_resize(self, _event: events.Resize) -> None:
        # Lines are wrapped when written; rewrap them for the new width (a few hundred at most).
        if self.entries:
            self.call_after_refresh(self.repaint)

    def add_event(self, event: Event) -> bool:
        """Log an event if it belongs here; True if it did."""
        tagged = classify(event)
        if tagged is None:
            return False
        tag, kind = tagged
        self.add(tag, kind, strip_icon(event.message), at=event.at)
        return True

    def add(self, tag: str, kind: str, text: str, *, at: float | None = None) -> None:
        entry = LogEntry(time.time() if at is None else at, tag, kind, text)
        self.entries.append(entry)
        self.write(self._line(entry), expand=True)

    def lines_text(self) -> list[str]:
        """The log as plain text, oldest first (for tests and the help screen)."""
        return [f"{e.tag} {e.text}" for e in self.entries]

    def repaint(self) -> None:
        self.clear()
        for entry in self.entries:
            self.write(self._line(entry), expand=True)

    def _line(self, entry: LogEntry) -> Table:
        """Time and tag in fixed columns, the message wrapping beside them (a hanging indent)."""
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(no_wrap=True)
        grid.add_column(no_wrap=True, width=5)
        grid.add_column(ratio=1, overflow="fold")
        grid.add_row(
            Text(self.time_format(entry.at), style=self.get_component_rich_style("gc-log--time")),
            Text(entry.tag, style=self.get_component_rich_style(f"gc-log--{entry.kind}")),
            Text(entry.text, style=self.get_component_rich_style("gc-log--muted") if entry.kind == "muted" else ""),
        )
        return grid
