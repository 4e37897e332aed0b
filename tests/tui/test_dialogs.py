"""Dialogs that survive SSH: keys in one burst apply in order (also the ones typed on the dashboard
before the dialog they open is up: memtui.tui.key_gate), Enter applies from anywhere in a form,
and a destructive question starts on the safe answer (y stays the accelerator)."""

from __future__ import annotations

import threading

from textual import events
from textual.widgets import Button, Input

from memtui.tui.app import MemtuiApp
from memtui.tui.screens import BatchLimitsScreen, QuitScreen, ThresholdsScreen
from memtui.tui.screens.help import HelpScreen
from tests.support.executors import FakeExecutor

from .conftest import wait_for
from .test_keys import quit_and_confirm


def burst(app, text: str) -> None:
    """Keys as one terminal read delivers them: queued together, none awaited in between."""
    names = {"\t": "tab", "\r": "enter", ".": "full_stop", "\x1b": "escape", "?": "question_mark"}
    for ch in text:
        app.post_message(events.Key(names.get(ch, ch), ch))


async def test_a_burst_with_a_tab_fills_both_fields_and_enter_applies(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, ThresholdsScreen), what="the dialog")
        await pilot.pause()
        dialog = app.screen
        burst(app, "0.9\t1.4")
        typed = ["0.9", "1.4"]
        await wait_for(pilot, lambda: [dialog.query_one(f"#{i}", Input).value for i in ("warning", "breaker")] == typed)
        burst(app, "\r")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="the dialog to apply")
        m = rig.runner.snapshot().memory
        assert (round(m.warning_bytes / 2**30, 2), round(m.max_bytes / 2**30, 2)) == (0.9, 1.4)
        await quit_and_confirm(app, pilot)


async def test_enter_on_a_button_applies_the_form(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        await pilot.press("b")
        await wait_for(pilot, lambda: isinstance(app.screen, BatchLimitsScreen), what="the dialog")
        app.screen.query_one("#batch-max", Input).value = "3"
        app.screen.query_one("#apply", Button).focus()
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="the dialog to apply")
        assert rig.runner.snapshot().batch_max == 3
        await quit_and_confirm(app, pilot)


async def test_the_quit_question_starts_on_keep_running(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        await pilot.press("q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), what="the question")
        await pilot.pause()
        assert app.screen.focused is not None and app.screen.focused.id == "cancel"
        await pilot.press("enter")  # the safe answer: the job keeps running
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="the question to close")
        assert not rig.runner.snapshot().stopping
        await quit_and_confirm(app, pilot)  # y stays the accelerator


def levels(rig) -> tuple[float, float]:
    m = rig.runner.snapshot().memory
    return round(m.warning_bytes / 2**30, 2), round(m.max_bytes / 2**30, 2)


async def test_a_burst_typed_on_the_dashboard_goes_into_the_dialog_its_first_key_opens(make_rig):
    """``t0.9<Tab>1.4<Enter>`` in one read: the keys after t wait for the dialog, then fill it and apply."""
    # Held at its first sub-batch until it is asked to stop: a job that could end on its own ended
    # first on a loaded machine, and a finished run takes no batch limit.
    rig = make_rig(domains=30, executor=FakeExecutor(sub_batch=2, gate=threading.Event()))
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, rig.executor.holding.is_set, what="the job to start")
        burst(app, "t0.9\t1.4\r")
        await wait_for(pilot, lambda: levels(rig) == (0.9, 1.4), what="the levels typed in the burst")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="the dialog to apply and close")
        burst(app, "b\t3\r")  # the other form: its maximum field, by Tab
        await wait_for(pilot, lambda: rig.runner.snapshot().batch_max == 3, what="the batch limit typed")
        await wait_for(pilot, lambda: app.screen is app.dashboard, what="the dialog to apply and close")
        await pilot.press("t", "0", ".", "8", "tab", "1", ".", "3", "enter")  # Pilot's presses, no pause
        await wait_for(pilot, lambda: levels(rig) == (0.8, 1.3), what="the levels pressed")
        await wait_for(pilot, lambda: app.keys.is_open and not app.keys.held, what="every key to land")
        await quit_and_confirm(app, pilot)


async def test_keys_after_a_question_or_help_in_the_same_burst_answer_it_then_reach_the_dashboard(make_rig):
    rig = make_rig(domains=300, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        burst(app, "?\x1bqnp")  # help and close it, ask to quit and keep running, then pause
        await wait_for(pilot, lambda: rig.runner.snapshot().paused, what="p to reach the dashboard")
        assert app.screen is app.dashboard and not rig.runner.snapshot().stopping
        burst(app, "p?")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        assert not rig.runner.snapshot().paused
        burst(app, "\x1bqy")  # close help, ask, confirm: the job stops and the app exits
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.return_value["status"] == "interrupted"
