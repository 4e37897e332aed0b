"""What is logged before the TUI starts reaches its GC log, and a warning stays on screen until dismissed (x),
at 80x24 and 60x20; a headless run still prints the warnings as before."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from memtui import cli, early_log
from memtui.early_log import EarlyLine
from memtui.errors import RuntimeFailure
from memtui.tui.app import MemtuiApp
from memtui.tui.widgets.alert_bar import AlertBar

from .conftest import screen_lines, wait_for

ABOVE = (
    "⚠️ --max-memory 2.00GB is above the memory limit 1.50GB (cgroup): "
    "the kernel will kill memtui before its breaker acts; lower it"
)
THRESHOLDS = "📏 Thresholds: warning 1.00GB (default), breaker 2.00GB (--max-memory)"


def test_the_setup_lines_are_kept_and_warnings_still_printed(capsys):
    early_log.install()
    try:
        log = logging.getLogger("memtui")
        log.warning(ABOVE)
        log.info(THRESHOLDS)
        lines = early_log.take()
        log.warning("after the face took over")  # not kept any more
    finally:
        early_log.remove()
    assert [(line.level, line.text) for line in lines] == [(logging.WARNING, ABOVE), (logging.INFO, THRESHOLDS)]
    assert [line.weighty for line in lines] == [True, False]
    assert ABOVE in capsys.readouterr().err  # as the last-resort handler printed it, before the screen
    assert early_log.take() == []


def test_the_cli_hands_the_setup_warnings_to_the_tui(tmp_path: Path, monkeypatch):
    """The real CLI: a --max-memory above the machine's limit; the TUI gets that line before it starts."""
    seen: list[EarlyLine] = []

    def fake_run_tui(engine, *, theme=None, early=(), keymap=None):
        seen.extend(early)
        raise RuntimeFailure("the TUI was reached")

    monkeypatch.setattr("memtui.faces.tui.run_tui", fake_run_tui)
    code = cli.main(
        ["run", "--mode", "cache", "--cache", str(tmp_path / "c.sqlite"), "--limit", "1", "--tui"]
        + ["--max-memory", "100000GB", "--warning-memory", "1GB"]
    )
    assert code == 1
    texts = [line.text for line in seen]
    assert any("is above the memory limit" in text and "--max-memory" in text for text in texts), texts
    assert any(text.startswith("📏 Thresholds") for text in texts), texts


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_the_gc_log_has_every_setup_line_and_the_warning_stays_until_x(size, make_rig):
    rig = make_rig(domains=4, per_domain=2)
    now = time.time() - 5
    early = [EarlyLine(now, logging.WARNING, ABOVE), EarlyLine(now + 1, logging.INFO, THRESHOLDS)]
    app = MemtuiApp(rig.runner, early=early, autostart=False)
    async with app.run_test(size=size) as pilot:
        await pilot.pause()
        lines = app.dashboard.gc_log.lines_text()
        assert lines[0].startswith("WARN --max-memory 2.00GB is above the memory limit"), lines
        assert lines[1].startswith("NOTE Thresholds: warning 1.00GB"), lines
        bar = app.dashboard.query_one(AlertBar)
        for _ in range(8):  # polls go by: the warning stays (no toast timing out)
            app.tick()
            await pilot.pause(0.05)
        assert bar.display and bar.region.height >= 3
        assert bar.region.y + bar.region.height <= size[1]  # on screen, under the header
        shown = "\n".join(screen_lines(app))
        squashed = "".join(shown.replace("┃", "").split())  # the bar's text, unwrapped
        assert "isabovethememorylimit1.50GB(cgroup):thekernelwillkillmemtuibeforeitsbreakeracts" in squashed, shown
        assert "Thresholds" not in str(bar.render())  # only the warnings stay; the rest is in the log
        await pilot.press("x")
        await wait_for(pilot, lambda: not bar.display, what="x dismisses the warning")
        assert len(app.dashboard.gc_log.lines_text()) >= 2  # still in the log
