"""RSS history as a multi-row sparkline on a fixed scale, with the warning and breaker levels marked.

Textual's Sparkline scales to the data's own min..max, which turns 2 MB of
noise into a cliff and draws the same RSS at different heights as the data
moves. Here the scale is fixed by the levels alone: 0 at the bottom, a little
above the breaker (``HEADROOM``, rounded up to 0.1 GB) at the top, so a height
always means the same memory and a column that reaches the breaker's mark is
at the breaker. The warning and breaker levels are drawn as scan lines
(⎽⎼⎻⎺) in their colors across the empty cells of the row they fall in; each
column takes the color of its zone. ``scale`` says what the bottom and top are,
and the memory panel prints it.
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
        cols = self.columns(width)
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
        pad = width - len(cols)
        heights = [min(rows * 8, max(0, round((v - floor) / span * rows * 8))) for v in cols]
        zones = [self._zone(v) for v in cols]
        marks = self.marks(rows)
        text = Text(no_wrap=True, overflow="crop")
        for row in range(rows - 1, -1, -1):
            mark = marks.get(row)
            for _ in range(pad):
                text.append(*(mark if mark else (" ", empty)))
            for h, zone in zip(heights, zones):
                level = min(8, max(0, h - row * 8))
                if level == 0 and mark is not None:
                    text.append(mark[0], style=mark[1])  # the level's line shows where no column covers it
                    continue
                # Keep a floor row visible, so a tiny RSS still draws a line rather than nothing.
                ch = _BLOCKS[level] if level or row else "▁"
                text.append(ch, style=styles[zone])
            if row:
                text.append("\n")
        return text

    def marks(self, rows: int) -> dict[int, tuple[str, Style]]:
        """Row -> (scan line, style) for the warning and breaker levels (the breaker wins a shared row)."""
        floor, top = self.scale
        span = max(1, top - floor)
        out: dict[int, tuple[str, Style]] = {}
        for level, component in (
            (self.samples.warning, "memory-sparkline--warning"),
            (self.samples.max, "memory-sparkline--critical"),
        ):
            pos = (level - floor) / span * rows  # in rows from the bottom
            if not 0 <= pos <= rows:
                continue
            row = min(rows - 1, int(pos))
            within = pos - row  # 0..1 inside the row
            out[row] = (_SCAN[min(3, int(within * 4))], self.get_component_rich_style(component))
        return out

    def _zone(self, value: int) -> str:
        if value >= self.samples.max:
            return "critical"
        if value >= self.samples.warning:
            return "warning"
        return "normal"
