"""The whole run's RSS as a chart, with the warning and breaker levels drawn as lines.

The cells come from memtui.tui.chart_grid (each row is one value, a reading sits
on its own row); this widget only styles them, from theme variables through its
component classes, and redraws at most once a second, and only while on screen.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual.widget import Widget

from memtui.memory.units import GB
from memtui.tui.chart_grid import BREAKER_GLYPH, WARNING_GLYPH, Drawing, draw

_REDRAW_EVERY_S = 1.0


class MemoryChart(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "memory-chart--rss",
        "memory-chart--warning",
        "memory-chart--breaker",
        "memory-chart--axis",
        "memory-chart--label",
    }

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._points: Sequence[tuple[float, int]] = ()
        self._now = 0.0
        self._levels = (0, 0)
        self._drawn_at = float("-inf")
        self._dirty = False
        self.drawing: Drawing | None = None  # the last one drawn (tests read its scale)

    def on_mount(self) -> None:
        self.border_title = "Memory chart"

    def show(
        self,
        points: Sequence[tuple[float, int]],
        now: float,
        warning_bytes: int,
        max_bytes: int,
        *,
        force: bool = False,
    ) -> None:
        self._points, self._now, self._levels = points, now, (warning_bytes, max_bytes)
        self._dirty = True
        if not self.display or not self.is_mounted:
            return
        if force or time.monotonic() - self._drawn_at >= _REDRAW_EVERY_S:
            self._redraw()

    def on_show(self) -> None:
        if self._dirty:
            self._redraw()

    def on_resize(self) -> None:
        self._redraw()

    def _redraw(self) -> None:
        self._drawn_at = time.monotonic()
        self._dirty = False
        warning, breaker = self._levels
        width, height = self.content_size
        self.drawing = draw(list(self._points), self._now, warning, breaker, width, height)
        # The units go in the border, so every row inside is plot.
        self.border_title = f"Memory chart · GB · {'minutes' if self.drawing.minutes else 'seconds'} ago"
        shared = " (one row)" if self.drawing.shared_row else ""
        self.border_subtitle = (
            f"[$primary]⣿[/] RSS  [$warning]{WARNING_GLYPH}[/] warning {warning / GB:.2f}  "
            f"[$error]{BREAKER_GLYPH}[/] breaker {breaker / GB:.2f}{shared}"
        )
        self.refresh()

    def render(self) -> Text:
        drawing = self.drawing
        text = Text(no_wrap=True, overflow="crop")
        if drawing is None:
            return text
        styles = {role: self.get_component_rich_style(f"memory-chart--{role}") for role in ("rss", "axis", "label")}
        styles["warning"] = self.get_component_rich_style("memory-chart--warning")
        styles["breaker"] = self.get_component_rich_style("memory-chart--breaker")
        for i, line in enumerate(drawing.lines):
            if i:
                text.append("\n")
            for chunk, role in line:
                text.append(chunk, style=styles[role])
        return text
