"""RSS history as a multi-row sparkline, topped at the breaker level and colored by zone.

Textual's Sparkline scales to the data's own min..max, which turns 2 MB of
noise into a cliff. Here the top is the breaker level (or the peak, if higher),
so a full column means "at the breaker", and each column takes the color of its
zone: normal, warning, over the breaker. The bottom is a round 0.1 GB step
under the lowest sample rather than zero, so a job swinging between 0.5 and
0.9 GB shows its swings instead of a flat block; ``scale`` says what the
bottom and top are, and the memory panel prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from memtui.memory.units import GB

_BLOCKS = " ▁▂▃▄▅▆▇█"


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
        values = samples.values
        top = max(samples.max, max(values, default=0), 1)
        step = GB // 10
        floor = max(0, (min(values, default=0) // step - 1) * step)
        self.scale = (min(floor, top - step), top)

    def columns(self, width: int) -> list[int]:
        """One value per column: the peak of each slice (a spike must survive downsampling)."""
        values = self.samples.values
        if width <= 0 or not values:
            return []
        if len(values) <= width:
            return list(values)
        step = len(values) / width
        return [max(values[int(i * step):max(int((i + 1) * step), int(i * step) + 1)]) for i in range(width)]

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
        text = Text(no_wrap=True, overflow="crop")
        for row in range(rows - 1, -1, -1):
            text.append(" " * pad, style=empty)
            for h, zone in zip(heights, zones):
                level = min(8, max(0, h - row * 8))
                # Keep a floor row visible, so a tiny RSS still draws a line rather than nothing.
                ch = _BLOCKS[level] if level or row else "▁"
                text.append(ch, style=styles[zone])
            if row:
                text.append("\n")
        return text

    def _zone(self, value: int) -> str:
        if value >= self.samples.max:
            return "critical"
        if value >= self.samples.warning:
            return "warning"
        return "normal"
