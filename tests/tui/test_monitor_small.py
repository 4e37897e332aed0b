"""Monitor mode at 80x24 and 60x20: ? opens its own help, the header shows a --match pattern as typed,
the footer keeps every key (no palette hint cut into it below 80 columns)."""

from __future__ import annotations

import pytest

from memtui.jobs.monitor.targets import Selection
from memtui.tui.monitor_app import MONITOR_PANELS, MonitorApp
from memtui.tui.screens.help import HelpScreen

from .conftest import screen_lines, wait_for
from .test_monitor_app import child, engine_for  # noqa: F401 - the fixture

PATTERN = r"grow\.py"


def test_the_pattern_reads_as_typed():
    assert Selection(match=PATTERN, all_users=True).describe() == "command line matching 'grow\\.py'"


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_monitor_help_and_footer(size, child):  # noqa: F811
    app = MonitorApp(engine_for(child, selection=f"command line matching '{PATTERN}'"))
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: app.last is not None, what="the first poll")
        await pilot.pause()
        lines = screen_lines(app)
        assert "'grow\\.py'" in lines[0] and "\\\\" not in lines[0], lines[0]
        foot = lines[-1].rstrip()
        for key in ("q Quit", "o Sort", "/ Filter"):
            assert key in foot, foot
        assert ("palette" in foot) == (size[0] >= 80), foot
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
        keys = [k for k, _ in app.screen.key_rows()]
        assert {"s", "r", "k", "t", "q  ^c", "o", "/", "?"} <= set(keys), keys
        texts = [str(static.render()) for static in app.screen.query(".help-grid Static")]
        assert MONITOR_PANELS[1][0] in texts and "Memory" not in texts, texts  # the monitor's parts
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, HelpScreen), what="the help to close")
        await pilot.press("q")
