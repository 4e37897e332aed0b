"""RSS history as a multi-row sparkline on a fixed scale, with the warning and breaker levels marked.

Textual's Sparkline scales to the data's own min..max, which turns 2 MB of
noise into a cliff and draws the same RSS at different heights as the data
moves. Here the scale is fixed by the levels alone: 0 at the bottom, a little
above the breaker (``HEADROOM``, rounded up to 0.1 GB) at the top, so a height
always means the same memory and a column that reaches the breaker's mark is
at the breaker. Each level is a scan line (⎽⎼⎻⎺, its height within the row) in
its color: across the empty cells of its row (where both share a row, the
breaker's line: alternating lines read as noise without colour), and always in a two-cell gutter
at the right edge, warning then breaker, beside the newest column, so both stay
visible when the columns cover their row. Each column takes the color of its
zone. ``scale`` says what the bottom and top are, and the memory panel prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from rich.style import Style
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from memtui.memory.units import GB

_BLOCKS = " ▁▂▃▄▅▆▇█"
#: Horizontal scan lines, low to high within a cell: where a level falls in its row.
_SCAN = "⎽⎼⎻⎺"
#: The top of the scale, as a multiple of the breaker level.
HEADROOM = 1.1
#: Cells at the right edge that always show the levels (warning, breaker); narrower widgets go without.
GUTTER = 2


class Mark(NamedTuple):
    """Where a level is drawn: its row (0 at the bottom), its scan line in that row, its style."""

    row: int
    glyph: str
    style: Style


class Samples(NamedTuple):
    values: tuple[int, ...] = ()
    warning: int = 1
    max: int = 1


class MemorySparkline(Widget):
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "memory-sparkline--normal",
        "memory-sparkline--warning",
        "memory-sparkline--critical",
        "memory-sparkline--empty",
    }

    #: What is drawn (a reactive: an unchanged minute of samples is not redrawn).
    samples: reactive[Samples] = reactive(Samples(), init=False)

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.scale: tuple[int, int] = (0, 1)  # the bytes at the bottom and at the top of the columns

    def show(self, values: Sequence[int], warning_bytes: int, max_bytes: int) -> None:
        self.samples = Samples(tuple(values), warning_bytes, max_bytes)

    def watch_samples(self, samples: Samples) -> None:
        step = GB // 10
        top = max(step, -(-int(samples.max * HEADROOM) // step) * step)  # the levels alone fix the scale
        self.scale = (0, top)

    def columns(self, width: int) -> list[int]:
        """One value per column: the peak of each slice (a spike must survive downsampling)."""
        values = self.samples.values
        if width <= 0 or not values:
            return []
        if len(values) <= width:
            return list(values)
        step = len(values) / width
        return [max(values[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]) for i in range(width)]

    def render(self) -> Text:
        width, rows = self.size.width, max(1, self.size.height)
        gutter = GUTTER if width > 2 * GUTTER else 0
        cols = self.columns(width - gutter)
        styles = {
            "normal": self.get_component_rich_style("memory-sparkline--normal"),
            "warning": self.get_component_rich_style("memory-sparkline--warning"),
            "critical": self.get_component_rich_style("memory-sparkline--critical"),
        }
        empty = self.get_component_rich_style("memory-sparkline--empty")
        if not cols:
            return Text("no samples yet", style=empty, no_wrap=True)
        floor, top = self.scale
        span = max(1, top - floor)
        pad = width - gutter - len(cols)
        heights = [min(rows * 8, max(0, round((v - floor) / span * rows * 8))) for v in cols]
        zones = [self._zone(v) for v in cols]
        warning, breaker = self.marks(rows)
        text = Text(no_wrap=True, overflow="crop")
        for row in range(rows - 1, -1, -1):
            # One line per row across its empty cells: the breaker's where both levels share the row (two
            # alternating scan lines read as noise without colour); the gutter shows both, in order.
            here = next((mark for mark in (breaker, warning) if mark.row == row), None)
            for x in range(width - gutter):
                i = x - pad  # the column's sample (none in the padding before a short history)
                level = min(8, max(0, heights[i] - row * 8)) if i >= 0 else 0
                if level == 0 and here:
                    text.append(here.glyph, style=here.style)  # a level's line shows where no column covers it
                elif i < 0:
                    text.append(" ", style=empty)
                else:
                    # Keep a floor row visible, so a tiny RSS still draws a line rather than nothing.
                    text.append(_BLOCKS[level] if level or row else "▁", style=styles[zones[i]])
            if gutter:
                for mark in (warning, breaker):
                    text.append(*((mark.glyph, mark.style) if mark.row == row else (" ", empty)))
            if row:
                text.append("\n")
        return text

    def marks(self, rows: int) -> tuple[Mark, Mark]:
        """The warning's and the breaker's marks; in a shared row the warning's scan line is drawn lower."""
        floor, top = self.scale
        span = max(1, top - floor)
        placed = []
        for level in (self.samples.warning, self.samples.max):
            pos = min(float(rows), max(0.0, (level - floor) / span * rows))  # in rows from the bottom
            row = min(rows - 1, int(pos))
            placed.append((row, min(3, int((pos - row) * 4))))
        (w_row, w_at), (b_row, b_at) = placed
        if w_row == b_row and w_at >= b_at:  # one cell, two levels: keep them apart, in order
            w_at, b_at = (b_at - 1, b_at) if b_at else (0, 1)
        return (
            Mark(w_row, _SCAN[w_at], self.get_component_rich_style("memory-sparkline--warning")),
            Mark(b_row, _SCAN[b_at], self.get_component_rich_style("memory-sparkline--critical")),
        )

    def _zone(self, value: int) -> str:
        if value >= self.samples.max:
            return "critical"
        if value >= self.samples.warning:
            return "warning"
        return "normal"
