"""Pilot tests on the real engine: a real Runner, CacheJob, SQLite cache and MemoryMonitor,
with a fast fake executor. Each asserts what the job really did, not just what the screen says."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

from textual.widgets import Input

from memtui.memory.breaker import BreakerState
from memtui.memory.units import GB
from memtui.tui.app import MemtuiApp
from memtui.tui.screens import BatchLimitsScreen, HelpScreen, QuitScreen, ThresholdsScreen
from memtui.tui.widgets import BreakerPanel, GcLog
from tests.support.executors import FakeExecutor

from .conftest import wait_for


def log_lines(app: MemtuiApp) -> list[str]:
    return app.dashboard.query_one(GcLog).lines_text()


async def quit_and_confirm(app: MemtuiApp, pilot) -> None:
    """q, and y if the job is still running; returns once the app has exited."""
    await pilot.press("q")
    await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen) or not app.is_running, what="quit dialog")
    if app.is_running:
        await pilot.press("y")
    await wait_for(pilot, lambda: not app.is_running, what="the app to exit")


async def test_p_stops_processing_and_resumes(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.runner.snapshot().items_done >= 20, what="a first committed batch")
        await pilot.press("p")
        await wait_for(pilot, lambda: rig.runner.snapshot().phase == "paused", what="the pause to hold")
        assert app.dashboard.check_action("resume", ()) is True and app.dashboard.check_action("pause", ()) is False
        held = rig.runner.snapshot().items_done, rig.executor.texts_encoded, rig.committed()
        await asyncio.sleep(0.5)  # ~15 sub-batches' worth of time
        await pilot.pause()
        assert (rig.runner.snapshot().items_done, rig.executor.texts_encoded, rig.committed()) == held
        assert "PAUSED" in str(app.dashboard.query_one("#header-phase").render())
        await pilot.press("space")
        await wait_for(pilot, lambda: rig.runner.snapshot().items_done > held[0], what="progress after resume")
        assert app.dashboard.check_action("pause", ()) is True
        await wait_for(pilot, lambda: app.report is not None, what="the run to finish")
        await pilot.press("q")  # the job is over: no question asked
    assert app.return_value["status"] == "success"
    assert rig.committed() == (30, 120)


async def test_c_runs_a_cleanup_that_lands_in_the_gc_log(make_rig):
    rig = make_rig(domains=20, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        cleanups_before = rig.runner.snapshot().memory.cleanups
        await pilot.press("c")
        await wait_for(pilot, lambda: any(line.startswith("GC ") for line in log_lines(app)), what="a GC line")
        line = next(line for line in log_lines(app) if line.startswith("GC "))
        assert "requested by operator" in line and "objects" in line and "->" in line and "freed" in line
        assert rig.runner.snapshot().memory.cleanups == cleanups_before + 1
        await quit_and_confirm(app, pilot)


async def test_t_changes_thresholds_and_a_breaker_below_rss_trips(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ThresholdsScreen), what="the dialog")
        rss = rig.runner.snapshot().memory.rss_bytes
        assert rss > 40 * 2**20  # a Python process with Textual loaded: far above the levels below
        app.screen.query_one("#warning", Input).value = "0.01GB"
        app.screen.query_one("#breaker", Input).value = "30MB"
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ThresholdsScreen), what="the dialog to close")
        m = rig.runner.snapshot().memory
        assert m.max_bytes == int(30 / 1024 * GB) and m.warning_bytes == int(0.01 * GB)
        assert m.state is BreakerState.OPEN
        await pilot.pause(0.3)
        panel = app.dashboard.query_one(BreakerPanel)
        assert panel.has_class("-open") and "OPEN" in str(panel.render())
        # An open breaker holds the job: batch size 0, and no batch is committed meanwhile.
        snap = rig.runner.snapshot()
        assert snap.batch_size == 0
        assert any(line.startswith("BRKR") and "OPEN" in line for line in log_lines(app))
        await quit_and_confirm(app, pilot)
    assert app.return_value["status"] == "interrupted" and app.return_value["breaker_trips"] >= 1


async def test_bad_thresholds_show_a_message_and_change_nothing(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        before = rig.runner.snapshot().memory
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ThresholdsScreen), what="the dialog")
        dialog = app.screen
        for warning, breaker, expected in (
            ("banana", "1.5", "not a memory size"),
            ("2GB", "1.5GB", "must stay above the warning level"),
            ("", "1.5", "enter a size"),
        ):
            dialog.query_one("#warning", Input).value = warning
            dialog.query_one("#breaker", Input).value = breaker
            await pilot.press("enter")
            await pilot.pause()
            assert app.screen is dialog, "a bad value must keep the dialog open"
            error = dialog.query_one(".dialog-error")
            assert error.display and expected in str(error.render()) and "nothing changed" in str(error.render())
            after = rig.runner.snapshot().memory
            assert (after.warning_bytes, after.max_bytes) == (before.warning_bytes, before.max_bytes)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="the dialog to close")
        await quit_and_confirm(app, pilot)


async def test_plus_minus_step_the_breaker(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        base = rig.runner.snapshot().memory.max_bytes
        await pilot.press("plus")
        assert rig.runner.snapshot().memory.max_bytes == int(round(base / GB + 0.1, 2) * GB)
        await pilot.press("minus", "minus")
        assert rig.runner.snapshot().memory.max_bytes == int(round(base / GB - 0.1, 2) * GB)
        for _ in range(6):  # down to the warning level: refused with a message, never crossed
            await pilot.press("minus")
        m = rig.runner.snapshot().memory
        assert m.max_bytes > m.warning_bytes
        await quit_and_confirm(app, pilot)


async def test_b_changes_batch_limits_and_refuses_bad_ones(make_rig):
    # enough domains that the job outlives the test on a loaded machine (30 ran out before "two more batches")
    rig = make_rig(domains=3000, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, BatchLimitsScreen), what="the dialog")
        dialog = app.screen
        dialog.query_one("#batch-min", Input).value = "3"
        dialog.query_one("#batch-max", Input).value = "2"
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is dialog and (rig.runner.snapshot().batch_min, rig.runner.snapshot().batch_max) == (1, 5)
        dialog.query_one("#batch-min", Input).value = "1"
        dialog.query_one("#batch-max", Input).value = "2"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="the dialog to close")
        assert (rig.runner.snapshot().batch_min, rig.runner.snapshot().batch_max) == (1, 2)
        batches = rig.runner.snapshot().batches
        await wait_for(pilot, lambda: rig.runner.snapshot().batches >= batches + 2, what="two more batches")
        assert rig.runner.snapshot().batch_size == 2
        await quit_and_confirm(app, pilot)


async def test_q_during_a_run_commits_every_finished_batch(make_rig):
    rig = make_rig(domains=40, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.runner.snapshot().batches >= 2, what="two committed batches")
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), what="the quit dialog")
        assert rig.runner.snapshot().stopping is False, "nothing stops before the operator confirms"
        said = str(app.screen.query_one(".dialog-hint").render())
        assert "stops after the sub-batch in flight and commits every vector made so far" in said
        assert app.screen.focused is not None and app.screen.focused.id == "cancel", "focus on the safe choice"
        await pilot.press("y")
        await wait_for(pilot, lambda: app.return_value is not None, what="the app to exit")
    report = app.return_value
    assert report["status"] == "interrupted" and report["exit_code"] == 130
    assert report is rig.runner.snapshot().report  # the runner's own report, as headless returns it
    domains, responses = rig.committed()
    assert domains == report["domains_done"] >= 10
    assert responses == 4 * domains  # every committed domain has all its responses
    con = sqlite3.connect(rig.cache)
    try:
        stored = con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    finally:
        con.close()
    assert report.responses_committed == stored >= responses, "the report matches the cache, partial domains too"
    assert report["unprocessed_domains"] == 40 - domains


async def test_ctrl_c_asks_like_q_and_a_second_ctrl_c_confirms(make_rig):
    # Held at its first sub-batch until it is asked to stop: a job that could end on its own ended
    # first on a loaded machine ("success", not "interrupted"), the keys still on their way.
    rig = make_rig(domains=40, executor=FakeExecutor(sub_batch=2, gate=threading.Event()))
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, rig.executor.holding.is_set, what="the job to start")
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), what="the quit dialog")
        await pilot.press("n")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="back to the dashboard")
        assert not rig.runner.snapshot().stopping
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), what="the quit dialog")
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: app.return_value is not None, what="the app to exit")
    assert app.return_value["status"] == "interrupted"
    assert rig.committed()[0] == app.return_value["domains_done"]


async def test_finished_run_keeps_the_panels_and_the_report_until_q(make_rig):
    rig = make_rig(domains=6)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.report is not None, what="the run to finish")
        await pilot.pause(0.6)
        assert app.is_running and app.return_value is None, "the app waits for q"
        banner = app.dashboard.banner
        assert banner.display and "Run success" in str(banner.render())
        assert app.dashboard.check_action("pause", ()) is False and app.dashboard.check_action("cleanup", ()) is False
        await pilot.press("l")  # short terminal: the log hides behind the report until l
        assert app.dashboard.gc_log.display and not banner.display
        assert any(line.startswith("DONE") for line in log_lines(app))
        await pilot.press("l")
        assert banner.display
        await pilot.press("q")
    assert app.return_value == rig.runner.snapshot().report and app.return_value["exit_code"] == 0


async def test_help_and_palette_list_every_action_and_theme(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner, autostart=False)  # the job is not needed to look things up
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="help closed")
        from memtui.tui.commands import MemtuiCommands

        provider = MemtuiCommands(app.screen)
        titles = [title for title, _, _ in provider._commands()]
        for needed in (
            "Pause the job",
            "Clean up memory now",
            "Change memory thresholds",
            "Change batch-size limits",
            "Theme: memtui-dark (current)",
            "Theme: memtui-light",
            "Theme: memtui-contrast",
        ):
            assert needed in titles
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"memtui-light")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.theme == "memtui-light", what="the light theme")
        await pilot.press("ctrl+p")  # a palette command runs the same action as its key
        await pilot.pause()
        await pilot.press(*"clean up memory")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("Cleanup requested" in line for line in log_lines(app)), what="cleanup")
        await quit_and_confirm(app, pilot)


async def test_a_rerun_resumes_and_says_so(make_rig, tmp_path):
    from tests.support.inputs import write_input

    first = make_rig(domains=4, input_path=write_input(tmp_path / "four.jsonl", 4, 4))
    assert first.runner.run()["status"] == "success"
    rig = make_rig(domains=8, input_path=write_input(tmp_path / "eight.jsonl", 8, 4), cache_path=first.cache)
    app = MemtuiApp(rig.runner, autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = log_lines(app)
        assert lines[0].startswith("NOTE cache mode: 8 domains") and "Resuming: 4 of 8 domains" in lines[1]
        assert "16 already cached" in str(app.dashboard.query_one("#progress").render())
        await pilot.press("q")


async def test_a_crashed_job_thread_is_reported_and_q_still_quits(make_rig):
    """Runner.run() catches everything an operator could cause; a crash past it must not trap the UI."""
    rig = make_rig(domains=4)

    def boom() -> dict:
        raise RuntimeError("worker thread died")

    app = MemtuiApp(rig.runner, autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app._worker = app.run_worker(boom, thread=True, exit_on_error=False)
        await wait_for(pilot, lambda: any(line.startswith("ERROR") for line in log_lines(app)), what="the crash")
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")


def _help_texts(app) -> list[str]:
    return [str(static.render()) for static in app.screen.query(".help-grid Static")]


async def test_help_and_palette_are_generated_from_the_bindings_so_none_is_forgotten(make_rig):
    """Every key the footer shows (and the hidden +/- and ctrl+c) has its line in the help and its palette entry."""
    from textual.binding import Binding

    from memtui.tui.commands import KeyCommands
    from memtui.tui.keys import documented, own_bindings, undocumented

    rig = make_rig(domains=6)
    app = MemtuiApp(rig.runner, autostart=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        bound = [app.dashboard, app]
        bindings = [b for node in bound for b in own_bindings(node)]
        assert undocumented(bound) == [], "a binding without a tooltip is missing from the help and the palette"
        shown = [b for b in bindings if b.show]
        assert {b.action for b in shown} >= {
            "pause",
            "resume",
            "cleanup",
            "thresholds",
            "batch_limits",
            "toggle_chart",
            "show_log",
            "show_report",
            "help",
            "request_quit",
        }
        hidden = {b.action: b for b in bindings if not b.show}
        assert {"breaker_step(1)", "breaker_step(-1)", "interrupt"} <= set(hidden)
        assert all(isinstance(b, Binding) and b.tooltip for b in shown + list(hidden.values()))

        # The help lists every one of them, with its keys as the footer shows them.
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        texts = _help_texts(app)
        for binding in bindings:
            if binding.action != "log_why":  # l's hidden answer: the help's l line is show_log's
                assert any(binding.tooltip in text for text in texts), binding
        for keys in ("p  space", "c", "+  =", "-  _", "?", "q", "^c"):
            assert keys in texts, keys
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="help closed")

        # The palette offers exactly the documented actions check_action offers now (running job: no l).
        def palette() -> set[str]:
            return {title for title, _, _ in KeyCommands(app.screen)._commands() if not title.startswith("Theme")}

        offered = {doc.title for doc in documented(bound) if doc.check()}
        assert palette() == offered
        assert {
            "Pause the job",
            "Raise the breaker level by 0.1GB",
            "Lower the breaker level by 0.1GB",
            "Help",
            "Quit",
            "Interrupt",
        } <= offered
        assert "Resume the job" not in offered and "Show the log" not in offered

        app.start_job()
        await wait_for(pilot, lambda: app.report is not None, what="the run to finish")
        await pilot.pause()
        assert palette() == {"Show the log", "Show or hide the memory chart", "Help", "Quit", "Interrupt"}
        await pilot.press("l")
        assert palette() == {"Show the run report", "Show or hide the memory chart", "Help", "Quit", "Interrupt"}
        await pilot.press("q")


async def test_the_footer_is_rebuilt_when_what_the_keys_offer_changes_not_on_every_poll(make_rig):
    """The snapshot is a reactive polled 4x a second; the keys follow a reactive that changes only with the state."""
    rig = make_rig(domains=40, delay_s=0.03)
    app = MemtuiApp(rig.runner, poll_interval=0.02)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        updates: list[object] = []
        app.dashboard.bindings_updated_signal.subscribe(app.dashboard, updates.append)
        done = rig.runner.snapshot().items_done
        # polls of a running job (its count moves on; on a loaded machine that may take a while): panels change,
        # the keys do not
        await wait_for(pilot, lambda: rig.runner.snapshot().items_done > done, what="the job to move on")
        await asyncio.sleep(0.3)
        await pilot.pause()
        # About 15 polls went by. One update may be the layout settling late on a loaded machine (the first
        # size decides tall/narrow/chart, which the keys follow); a rebuild per poll gives many.
        assert len(updates) <= 1, f"the footer was rebuilt {len(updates)} times while nothing it offers changed"
        updates.clear()
        await pilot.press("p")
        await wait_for(pilot, lambda: bool(updates), what="the footer to follow the pause")
        assert app.dashboard.job.paused and app.dashboard.check_action("resume", ()) is True
        await pilot.press("p")
        await quit_and_confirm(app, pilot)
