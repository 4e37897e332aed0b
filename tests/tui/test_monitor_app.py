"""Pilot tests of the monitor TUI on a real MonitorEngine watching a real child process."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

import psutil
import pytest

from memtui.jobs.monitor.engine import MonitorEngine
from memtui.jobs.monitor.tracker import TargetState
from memtui.memory.breaker import BreakerState
from memtui.memory.config import MemoryConfig
from memtui.memory.pid_probe import PidProbe
from memtui.memory.units import GB, MB
from memtui.tui.monitor_app import ConfirmSignalScreen, MonitorApp
from memtui.tui.widgets.process_table import ProcessTable

from .conftest import wait_for

#: Holds 30 MB, then waits; "grow" adds 60 MB more.
CHILD = ("import sys\nblocks = [bytearray(30 << 20)]\nfor b in blocks: b[::4096] = b'1' * len(b[::4096])\n"
         "print('ok', flush=True)\nfor line in sys.stdin:\n    blocks.append(bytearray(60 << 20))\n"
         "    blocks[-1][::4096] = b'1' * len(blocks[-1][::4096])\n    print('ok', flush=True)\n")


@pytest.fixture
def child():
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ok"
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait(timeout=10)


def engine_for(child, **kw) -> MonitorEngine:
    rss = psutil.Process(child.pid).memory_info().rss
    config = MemoryConfig(warning_memory_gb=(rss + 20 * MB) / GB, max_memory_gb=(rss + 40 * MB) / GB,
                          reset_hold_s=0.1, reset_hold_max_s=0.4)
    return MonitorEngine([PidProbe(child.pid)], config, interval_s=0.05, **kw)


def status(child) -> str:
    return psutil.Process(child.pid).status()


async def confirm(pilot, app, key: str, answer: str) -> None:
    await pilot.press(key)
    await wait_for(pilot, lambda: isinstance(app.screen, ConfirmSignalScreen), what=f"the {key} confirmation")
    await pilot.press(answer)
    await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmSignalScreen), what="the dialog to close")


async def test_keys_stop_resume_and_terminate_the_selected_process_after_confirmation(child):
    app = MonitorApp(engine_for(child))
    async with app.run_test(size=(110, 30)) as pilot:
        table = app.query_one(ProcessTable)
        await wait_for(pilot, lambda: table.row_count == 1 and app.last.targets[0].samples >= 2, what="a row")
        assert table.selected_pid == child.pid
        await confirm(pilot, app, "s", "n")  # cancelled: nothing is sent
        assert status(child) != "stopped" and app.last.target(child.pid).actions == ()
        await confirm(pilot, app, "s", "y")
        await wait_for(pilot, lambda: status(child) == "stopped", what="SIGSTOP")
        await wait_for(pilot, lambda: app.check_action("signal", ("resume",)) is True, what="r to be offered")
        assert "stopped" in str(table.get_cell(str(child.pid), "state"))
        await confirm(pilot, app, "r", "y")
        await wait_for(pilot, lambda: status(child) != "stopped", what="SIGCONT")
        await confirm(pilot, app, "k", "y")
        assert child.wait(timeout=10) == -signal.SIGTERM
        await wait_for(pilot, lambda: app.last.target(child.pid).state is TargetState.EXITED, what="exited")
        await wait_for(pilot, lambda: app.report is not None, what="the watch to end (its only target exited)")
        assert "exited" in str(table.get_cell(str(child.pid), "state"))
        await pilot.press("q")
    report = app.return_value
    assert [(a["action"], a["by"]) for a in report["targets"][0]["actions"]] == [
        ("stop", "operator"), ("resume", "operator"), ("terminate", "operator")]
    log = "\n".join(app.log_widget.lines_text())
    assert f"SIG Sent SIGSTOP to pid {child.pid}" in log and "EXIT pid" in log


async def test_breaker_colors_the_row_and_q_resumes_what_memtui_stopped(child):
    app = MonitorApp(engine_for(child, policy="stop"))
    async with app.run_test(size=(110, 30)) as pilot:
        table = app.query_one(ProcessTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="a row")
        child.stdin.write("grow\n")
        child.stdin.flush()
        await wait_for(pilot, lambda: status(child) == "stopped", what="the breaker's SIGSTOP")
        await wait_for(pilot, lambda: app.last.target(child.pid).breaker is BreakerState.OPEN, what="open")
        await pilot.pause(0.3)
        cell = table.get_cell(str(child.pid), "breaker")
        assert str(cell) == "open" and cell.style == table.get_component_rich_style("process-table--open",
                                                                                     partial=True)
        assert str(table.get_cell(str(child.pid), "state")) == "stopped (memtui)"
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    assert status(child) != "stopped"
    assert [a["by"] for a in app.return_value["targets"][0]["actions"]] == ["breaker", "memtui"]
