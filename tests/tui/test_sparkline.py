"""The sparkline marks both levels, in their own colors, wherever they fall: in one row the breaker's line
crosses it (legible without colour) and a gutter at the right edge shows both, the warning lower, even when
the columns cover their row. (The full-run chart: test_chart_levels.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console
from textual.app import App, ComposeResult

from memtui.memory.units import GB
from memtui.tui.widgets.memory_sparkline import GUTTER, MemorySparkline

from .frozen import FrozenRun

_SCAN = "⎽⎼⎻⎺"
WARNING, BREAKER = int(1.0 * GB), int(1.5 * GB)  # the defaults: both in the top row of two


class OneSparkline(App):
    CSS = """
    MemorySparkline { height: 2; }
    MemorySparkline > .memory-sparkline--warning { color: yellow; }
    MemorySparkline > .memory-sparkline--critical { color: red; }
    """

    def compose(self) -> ComposeResult:
        yield MemorySparkline()


def cells(spark: MemorySparkline) -> list[list[tuple[str, str]]]:
    """The rendered rows, top first, as (character, "warning" | "breaker" | "") per cell: whose color it has."""
    whose = {
        spark.get_component_rich_style("memory-sparkline--warning").color: "warning",
        spark.get_component_rich_style("memory-sparkline--critical").color: "breaker",
    }
    rows: list[list[tuple[str, str]]] = [[]]
    for segment in Console(width=400, color_system="truecolor").render(spark.render()):
        for ch in segment.text:
            if ch == "\n":
                rows.append([])
            else:
                rows[-1].append((ch, whose.get(segment.style.color if segment.style else None, "")))
    return [row for row in rows if row]


def level_marks(row: list[tuple[str, str]]) -> dict[str, set[str]]:
    """ "warning" / "breaker" -> the scan lines drawn in its color."""
    found: dict[str, set[str]] = {}
    for ch, who in row:
        if ch in _SCAN and who:
            found.setdefault(who, set()).add(ch)
    return found


@pytest.mark.parametrize("width", [12, 26, 40, 58, 76, 118])
async def test_both_levels_show_when_they_share_a_row_legible_without_colour(width):
    app = OneSparkline()
    async with app.run_test(size=(width, 4)) as pilot:
        spark = app.query_one(MemorySparkline)
        spark.show([int(0.4 * GB)] * 300, WARNING, BREAKER)  # low: the top row is empty
        await pilot.pause()
        top = cells(spark)[0]
        assert len(top) == width
        marks = level_marks(top)
        assert set(marks) == {"warning", "breaker"}, top
        (warning,), (breaker,) = marks["warning"], marks["breaker"]
        assert _SCAN.index(warning) < _SCAN.index(breaker), "the warning is drawn below the breaker"
        # Without colour: one line across the row (the breaker's, not two alternating), the gutter both.
        body = "".join(ch for ch, _ in top[:-GUTTER]) if width > 2 * GUTTER else "".join(ch for ch, _ in top)
        assert set(body) == {breaker}, body
        if width > 2 * GUTTER:
            assert "".join(ch for ch, _ in top[-GUTTER:]) == warning + breaker

        spark.show([int(1.6 * GB)] * 300, WARNING, BREAKER)  # above both: the columns cover the row
        await pilot.pause()
        top = cells(spark)[0]
        assert [who for _, who in top[-GUTTER:]] == ["warning", "breaker"], top
        assert [ch for ch, _ in top[-GUTTER:]] == [warning, breaker]
        assert not any(ch in _SCAN for ch, _ in top[:-GUTTER]), "the columns cover the row"


@pytest.mark.parametrize("rows", [1, 2, 3, 4])
async def test_levels_closer_than_a_scan_line_still_show_both_in_order(rows):
    app = OneSparkline()
    async with app.run_test(size=(30, rows + 2)) as pilot:
        spark = app.query_one(MemorySparkline)
        spark.styles.height = rows
        spark.show([int(0.1 * GB)] * 30, int(1.42 * GB), int(1.45 * GB))  # the same quarter of a row
        await pilot.pause()
        warning, breaker = spark.marks(rows)
        assert warning.row == breaker.row and _SCAN.index(warning.glyph) < _SCAN.index(breaker.glyph)
        row = cells(spark)[rows - 1 - breaker.row]
        assert level_marks(row) == {"warning": {warning.glyph}, "breaker": {breaker.glyph}}, row
        assert "".join(ch for ch, _ in row[-GUTTER:]) == warning.glyph + breaker.glyph


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (60, 20)])
async def test_the_dashboard_sparkline_shows_both_levels(size, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run = FrozenRun(tmp_path, hold_at=24)  # warning 1.0GB, breaker 1.5GB; RSS in the warning zone
    try:
        app = run.app()
        async with app.run_test(size=size) as pilot:
            for _ in range(500):
                if run.held:
                    break
                await pilot.pause(0.02)
            app.tick()
            await pilot.pause()
            spark = app.dashboard.query_one(MemorySparkline)
            gutter = [cell for row in cells(spark) for cell in row[-GUTTER:] if cell[0] in _SCAN]
            assert sorted(who for _, who in gutter) == ["breaker", "warning"], gutter
            await pilot.press("q", "y")
    finally:
        run.release()
