"""One rule for every way of changing levels: the breaker stays above the warning level as the panel shows
them (to 0.01GB), whether typed in t or reached with - (the panel never shows both at one level)."""

from __future__ import annotations

import pytest
from textual.widgets import Input

from memtui.memory.config import MemoryConfig
from memtui.memory.units import GB
from memtui.tui.app import MemtuiApp
from memtui.tui.screens import ThresholdsScreen

from .conftest import wait_for


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_minus_and_t_refuse_the_same_levels(size, make_rig):
    rig = make_rig(domains=8, config=MemoryConfig(warning_memory_gb=0.9, max_memory_gb=1.0, reset_memory_gb=0.8))
    app = MemtuiApp(rig.runner, autostart=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        notes: list[str] = []
        app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.press("minus")  # 1.00 -> 0.90: the warning's level
        await pilot.pause()
        m = rig.runner.snapshot().memory
        assert round(m.max_bytes / GB, 2) == 1.0, "the breaker reached the warning level"
        assert notes and "must stay above the warning level" in notes[-1], notes

        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ThresholdsScreen), what="the dialog")
        dialog = app.screen
        dialog.query_one("#warning", Input).value = "0.90GB"
        dialog.query_one("#breaker", Input).value = "0.90GB"
        await pilot.press("enter")
        await pilot.pause()
        error = str(dialog.query_one(".dialog-error").render())
        assert app.screen is dialog and "must stay above the warning level" in error, error
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="the dialog to close")

        await pilot.press("plus")  # 1.10: still allowed
        await pilot.pause()
        assert round(rig.runner.snapshot().memory.max_bytes / GB, 2) == 1.1
