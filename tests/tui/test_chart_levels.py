"""The full-run chart draws each reading at its own level: every label is the value of its row, and a
reading sits on the row nearest its value (never more than half a row away), at any size."""

from __future__ import annotations

from pathlib import Path

import pytest

from memtui.memory.units import GB
from memtui.tui.chart_grid import AXIS_ROWS, BREAKER_GLYPH, LABEL_WIDTH, WARNING_GLYPH, draw

from .frozen import FrozenRun


def parse(lines: list[str]) -> tuple[float, dict[int, float], list[tuple[int, int]]]:
    """(step per row read from the labels, row -> label, (row, column) of every RSS dot). Row 0 is the top."""
    plot = lines[:-AXIS_ROWS]
    labels = {i: float(line[: LABEL_WIDTH - 1]) for i, line in enumerate(plot) if line[: LABEL_WIDTH - 1].strip()}
    bottom = len(plot) - 1
    assert labels.get(bottom) == 0.0, lines  # 0 at the bottom row
    steps = {round(value / (bottom - i), 6) for i, value in labels.items() if i != bottom}
    assert len(steps) == 1, f"labels are not one step per row: {labels}"  # every label is its row's value
    dots = [(i, x) for i, line in enumerate(plot) for x, ch in enumerate(line) if 0x2800 < ord(ch) <= 0x28FF]
    return steps.pop(), labels, dots


def row_value(step: float, rows: int, row: int) -> float:
    return (rows - 1 - row) * step


@pytest.mark.parametrize("size", [(74, 6), (54, 6), (54, 12), (114, 20), (30, 4)])
@pytest.mark.parametrize("reading_gb", [0.05, 0.58, 0.61, 0.95, 1.2, 1.49, 1.7])
@pytest.mark.parametrize("levels_gb", [(1.0, 1.5), (0.9, 1.0), (0.5, 0.78), (0.6, 0.61)])
def test_a_steady_reading_sits_on_the_row_of_its_value(size, reading_gb, levels_gb):
    width, height = size
    warning, breaker = (int(v * GB) for v in levels_gb)
    points = [(1000.0 + t, int(reading_gb * GB)) for t in range(30)]
    drawing = draw(points, 1030.0, warning, breaker, width, height)
    lines = ["".join(chunk for chunk, _ in line) for line in drawing.lines]
    assert all(len(line) <= width for line in lines), lines
    step, _labels, dots = parse(lines)
    rows = height - AXIS_ROWS
    assert dots, lines
    for row, _x in dots:
        assert abs(row_value(step, rows, row) - reading_gb) <= step / 2 + 1e-9, (reading_gb, lines)
    # Each level's line sits on the row nearest its value; the breaker's wins a shared row.
    for glyph, level in ((BREAKER_GLYPH, levels_gb[1]), (WARNING_GLYPH, levels_gb[0])):
        rows_with = {i for i, line in enumerate(lines[:rows]) if glyph in line}
        if glyph == WARNING_GLYPH and drawing.shared_row:
            assert not rows_with, lines
            continue
        assert len(rows_with) <= 1, lines
        for row in rows_with:
            assert abs(row_value(step, rows, row) - level) <= step / 2 + 1e-9, (level, lines)


def test_a_rising_run_draws_every_reading_near_its_level():
    points = [(1000.0 + t, int((0.3 + t / 100) * GB)) for t in range(120)]
    drawing = draw(points, 1120.0, int(1.0 * GB), int(1.5 * GB), 74, 10)
    lines = ["".join(chunk for chunk, _ in line) for line in drawing.lines]
    step, _labels, dots = parse(lines)
    rows = 10 - AXIS_ROWS
    # The newest column holds the newest reading (1.49GB): its dot is on the 1.50 row.
    newest = max(x for _, x in dots)
    assert {row_value(step, rows, r) for r, x in dots if x == newest} == {1.5}, lines
    oldest = min(x for _, x in dots)
    assert {row_value(step, rows, r) for r, x in dots if x == oldest} == {0.25}, lines


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_the_dashboards_chart_draws_the_runs_rss_on_its_row(size, tmp_path: Path, monkeypatch):
    """At 80x24 and 60x20 (g): the chart's newest dot is on the row of the RSS the memory panel shows."""
    monkeypatch.chdir(tmp_path)
    run = FrozenRun(tmp_path, hold_at=24)
    try:
        app = run.app()
        async with app.run_test(size=size) as pilot:
            for _ in range(500):
                if run.held:
                    break
                await pilot.pause(0.02)
            await pilot.press("g")
            app.tick(force_chart=True)
            await pilot.pause()
            chart = app.dashboard.chart
            assert chart.display and chart.drawing is not None
            lines = chart.render().plain.splitlines()
            assert len(lines) == chart.content_size.height
            step, _labels, dots = parse(lines)
            rows = len(lines) - AXIS_ROWS
            rss_gb = app.dashboard.snapshot.memory.rss_bytes / GB
            newest = max(x for _, x in dots)
            for row, x in dots:
                if x == newest:
                    assert abs(row_value(step, rows, row) - rss_gb) <= step / 2, (rss_gb, lines)
            breaker_rows = [i for i, line in enumerate(lines[:rows]) if BREAKER_GLYPH in line]
            assert [row_value(step, rows, i) for i in breaker_rows] == [1.5], lines
            await pilot.press("q", "y")
    finally:
        run.release()
