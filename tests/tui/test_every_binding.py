"""Every key of both apps, pressed on a live engine: none may crash the app (a dialog opened is then closed).

The class of bug this guards: a key whose handler never ran in any test (``t`` in
the monitor TUI once crashed unpacking its dialog's fields).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import pytest
from textual.binding import Binding
from textual.screen import ModalScreen

from memtui.jobs.monitor.engine import MonitorEngine
from memtui.memory.config import MemoryConfig
from memtui.memory.pid_probe import PidProbe
from memtui.tui.app import MemtuiApp
from memtui.tui.monitor_app import MonitorApp

from .conftest import wait_for


def keys_of(bindings) -> list[str]:
    keys: list[str] = []
    for binding in bindings:
        if isinstance(binding, Binding):
            keys += [k.strip() for k in binding.key.split(",")]
        else:  # a (key, action, description) tuple
            keys += [k.strip() for k in binding[0].split(",")]
    return list(dict.fromkeys(keys))


async def press_everything(app, pilot, *, quit_asks: bool) -> list[str]:
    """Press each of the app's and its default screen's keys; close any dialog it opens. Returns the keys.

    Quit keys go last; where quitting asks first (a job to stop), the question is cancelled.
    """
    keys = keys_of([*app.BINDINGS, *app.screen.BINDINGS])
    assert len(keys) >= 5
    quits = [k for k in keys if k in ("q", "ctrl+c")]
    for key in [k for k in keys if k not in quits] + (quits if quit_asks else []):
        await pilot.press(key)
        await pilot.pause(0.05)
        for _ in range(3):  # a dialog, or a dialog opened from a dialog: close with its safe answer
            if not isinstance(app.screen, ModalScreen):
                break
            await pilot.press("escape")
            await pilot.pause(0.05)
        assert not isinstance(app.screen, ModalScreen), f"{key}: a dialog did not close on escape"
        assert app.is_running, f"the app stopped after {key!r}"
    return keys


async def test_every_key_of_the_operator_tui(make_rig):
    rig = make_rig(domains=400, delay_s=0.02)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.last is not None and app.last.batches >= 1, what="a batch")
        pressed = await press_everything(app, pilot, quit_asks=True)
        assert {"p", "c", "t", "b", "g", "q"} <= set(pressed)
        assert app.job_running, "the job outlived every key (quit was asked and cancelled)"
    assert app.return_value is None or "status" in app.return_value


@pytest.fixture
def sleeper():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=10)


async def test_every_key_of_the_monitor_tui(sleeper):
    engine = MonitorEngine([PidProbe(sleeper.pid)], MemoryConfig(), interval_s=0.05)
    app = MonitorApp(engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.last is not None and app.last.rounds >= 1, what="a sample")
        pressed = await press_everything(app, pilot, quit_asks=False)
        assert {"s", "r", "k", "t"} <= set(pressed)
        assert sleeper.poll() is None, "escape cancelled the terminate dialog: the process lives"
        await pilot.press("q")  # a watch has nothing to commit: q ends it at once
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    assert app.return_value["status"]
