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
        # the footer is drawn after the first poll, later on a loaded machine: waited for, not assumed
        await wait_for(pilot, lambda: "q Quit" in screen_lines(app)[-1], what="the footer")
        lines = screen_lines(app)
        assert "'grow\\.py'" in lines[0] and "\\\\" not in lines[0], lines[0]
        foot = lines[-1].rstrip()
        for key in ("s Stop", "k Term", "t Thresholds", "q Quit", "o Sort", "/ Find", "? Help"):
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


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_a_monitor_viewer_names_its_run_and_keeps_d(size, child, tmp_path, monkeypatch):  # noqa: F811
    import threading

    from memtui.attach.client import RemoteEngine
    from memtui.attach.server import AttachServer
    from memtui.tui.attached import AttachedMonitorApp

    monkeypatch.setenv("MEMTUI_RUN_DIR", str(tmp_path / "runs"))
    engine = engine_for(child)
    server = AttachServer(engine, snapshot_every_s=0.2).start()
    worker = threading.Thread(target=engine.run, daemon=True)
    worker.start()
    try:
        remote = RemoteEngine(str(server.socket_path))
        app = AttachedMonitorApp(remote, poll_interval=0.05)
        async with app.run_test(size=size) as pilot:
            await wait_for(pilot, lambda: app.last is not None, what="the first frame")
            await wait_for(pilot, lambda: "d Detach" in screen_lines(app)[-1], what="d in the footer")
            lines = screen_lines(app)
            assert lines[0].lstrip().startswith(f"viewer of run {remote.run_id}"), lines[0]
            foot = lines[-1].rstrip()
            assert "q Quit" in foot and foot.endswith("d Detach"), foot
            await pilot.press("question_mark")  # still a key where the footer has no room for it
            await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="the help")
            await pilot.press("escape")
            await pilot.press("d")
    finally:
        engine.stop()
        worker.join(30)
        server.finish(engine.snapshot().report)
