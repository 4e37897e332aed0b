"""Pilot tests of the monitor TUI on a real MonitorEngine watching a real child process."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import psutil
import pytest

from memtui.jobs.monitor.engine import MonitorEngine
from memtui.jobs.monitor.targets import TopN
from memtui.jobs.monitor.tracker import TargetState
from memtui.memory.breaker import BreakerState
from memtui.memory.config import MemoryConfig
from memtui.memory.pid_probe import PidProbe
from memtui.memory.units import GB, MB
from memtui.tui.monitor_app import ConfirmSignalScreen, MonitorApp
from memtui.tui.widgets.process_table import ProcessTable
from tests.support.cli import REPO, memtui_env

from .conftest import wait_for

#: Holds 30 MB, then waits; "grow" adds 60 MB more.
CHILD = (
    "import sys\nblocks = [bytearray(30 << 20)]\nfor b in blocks: b[::4096] = b'1' * len(b[::4096])\n"
    "print('ok', flush=True)\nfor line in sys.stdin:\n    blocks.append(bytearray(60 << 20))\n"
    "    blocks[-1][::4096] = b'1' * len(blocks[-1][::4096])\n    print('ok', flush=True)\n"
)


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
    config = MemoryConfig(
        warning_memory_gb=(rss + 20 * MB) / GB,
        max_memory_gb=(rss + 40 * MB) / GB,
        reset_hold_s=0.1,
        reset_hold_max_s=0.4,
    )
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
        await wait_for(pilot, lambda: table.shown_pids == [], what="the exited process to leave the table")
        await pilot.press("q")
    report = app.return_value
    assert [(a["action"], a["by"]) for a in report["targets"][0]["actions"]] == [
        ("stop", "operator"),
        ("resume", "operator"),
        ("terminate", "operator"),
    ]
    log = "\n".join(app.log_widget.lines_text())
    assert f"SIG Sent SIGSTOP to pid {child.pid}" in log and "EXIT pid" in log


async def test_breaker_colors_the_row_and_q_resumes_what_memtui_stopped(child):
    app = MonitorApp(engine_for(child, policy="stop"))
    async with app.run_test(size=(120, 30)) as pilot:  # wide enough for the Breaker column
        table = app.query_one(ProcessTable)
        await wait_for(pilot, lambda: table.row_count == 1, what="a row")
        child.stdin.write("grow\n")
        child.stdin.flush()
        await wait_for(pilot, lambda: status(child) == "stopped", what="the breaker's SIGSTOP")
        await wait_for(pilot, lambda: app.last.target(child.pid).breaker is BreakerState.OPEN, what="open")
        await pilot.pause(0.3)
        open_style = table.get_component_rich_style("process-table--open", partial=True)
        for column in ("breaker", "eta"):
            cell = table.get_cell(str(child.pid), column)
            assert str(cell) == "open" and cell.style == open_style, column
        assert table.get_cell(str(child.pid), "rss").style == open_style
        assert str(table.get_cell(str(child.pid), "state")) == "stopped (memtui)"
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    assert status(child) != "stopped"
    assert [a["by"] for a in app.return_value["targets"][0]["actions"]] == ["breaker", "memtui"]


# -- a real terminal that goes away -------------------------------------------------------------------

#: Breaker levels any process is above: the breaker opens (and --on-breaker stop acts) on the first sample.
TINY = ("--max-memory", "1MB", "--warning-memory", "0.5MB", "--config", os.devnull)


def proc_state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().rsplit(")", 1)[1].split()[0]


class MonitorTerminal:
    """``memtui run --mode monitor --tui`` on the slave side of a real pty, its output drained continuously."""

    def __init__(self, target_pid: int, report: Path) -> None:
        pid, fd = pty.fork()
        if pid == 0:  # a session leader whose controlling terminal is the pty, as under sshd
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 110, 0, 0))
            os.chdir(REPO)
            os.execve(
                sys.executable,
                [
                    sys.executable,
                    "-m",
                    "memtui",
                    "run",
                    "--mode",
                    "monitor",
                    "--tui",
                    "--pid",
                    str(target_pid),
                    "--on-breaker",
                    "stop",
                    *TINY,
                    "--monitor-interval",
                    "0.05",
                    "--report",
                    str(report),
                ],
                memtui_env(TERM="xterm-256color"),
            )
        self.pid, self.fd = pid, fd
        self.output = bytearray()
        self.open = True
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:
                return
            if not chunk:
                return
            self.output += chunk

    def wait_for_text(self, text: bytes, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert time.monotonic() < deadline, f"{text!r} never appeared on the terminal"
            time.sleep(0.05)

    def hang_up(self) -> None:
        if self.open:
            self.open = False
            os.close(self.fd)

    def exit_code(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        raise AssertionError(f"the monitor TUI did not exit within {timeout}s of the hangup")

    def close(self) -> None:
        self.hang_up()
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs a Linux pty")
@pytest.mark.parametrize("how", ["terminal closed", "SIGHUP"])
def test_a_monitor_tui_whose_terminal_goes_away_exits_130_and_continues_what_it_stopped(how, tmp_path: Path):
    """An SSH session drops under the monitor TUI (or someone sends it SIGHUP): with --on-breaker stop it
    must not go on stopping processes with nobody watching. It ends the watch, resumes what it
    stopped, writes the report and exits 130 within seconds."""
    report = tmp_path / "report.json"
    with contextlib.ExitStack() as stack:
        target = subprocess.Popen(["sleep", "60"])
        stack.callback(lambda: (os.kill(target.pid, signal.SIGCONT), target.kill(), target.wait(timeout=10)))
        term = MonitorTerminal(target.pid, report)
        stack.callback(term.close)
        term.wait_for_text(b"on breaker: stop")
        deadline = time.monotonic() + 30
        while proc_state(target.pid) != "T":  # the breaker policy really stopped it
            assert time.monotonic() < deadline, "memtui never stopped the target"
            time.sleep(0.02)
        if how == "SIGHUP":
            os.kill(term.pid, signal.SIGHUP)
        else:
            term.hang_up()  # closing the master hangs the terminal up: the kernel sends SIGHUP
        assert term.exit_code(timeout=10) == 130
        assert proc_state(target.pid) == "S", "memtui exited leaving the process it stopped frozen"
        data = json.loads(report.read_text())
        assert data["status"] == "interrupted" and data["exit_code"] == 130
        assert [(a["action"], a["by"]) for a in data["targets"][0]["actions"]] == [
            ("stop", "breaker"),
            ("resume", "memtui"),
        ]


async def test_the_monitor_palette_lists_its_keys_from_the_bindings(child):
    from memtui.tui.commands import KeyCommands
    from memtui.tui.keys import documented, undocumented

    app = MonitorApp(engine_for(child))
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: app.last is not None and app.table.row_count == 1, what="a row")
        await pilot.pause(0.1)
        assert undocumented([app.screen, app]) == [], "ctrl+c shares q's line; every other key has a tooltip"
        titles = {title for title, _, _ in KeyCommands(app.screen)._commands()}
        assert {"Stop the selected process", "Terminate the selected process", "Change thresholds", "Quit"} <= titles
        assert "Resume the selected process" not in titles, "the process runs: r is not offered"
        assert [doc.key_display(app) for doc in documented([app]) if doc.action == "request_quit"] == ["q  ^c"]
        await pilot.press("q")


# -- the table at 80x24 and 60x20: columns, sort, filter, live top N ---------------------------------
def screen_lines(app) -> list[str]:
    """What the terminal shows, line by line."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


def row_line(app, pid: int) -> str:
    return next((line for line in screen_lines(app) if f" {pid} " in line), "")


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_state_and_time_to_breaker_stay_on_screen_at(size, child):
    """Issue #13 item 9: at 80x24 every column fits; at 60x20 State and To breaker are still there."""
    app = MonitorApp(engine_for(child, policy="stop"))
    async with app.run_test(size=size) as pilot:
        await wait_for(pilot, lambda: "running" in row_line(app, child.pid), what="the child's row")
        header = next(line for line in screen_lines(app) if "PID" in line)
        wanted = ["PID", "Process", "RSS", "Trend", "State", "To breaker"] if size[0] >= 80 else ["State", "To breaker"]
        assert all(label in header for label in wanted), header
        assert header.index("State") < header.index("To breaker") < header.rindex("│")
        child.stdin.write("grow\n")
        child.stdin.flush()
        await wait_for(pilot, lambda: status(child) == "stopped", what="the breaker's SIGSTOP")
        await wait_for(
            pilot,
            lambda: "stopped" in row_line(app, child.pid) and "open" in row_line(app, child.pid),
            what="the row to say stopped and open",
        )
        await pilot.press("q")
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    assert status(child) != "stopped"


@pytest.fixture
def spawn():
    """Children that allocate N MB when told ("alloc N"), killed at the end."""
    from tests.jobs.test_monitor_engine import Child

    children: list[Child] = []

    def make() -> Child:
        children.append(Child())
        return children[-1]

    try:
        yield make
    finally:
        for c in children:
            c.kill()


async def test_o_sorts_by_rss_growth_and_pid(spawn):
    small, big = spawn(), spawn()
    small.step("alloc 10")
    big.step("alloc 90")
    app = MonitorApp(MonitorEngine([PidProbe(small.pid), PidProbe(big.pid)], MemoryConfig(), interval_s=0.05))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(ProcessTable)
        await wait_for(pilot, lambda: table.shown_pids == [big.pid, small.pid], what="rows by RSS")
        assert "by RSS" in str(table.border_title)
        small.step("alloc 40")  # grows, still the smaller one
        await wait_for(pilot, lambda: (app.last.target(small.pid).rate_bps or 0) > 1 << 20, what="small's growth")
        await pilot.press("o")
        await wait_for(pilot, lambda: table.shown_pids == [small.pid, big.pid], what="rows by growth")
        assert "by growth" in str(table.border_title) and "by growth" in "".join(screen_lines(app))
        await pilot.press("o")
        await wait_for(pilot, lambda: table.shown_pids == sorted([small.pid, big.pid]), what="rows by PID")
        await pilot.press("o")
        await wait_for(pilot, lambda: table.shown_pids == [big.pid, small.pid], what="rows by RSS again")
        await pilot.press("q")


async def test_slash_filters_by_pid_or_name_enter_keeps_it_escape_clears_it(spawn):
    one, two = spawn(), spawn()
    app = MonitorApp(MonitorEngine([PidProbe(one.pid), PidProbe(two.pid)], MemoryConfig(), interval_s=0.05))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(ProcessTable)
        await wait_for(pilot, lambda: len(table.shown_pids) == 2, what="two rows")
        await pilot.press("slash")
        assert app.focused is app.filter_bar
        await pilot.press(*str(two.pid))
        await wait_for(pilot, lambda: table.shown_pids == [two.pid], what="the filtered row")
        await pilot.press("enter")
        assert app.focused is table and app.filter_bar.display, "Enter keeps the filter, the keys go to the table"
        assert app.check_action("clear_filter", ()) is True, "the footer offers esc while a filter holds"
        assert f"1 of 2 processes · by RSS · filter '{two.pid}'" == table.border_title
        await pilot.press("s")  # acts on the one row left, and says which
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmSignalScreen), what="the question")
        assert f"pid {two.pid}" in "".join(screen_lines(app))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmSignalScreen), what="the dialog to close")
        await pilot.press("escape")  # from the table: clears the filter
        await wait_for(pilot, lambda: len(table.shown_pids) == 2, what="both rows again")
        assert not app.filter_bar.display and app.check_action("clear_filter", ()) is False
        await pilot.press("slash", "p", "y", "t", "h", "o", "n")  # by name: both children are python
        await wait_for(pilot, lambda: table.filter_text == "python", what="the typed filter")
        assert len(table.shown_pids) == 2
        await pilot.press("z")
        await wait_for(pilot, lambda: table.shown_pids == [], what="no row matches")
        await pilot.press("escape")  # in the filter line: clears it too
        await wait_for(pilot, lambda: len(table.shown_pids) == 2, what="both rows again")
        assert app.focused is table and not app.filter_bar.display
        assert all(a == () for a in (t.actions for t in app.last.targets)), "nothing was signalled"
        await pilot.press("q")


async def test_the_cursor_stays_on_its_pid_as_the_live_top_n_moves(spawn):
    """Rows re-sort, a newcomer enters, another leaves, one exits: the cursor stays on the operator's pid."""
    from tests.jobs.test_monitor_rerank import scan_of

    a, b, c, d = spawn(), spawn(), spawn(), spawn()
    a.step("alloc 60")
    b.step("alloc 30")
    engine = MonitorEngine(
        [PidProbe(p.pid) for p in (a, b, c)],
        MemoryConfig(),
        interval_s=0.05,
        top=TopN(3, scan=scan_of([a, b, c, d])),
    )
    app = MonitorApp(engine)
    notes: list[str] = []
    app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(ProcessTable)
        await wait_for(pilot, lambda: table.shown_pids == [a.pid, b.pid, c.pid], what="rows by RSS")
        await pilot.press("down")
        assert table.selected_pid == b.pid
        await pilot.resize_terminal(60, 20)  # other columns, the same selection
        await wait_for(pilot, lambda: "trend" not in [c.key for c in table.layout_columns], what="60 columns")
        assert table.selected_pid == b.pid
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: "trend" in [c.key for c in table.layout_columns], what="80 columns")
        assert table.selected_pid == b.pid
        d.step("alloc 150")  # d enters at the top, c (the smallest) leaves
        await wait_for(pilot, lambda: table.shown_pids == [d.pid, a.pid, b.pid], what="d in, c out")
        assert table.selected_pid == b.pid and table.cursor_row == 2
        a.kill()  # a exits, c comes back to fill its place
        await wait_for(pilot, lambda: table.shown_pids == [d.pid, b.pid, c.pid], what="a out, c back")
        assert table.selected_pid == b.pid
        log = "\n".join(app.log_widget.lines_text())
        assert f"LEFT pid {c.pid}" in log and f"EXIT pid {a.pid}" in log and f"NEW Watching pid {d.pid}" in log
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmSignalScreen), what="the question")
        assert f"pid {b.pid}" in "".join(screen_lines(app))
        await pilot.press("n")
        await wait_for(pilot, lambda: not isinstance(app.screen, ConfirmSignalScreen), what="the dialog to close")
        assert b.proc.poll() is None and notes == []
        b.kill()  # the selected one exits: the cursor must land somewhere, and the operator is told
        await wait_for(pilot, lambda: table.shown_pids == [d.pid, c.pid], what="b out")
        await wait_for(pilot, lambda: bool(notes), what="the note")
        assert notes == [f"pid {b.pid} is no longer in the table; the cursor is on pid {table.selected_pid}"]
        await pilot.press("q")


async def test_a_process_that_leaves_while_the_question_is_open_is_not_signalled(spawn):
    """k asked about pid A; A leaves the top 1 and comes back (a new watch, as a reused pid would be):
    the answer y sends nothing, and says so."""
    from tests.jobs.test_monitor_rerank import scan_of

    a, b = spawn(), spawn()
    a.step("alloc 40")
    engine = MonitorEngine([PidProbe(a.pid)], MemoryConfig(), interval_s=0.05, top=TopN(1, scan=scan_of([a, b])))
    app = MonitorApp(engine)
    notes: list[str] = []
    app.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(ProcessTable)
        await wait_for(pilot, lambda: table.shown_pids == [a.pid] and app.last.target(a.pid).samples > 3, what="a")
        await pilot.press("k")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmSignalScreen), what="the question")
        b.step("alloc 150")  # b takes the only place
        await wait_for(pilot, lambda: table.shown_pids == [b.pid], what="b in, a out")
        b.kill()  # a comes back: a new watch of the same pid
        await wait_for(pilot, lambda: table.shown_pids == [a.pid], what="a back")
        await pilot.press("y")
        await wait_for(pilot, lambda: "nothing was sent" in notes[-1], what="the note")
        label = app.last.target(a.pid).label
        assert notes[-1] == f"pid {a.pid} ({label}) left the table after it was shown; nothing was sent"
        assert a.proc.poll() is None and app.last.target(a.pid).actions == ()
        await pilot.press("q")
