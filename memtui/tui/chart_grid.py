"""The memory chart as rows of cells: every row is one value, and a reading sits on the row of its value.

A plotting library maps values to rows with its own rounding and puts tick labels
on the rows nearest to them, so a label and the row it sits on can disagree by
more than a row (0.58GB drawn on the row labelled 1.00). Here the scale is chosen
first: a round step per row (0.05, 0.1, 0.25, 0.5 GB ...), row ``k`` from the
bottom *is* ``k * step``, a reading goes to the row nearest its value (so it is
never more than half a row from its label), and within that row a braille dot
shows which quarter. A level (warning, breaker) is a line on the row nearest to it,
drawn with its own glyph (warning ``┄``, breaker ``━``) so the two read apart
without colour; two levels on one row draw the breaker's line, and the legend
says so. Pure: no widgets, so the rule is tested on its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from memtui.memory.units import GB

#: Rows of the drawing that are not plot: the x axis and its labels.
AXIS_ROWS = 2
#: Width of the value labels left of the axis ("1.50").
LABEL_WIDTH = 5
#: Each row's value is a multiple of one of these (GB), the smallest that fits the rows.
STEPS_GB = (0.01, 0.02, 0.025, 0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 20.0, 25.0, 50.0, 100.0)
WARNING_GLYPH = "┄"
BREAKER_GLYPH = "━"
#: Braille dots, by column (0 left, 1 right) and quarter of the row (0 bottom .. 3 top).
_DOTS = ((0x40, 0x04, 0x02, 0x01), (0x80, 0x20, 0x10, 0x08))

#: A run of text and its role ("rss", "warning", "breaker", "axis", "label"): the widget styles roles.
Segment = tuple[str, str]


@dataclass(frozen=True)
class Scale:
    """Rows of the plot and the value of each: row ``k`` (0 at the bottom) is ``k * step_gb``."""

    rows: int
    step_gb: float

    def value(self, row: int) -> float:
        return row * self.step_gb

    def row_of(self, gb: float) -> int:
        """The row whose value is nearest ``gb`` (clamped to the plot)."""
        return min(self.rows - 1, max(0, round(gb / self.step_gb)))

    def quarter_of(self, gb: float) -> int:
        """Which quarter of its row ``gb`` falls in (0 bottom .. 3 top)."""
        offset = gb / self.step_gb - self.row_of(gb) + 0.5  # 0..1 within the row's band
        return min(3, max(0, int(offset * 4)))


def choose_scale(rows: int, highest_gb: float) -> Scale:
    """The smallest round step whose top row still holds ``highest_gb`` (within half a row)."""
    rows = max(1, rows)
    for step in STEPS_GB:
        if (rows - 0.5) * step > highest_gb:
            return Scale(rows, step)
    return Scale(rows, math.ceil(highest_gb / max(1, rows - 1)))


def label_rows(scale: Scale, levels: Sequence[int]) -> set[int]:
    """Rows that carry a label: 0, the top, each level's row, and every few rows between."""
    rows = {0, scale.rows - 1, *(scale.row_of(level / GB) for level in levels if level)}
    every = max(1, scale.rows // 3)
    rows.update(range(0, scale.rows, every))
    return rows


def _nice_ticks(span: float, most: int = 6) -> list[float]:
    """0 and round steps back to ``span`` (1, 2, 5, 10, 15, 30, 60 ...), at most ``most`` of them."""
    step = 3600.0
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 3600):
        if span / step <= most - 1:
            break
    count = int(span // step)
    return [i * step for i in range(count + 1)]


@dataclass(frozen=True)
class Drawing:
    lines: list[list[Segment]]
    scale: Scale
    minutes: bool  # the x axis counts minutes ago (else seconds)
    shared_row: bool  # warning and breaker fall on one row: the breaker's line is drawn


def draw(
    points: Sequence[tuple[float, int]], now: float, warning: int, breaker: int, width: int, height: int
) -> Drawing:
    """The chart in ``width`` x ``height`` cells: RSS (bytes) over time, the levels as lines."""
    plot_rows = max(1, height - AXIS_ROWS)
    plot_cols = max(1, width - LABEL_WIDTH - 1)
    highest = max([breaker / GB * 1.05, warning / GB, *(rss / GB for _, rss in points), 0.1])
    scale = choose_scale(plot_rows, highest)
    span = max(1.0, now - points[0][0]) if points else 1.0
    minutes = span > 180
    # Each cell holds two braille columns: the plot is 2 * plot_cols time slots wide, the newest at the right.
    slots = 2 * plot_cols
    cells: dict[tuple[int, int], int] = {}  # (row, col) -> braille bits
    # A reading holds until the next one (a step line: between samples the RSS last measured is drawn).
    placed = [(min(slots - 1, max(0, round((t - (now - span)) / span * (slots - 1)))), rss) for t, rss in points]
    for i, (slot, rss) in enumerate(placed):
        until = placed[i + 1][0] if i + 1 < len(placed) else slot + 1
        gb = rss / GB
        row, quarter = scale.row_of(gb), scale.quarter_of(gb)
        for s in range(slot, max(slot + 1, until)):
            key = (row, s // 2)
            cells[key] = cells.get(key, 0) | _DOTS[s % 2][quarter]
    warning_row = scale.row_of(warning / GB) if warning else None
    breaker_row = scale.row_of(breaker / GB) if breaker else None
    shared = warning_row is not None and warning_row == breaker_row
    labelled = label_rows(scale, (warning, breaker))
    lines: list[list[Segment]] = []
    for row in range(plot_rows - 1, -1, -1):
        label = f"{scale.value(row):.2f}" if row in labelled else ""
        line: list[Segment] = [(label.rjust(LABEL_WIDTH - 1) + " ", "label"), ("┤" if label else "│", "axis")]
        level = "breaker" if row == breaker_row else "warning" if row == warning_row else None
        glyph = BREAKER_GLYPH if level == "breaker" else WARNING_GLYPH
        for col in range(plot_cols):
            bits = cells.get((row, col))
            if bits:
                line.append((chr(0x2800 + bits), "rss"))
            elif level:
                line.append((glyph, level))
            else:
                line.append((" ", "rss"))
        lines.append(line)
    lines.extend(_x_axis(span, minutes, plot_cols))
    return Drawing(lines, scale, minutes, shared)


def _x_axis(span: float, minutes: bool, plot_cols: int) -> list[list[Segment]]:
    """The axis line with a tick per round time ago, and the labels under the ticks ("now" at the right)."""
    scale = 60.0 if minutes else 1.0
    axis = ["─"] * plot_cols
    labels = [" "] * (plot_cols + LABEL_WIDTH + 1)
    for ago in _nice_ticks(span / scale):
        col = plot_cols - 1 - round(ago * scale / span * (plot_cols - 1))
        if col < 0:
            continue
        axis[col] = "┬"
        text = "now" if ago == 0 else f"-{ago:g}"
        end = LABEL_WIDTH + 1 + col + 1  # the label ends under its tick
        start = max(0, end - len(text))
        if all(c == " " for c in labels[max(0, start - 1) : end]):
            labels[start:end] = list(text)
    return [
        [(" " * (LABEL_WIDTH - 1) + " ", "label"), ("└" + "".join(axis), "axis")],
        [("".join(labels).rstrip(), "label")],
    ]
