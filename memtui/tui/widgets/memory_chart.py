"""The whole run's RSS as a plotext chart, with the warning and breaker levels drawn as lines.

Line colors are read from the current theme's variables (never hard-coded), and
the plot is rebuilt at most once a second, and only while it is on screen.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from textual.color import Color
from textual_plotext import PlotextPlot

from memtui.memory.units import GB

_REDRAW_EVERY_S = 1.0
#: Rows of the widget that are not plot: the frame's top, its bottom (with the x ticks), the x labels.
_AXIS_ROWS = 3


def _plotext_color(value: str | None) -> tuple[int, int, int] | str:
    """A theme variable's value as a plotext color: an RGB triple, or a name for ANSI themes."""
    if not value:
        return "default"
    if value.startswith("ansi_"):
        name = value.removeprefix("ansi_")
        bright = name.startswith("bright_")
        name = name.removeprefix("bright_")
        if name in ("default",):
            return "default"
        return f"{name}+" if bright else name
    try:
        return Color.parse(value).rgb
    except Exception:
        return "default"


def _nice_ticks(span: float, most: int = 6) -> list[float]:
    """0 and round steps back to ``span`` (1, 2, 5, 10, 15, 30, 60 ...), at most ``most`` of them."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 3600):
        if span / step <= most - 1:
            break
    count = int(span // step)
    return [i * step for i in range(count + 1)]


class MemoryChart(PlotextPlot):
    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._points: Sequence[tuple[float, int]] = ()
        self._now = 0.0
        self._levels = (0, 0)
        self._drawn_at = float("-inf")
        self._dirty = False

    def on_mount(self) -> None:
        super().on_mount()
        self.border_title = "Memory chart"
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._redraw())

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

    def _redraw(self) -> None:
        self._drawn_at = time.monotonic()
        self._dirty = False
        variables = self.app.theme_variables
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        warning, breaker = self._levels
        points = list(self._points)
        span = (self._now - points[0][0]) if points else 0.0
        minutes = span > 180
        scale = 60.0 if minutes else 1.0
        xs = [(t - self._now) / scale for t, _ in points]
        ys = [rss / GB for _, rss in points]
        top = max([breaker / GB * 1.1, *ys]) if breaker else max(ys or [1.0])
        plt.ylim(0, top)
        # Ticks at the levels that matter, so each threshold line sits on its own label. Levels closer
        # than a row would share one (the breaker's line and label hiding the warning's): the warning's
        # line goes a row lower, still labelled with its own value.
        at = {level: level / GB for level in (warning, breaker) if level}
        row_gb = top / max(1, self.content_size.height - _AXIS_ROWS - 1)
        if warning and breaker and (breaker - warning) / GB < row_gb:
            at[warning] = max(0.0, breaker / GB - row_gb)
        ticks = [0.0, *at.values()]
        plt.yticks(ticks, ["0.00", *(f"{level / GB:.2f}" for level in at)])
        if xs:
            left = min(xs[0], -1 / scale)
            plt.xlim(left, 0)
            ticks = _nice_ticks(-left)
            plt.xticks([-t for t in ticks], [f"-{t:g}" if t else "now" for t in ticks])
            plt.plot(xs, ys, color=_plotext_color(variables.get("primary")), marker="braille")
        if warning:
            plt.hline(at[warning], _plotext_color(variables.get("warning")))
        if breaker:
            plt.hline(at[breaker], _plotext_color(variables.get("error")))
        # The units go in the border, so every row inside is plot.
        self.border_title = f"Memory chart · {'minutes' if minutes else 'seconds'} ago"
        self.border_subtitle = (
            f"[$primary]━[/] RSS GB  [$warning]━[/] warning {warning / GB:.2f}  [$error]━[/] breaker {breaker / GB:.2f}"
        )
        self.refresh()
