"""An open breaker is actionable at 80x24: what it waits for, when it gives up, why + cannot help,
the reset level in the t dialog, and the floor and flag when memtui ends the run on it."""

from __future__ import annotations

import re

from textual.widgets import Input

from memtui.memory.breaker import BreakerState
from memtui.memory.config import MemoryConfig
from memtui.tui.app import MemtuiApp
from memtui.tui.screens import ThresholdsScreen
from memtui.tui.widgets import BreakerPanel, ReportBanner
from memtui.tui.widgets.breaker_panel import clock

from .conftest import wait_for
from .test_keys import log_lines, quit_and_confirm


async def _trip(app: MemtuiApp, pilot, rig) -> None:
    """Levels far below this process's RSS, through the t dialog: the breaker opens and stays open."""
    await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
    await pilot.press("t")
    await wait_for(pilot, lambda: isinstance(app.screen, ThresholdsScreen), what="the dialog")
    inputs = [i.id for i in app.screen.query(Input)]
    assert inputs == ["warning", "breaker", "reset"], "three levels, in this order"
    app.screen.query_one("#warning", Input).value = "0.01GB"
    app.screen.query_one("#breaker", Input).value = "30MB"
    await pilot.press("enter")
    await wait_for(pilot, lambda: rig.runner.snapshot().memory.state is BreakerState.OPEN, what="the breaker to open")


async def test_an_open_breaker_says_what_it_waits_for_when_it_gives_up_and_why_plus_cannot_help(make_rig):
    rig = make_rig(domains=30, delay_s=0.03, config=MemoryConfig(breaker_timeout_s=300.0))
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await _trip(app, pilot, rig)
        await wait_for(pilot, lambda: rig.runner.snapshot().breaker_gives_up_in_s is not None, what="the wait")
        await pilot.pause(0.3)
        text = str(app.dashboard.query_one(BreakerPanel).render())
        assert "OPEN" in text and re.search(r"gives up in [45]:\d\d", text) and "waits for <0.01GB" in text, text
        notes: list[str] = []
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.press("plus")
        assert notes and "stays open until memory" in notes[-1] and "reset level" in notes[-1]
        await quit_and_confirm(app, pilot)


async def test_ending_on_memtuis_floor_names_the_floor_and_the_flag_on_screen_log_and_report(make_rig):
    fast = MemoryConfig(backoff_initial_s=0.01, backoff_max_s=0.05, breaker_timeout_s=300.0)
    rig = make_rig(domains=30, delay_s=0.03, config=fast)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await _trip(app, pilot, rig)
        await wait_for(pilot, lambda: app.report is not None, what="the run to end on the floor")
        await pilot.pause(0.3)
        report = app.report
        assert report.memory_floor_gb is not None and "--max-memory" in report.reason
        panel = str(app.dashboard.query_one(BreakerPanel).render())
        assert f"floor {report.memory_floor_gb:.2f}GB" in panel and "--max-memory" in panel, panel
        banner = app.dashboard.query_one(ReportBanner)
        assert "above the reset level" in str(banner.border_title)
        assert report.summary_lines()[1].startswith("Why: Memory cannot get below the reset level")
        assert any("--max-memory" in line for line in log_lines(app))
        await pilot.press("q")


def test_the_countdown_reads_m_ss_rounded_up():
    assert [clock(s) for s in (299.2, 60.0, 59.01, 0.0)] == ["5:00", "1:00", "1:00", "0:00"]
