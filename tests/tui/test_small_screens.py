"""What each state needs is on screen or one named key away at 60x20 and 80x24, and l says the truth.

At 60x20 the log, the finished run's report and a cluster's workers would sit below the fold: the report
takes the memory panel's place by itself once the run is over; l brings the log (and the workers) there
and says so in the footer ("l Log", then "l Memory"). The help lists l once.
"""

from __future__ import annotations

import pytest
from textual.widget import Widget

from memtui.tui.app import MemtuiApp
from memtui.tui.screens.help import HelpScreen
from memtui.tui.widgets import GcLog, MemoryPanel, ReportBanner

from .conftest import screen_lines, wait_for


def fully_on_screen(widget: Widget, size: tuple[int, int]) -> bool:
    """Displayed, between the header and the footer, with at least three rows of its own."""
    region = widget.region
    return widget.display and region.height >= 3 and region.y >= 1 and region.bottom <= size[1] - 1


def footer(app) -> str:
    return screen_lines(app)[-1]


async def test_at_60x20_l_brings_the_log_on_screen_and_back(make_rig):
    size = (60, 20)
    rig = make_rig(domains=6)
    app = MemtuiApp(rig.runner, autostart=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        dash = app.dashboard
        log = dash.query_one(GcLog)
        assert not fully_on_screen(log, size), "the premise: the log is below the fold at 60x20"
        assert "l Log" in footer(app), footer(app)
        await pilot.press("l")
        await wait_for(pilot, lambda: fully_on_screen(log, size), what="the log on screen")
        assert not dash.query_one(MemoryPanel).display
        assert "l Memory" in footer(app), footer(app)
        assert "q Quit" in footer(app), footer(app)
        await pilot.press("l")
        await wait_for(pilot, lambda: dash.query_one(MemoryPanel).display, what="the memory panel back")
        assert "l Log" in footer(app)


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_the_finished_runs_report_is_on_screen_and_l_flips_to_the_log(size, make_rig):
    rig = make_rig(domains=4, per_domain=2)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.report is not None, what="the run to finish")
        await pilot.pause()
        dash = app.dashboard
        banner, log = dash.query_one(ReportBanner), dash.query_one(GcLog)
        await wait_for(pilot, lambda: fully_on_screen(banner, size), what="the report on screen")
        assert "responses" in " ".join(screen_lines(app))  # the summary's lines, not only its title
        assert "l Log" in footer(app), footer(app)
        await pilot.press("l")
        await wait_for(pilot, lambda: fully_on_screen(log, size), what="the log on screen")
        assert "l Report" in footer(app), footer(app)
        await pilot.press("l")
        await wait_for(pilot, lambda: fully_on_screen(banner, size), what="the report again")


async def test_at_80x24_l_during_the_run_says_the_log_is_on_screen_and_it_is(make_rig):
    size = (80, 24)
    rig = make_rig(domains=6)
    app = MemtuiApp(rig.runner, autostart=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        await pilot.press("l")
        await pilot.pause()
        said = [n.message for n in app._notifications]
        assert said and said[-1].startswith("The log is on screen"), said
        assert fully_on_screen(app.dashboard.query_one(GcLog), size)
        # With the chart on, the log is not on screen: l brings it back instead of claiming it is there.
        await pilot.press("g")
        await pilot.pause()
        assert not app.dashboard.query_one(GcLog).display
        assert "l Log" in footer(app), footer(app)
        await pilot.press("l")
        await wait_for(pilot, lambda: fully_on_screen(app.dashboard.query_one(GcLog), size), what="the log back")


async def test_the_help_lists_l_once(make_rig):
    rig = make_rig(domains=4)
    app = MemtuiApp(rig.runner, autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        rows = app.screen.key_rows()
        assert [keys for keys, _ in rows].count("l") == 1, rows
        (text,) = [text for keys, text in rows if keys == "l"]
        assert [line.partition(":")[0] for line in text.splitlines()] == [
            "Show the log",
            "Show the run report",
            "Show the memory panel",
        ]


async def test_at_60x20_l_brings_a_clusters_workers_on_screen_with_the_log(tmp_path, monkeypatch):
    from dataclasses import replace

    from memtui.tui.widgets.workers_panel import WorkersPanel

    from .frozen import FrozenRun
    from .test_workers_panel import TWO

    size = (60, 20)
    monkeypatch.chdir(tmp_path)
    run = FrozenRun(tmp_path, hold_at=24)
    real = run.runner.snapshot
    run.runner.snapshot = lambda: replace(real(), workers=TWO)  # type: ignore[method-assign]
    try:
        app = run.app()
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: run.held and bool(app.dashboard.query(WorkersPanel)), what="the workers")
            panel = app.dashboard.query_one(WorkersPanel)
            assert not fully_on_screen(panel, size), "the premise: below the fold"
            await pilot.press("l")
            await wait_for(pilot, lambda: fully_on_screen(panel, size), what="the workers on screen")
            assert fully_on_screen(app.dashboard.query_one(GcLog), size)
            await pilot.press("q", "y")
    finally:
        run.release()
