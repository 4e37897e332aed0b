"""The monitor-mode TUI: watched processes in a table, events in a log, keys to pause, resume or terminate.

The table sorts (``o``: RSS, growth, PID) and filters (``/``) without touching
the engine; its cursor follows its pid, and every signal names the pid it goes to.

Same contract as the main app: the MonitorEngine runs in a thread worker, the
app polls ``snapshot()`` and drains ``subscribe()`` on a timer, and acts only
through the engine's commands. Every signal the operator sends is confirmed
first; quitting ends the watch, and the engine resumes whatever memtui stopped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import ClassVar, NamedTuple

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.reactive import var
from textual.widgets import DataTable, Footer, Input, Static

from memtui.early_log import EarlyLine
from memtui.engine import call
from memtui.errors import MemtuiError
from memtui.events import Event
from memtui.jobs.monitor.engine import MonitorEngine, MonitorSnapshot
from memtui.jobs.monitor.events import (
    MonitorFinished,
    TargetActed,
    TargetAdded,
    TargetBreakerChanged,
    TargetGone,
    TargetSampled,
    TargetWarning,
)
from memtui.jobs.monitor.tracker import TargetSnapshot, TargetState
from memtui.memory.breaker import BreakerState
from memtui.memory.units import GB, format_duration
from memtui.tui.commands import KeyCommands
from memtui.tui.engine_app import EngineApp
from memtui.tui.screens.confirm import ConfirmScreen
from memtui.tui.screens.form import Field, TwoFieldScreen
from memtui.tui.screens.help import HelpScreen
from memtui.tui.text import gb, strip_icon
from memtui.tui.widgets.alert_bar import AlertBar
from memtui.tui.widgets.filter_bar import FilterBar
from memtui.tui.widgets.gc_log import GcLog
from memtui.tui.widgets.process_table import ProcessTable

POLL_INTERVAL_S = 0.25

#: What each key does: (engine command, signal, question, what happens next).
ACTIONS = {
    "stop": ("pause_target", "SIGSTOP", "Stop", "It stays frozen until you press r (memtui resumes it when it exits)."),
    "resume": ("resume_target", "SIGCONT", "Resume", "An open breaker will not stop it again until it re-trips."),
    "terminate": ("terminate_target", "SIGTERM", "Terminate", "The process is asked to exit; it may clean up first."),
}


class ConfirmSignalScreen(ConfirmScreen):
    """Ask before any signal goes to a process memtui did not start."""

    YES = "Send"
    NO = "Cancel"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("y", "confirm", "Send"), Binding("n,escape", "cancel", "Cancel")]


class MonitorThresholdsScreen(TwoFieldScreen):
    TITLE_TEXT = "Thresholds for every watched process"
    FIELDS = (
        Field("warning", "Warning", "counted and logged as a memory warning"),
        Field("breaker", "Breaker", "the target's breaker opens (and --on-breaker acts)"),
    )
    HINT = "GB (1.2), MB (800MB) or a percent of the memory limit (75%). Enter applies, Esc cancels."


HELP_TIP = "Help: keys and what the table shows"
#: The monitor's parts, for its help screen.
MONITOR_PANELS = [
    (
        "Header",
        "what is watched (pids, a command-line pattern, or your top memory users), the levels, what "
        "memtui does when a process's breaker opens (--on-breaker), how often it samples, for how long.",
    ),
    (
        "Table",
        "one row per process: RSS, its growth, its breaker (CLOSED, WARNING, OPEN, HALF-OPEN: each "
        "process has its own) and the time to its breaker at the current growth; the title says the sort "
        "order (o) and the filter (/). The cursor follows its process as rows re-sort.",
    ),
    (
        "Log",
        "each process that appears or leaves, warnings, breaker changes and the signals memtui sent; "
        "newest last. A breaker closes once a sample after the wait stays below the reset level.",
    ),
]


def log_entry(event: Event) -> tuple[str, str] | None:
    """(tag, kind) of an engine event's log line; None for the per-interval samples the table shows."""
    if isinstance(event, TargetSampled):
        return None
    if isinstance(event, TargetWarning):
        return "WARN", "warning"
    if isinstance(event, TargetBreakerChanged):
        return "BRKR", {
            BreakerState.OPEN: "error",
            BreakerState.WARNING: "warning",
            BreakerState.HALF_OPEN: "info",
            BreakerState.CLOSED: "success",
        }[event.new]
    if isinstance(event, TargetActed):
        return "SIG", "warning" if event.action.ok else "error"
    if isinstance(event, TargetGone):
        return ("LEFT" if event.target.state is TargetState.LEFT else "EXIT"), "muted"
    if isinstance(event, TargetAdded):
        return "NEW", "info"
    if isinstance(event, MonitorFinished):
        return "DONE", "success" if event.report.exit_code == 0 else "warning"
    return "NOTE", {"error": "error", "warning": "warning"}.get(event.level, "info")


class KeyState(NamedTuple):
    """What the keys depend on: the watch is over, and the selected process's state (None: none live)."""

    over: bool = False
    target: TargetState | None = None


class MonitorApp(EngineApp):
    CSS_PATH = ["app.tcss", "monitor_app.tcss"]
    TITLE = "memtui monitor"
    WORKER_NAME = "memtui-monitor"
    THREAD_NOUN = "monitor"
    FACE_NOUN = "monitor TUI"
    WORK_NOUN = "watch"
    MOUSE = True  # a row of the process table can be clicked
    COMMANDS = App.COMMANDS | {KeyCommands}
    #: Each tooltip is the key's entry in the command palette (memtui.tui.keys); ctrl+c shares q's.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "s",
            "signal('stop')",
            "Stop",
            tooltip="Stop the selected process: SIGSTOP after you confirm; it stays frozen until r",
        ),
        Binding("r", "signal('resume')", "Resume", tooltip="Resume the selected process: SIGCONT after you confirm"),
        Binding(
            "k",
            "signal('terminate')",
            "Term",  # short: every key fits 60 columns, a viewer's d included
            tooltip="Terminate the selected process: SIGTERM after you confirm; it may clean up first",
        ),
        Binding(
            "t",
            "thresholds",
            "Thresholds",
            id="thresholds",
            tooltip="Change thresholds: warning and breaker levels for every watched process",
        ),
        Binding(
            "q", "request_quit", "Quit", id="quit", tooltip="Quit: ends the watch; memtui resumes whatever it stopped"
        ),
        Binding(
            "o", "cycle_order", "Sort", tooltip="Sort the table: by RSS, growth or PID in turn (its title says which)"
        ),
        Binding("slash", "filter", "Find", tooltip="Filter the table: by name or pid as you type; Enter keeps it"),
        Binding("escape", "clear_filter", "Clear filter", tooltip="Clear the filter: every process again"),
        Binding("question_mark", "help", "Help", id="help", tooltip=HELP_TIP),
        # A viewer below 80 columns: ? leaves the footer so its d fits; this twin keeps the key.
        Binding("question_mark", "quiet_help", "Help", id="help", show=False, tooltip=HELP_TIP),
        Binding(
            "x",
            "dismiss_alerts",
            "Dismiss",
            id="dismiss",
            show=False,  # the bar names its key
            tooltip="Dismiss the warnings from before the watch (they stay in the log)",
        ),
        Binding("ctrl+c", "request_quit", "Quit", show=False, priority=True),
    ]

    #: The latest snapshot polled: every poll sets it, ``watch_last`` shows it.
    last: var[MonitorSnapshot | None] = var(None, always_update=True, init=False)
    #: What check_action reads (``bindings=True``: the footer is redrawn only when it changes).
    key_state: var[KeyState] = var(KeyState(), bindings=True, init=False)

    def __init__(
        self,
        engine: MonitorEngine,
        *,
        theme: str | None = None,
        autostart: bool = True,
        poll_interval: float = POLL_INTERVAL_S,
        handle_signals: bool = False,
        early: Sequence[EarlyLine] = (),
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(
            engine,
            theme=theme,
            autostart=autostart,
            poll_interval=poll_interval,
            handle_signals=handle_signals,
            early=early,
            keymap=keymap,
        )
        self.engine = engine
        self.header = Static("", id="monitor-header", markup=False)
        self.filter_bar = FilterBar(id="filter")
        self.table = ProcessTable(id="processes")
        self.log_widget = GcLog(id="monitor-log")

    def compose(self) -> ComposeResult:
        yield self.header
        yield AlertBar(id="alerts")
        yield self.filter_bar
        yield self.table
        yield self.log_widget
        yield Footer(compact=True)  # every key, q included, fits 60 columns (the palette hint from 80)

    def on_ready(self) -> None:
        self.log_widget.border_title = "Log"  # the events of the watch, not memtui's own cleanups
        self.filter_bar.display = False
        self._log_early()
        self._start_hosting()

    def _show_alerts(self, lines: list[str]) -> None:
        self.query_one(AlertBar).show(lines)
        self.refresh_bindings()

    def action_dismiss_alerts(self) -> None:
        self.query_one(AlertBar).dismiss()
        self.refresh_bindings()

    def on_resize(self) -> None:
        self.query_one(Footer).show_command_palette = self.size.width >= (92 if self.attached_to else 80)
        self.refresh_bindings()  # a viewer's ? leaves the footer below 80 columns

    def _polling_started(self) -> None:
        self.table.focus()

    @property
    def job_log(self) -> GcLog:
        return self.log_widget

    # -- polling ----------------------------------------------------------------------
    def tick(self) -> None:
        if not self.is_running:  # shutting down: the widgets are being removed (the poll timer still fires)
            return
        s = self.engine.snapshot()
        for event in self._events.drain():
            entry = log_entry(event)
            if entry is not None:
                self.log_widget.add(*entry, strip_icon(event.message), at=event.at)
        self.last = s

    def watch_last(self, s: MonitorSnapshot | None) -> None:
        if s is None:
            return
        before = self.table.selected_pid
        self.table.show(s.targets)
        self._say_if_selection_left(before, s)
        self.header.update(self._header(s))
        self._update_key_state()

    def _say_if_selection_left(self, pid: int | None, s: MonitorSnapshot) -> None:
        """The selected process exited or left the top N: say so, the cursor is on another one now."""
        target = s.target(pid) if pid is not None else None
        if pid is None or (target is not None and not target.gone) or self.table.selected_pid == pid:
            return
        now = self.table.selected_pid
        where = f"the cursor is on pid {now}" if now is not None else "no process is selected"
        self.notify(f"pid {pid} is no longer in the table; {where}", severity="warning", timeout=4)

    def on_data_table_row_highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._update_key_state()

    def _update_key_state(self) -> None:
        target = self._selected()
        self.key_state = KeyState(
            over=self.report is not None or self.quitting,
            target=None if target is None or target.gone else target.state,
        )

    def _header(self, s: MonitorSnapshot) -> str:
        """What is watched and how, most important first (the line is cut at the terminal's edge)."""
        span = format_duration(s.elapsed_s) + (f"/{format_duration(s.duration_s)}" if s.duration_s else "")
        state = (
            "run lost"
            if getattr(self, "lost", None)
            else f"finished: {s.report.end_reason}"
            if s.report
            else "stopping"
            if s.stopping
            else "paused"
            if s.paused
            else "watching"
        )
        viewer = f"viewer of {self.attached_to} · " if self.attached_to else ""
        return (
            f"{viewer}{state} · {s.selection} · warning {gb(s.warning_bytes)} · breaker {gb(s.max_bytes)} · "
            f"on breaker: {s.policy.value} · every {s.interval_s:g}s · {span}"
        )

    # -- keys -------------------------------------------------------------------------
    def action_quiet_help(self) -> None:
        self.action_help()

    def action_help(self) -> None:
        self.push_screen(HelpScreen([self], MONITOR_PANELS))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("help", "quiet_help"):
            spare = bool(self.attached_to) and self.size.width < 80  # a viewer's d needs the room
            return spare == (action == "quiet_help")
        if action == "dismiss_alerts":
            return self.query_one(AlertBar).showing
        if action == "clear_filter":
            return bool(self.table.filter_text)  # shown in the footer while a filter holds
        if action != "signal" and action != "thresholds":
            return True
        keys = self.key_state
        if keys.over:
            return False
        if action == "thresholds":
            return True
        if keys.target is None:
            return None
        stopped = keys.target is TargetState.STOPPED
        return {"stop": not stopped, "resume": stopped, "terminate": True}[str(parameters[0])]

    def _selected(self) -> TargetSnapshot | None:
        pid = self.table.selected_pid if self.table.is_mounted else None  # (App.is_mounted is a method)
        return self.last.target(pid) if self.last is not None and pid is not None else None

    def action_signal(self, action: str) -> None:
        target = self._selected()
        if target is None or target.gone:
            self.notify("Select a live process first", severity="warning", timeout=3)
            return
        command, sig, verb, after = ACTIONS[action]
        question = f"{verb} pid {target.pid} ({target.label})?"
        detail = f"memtui will send {sig} to it" + (" and its counted children" if self.engine.children else "")
        self.push_screen(
            ConfirmSignalScreen(question, f"{detail}. {after}"), lambda ok: self._send(ok, command, target)
        )

    def _send(self, confirmed: bool | None, command: str, asked: TargetSnapshot) -> None:
        if not confirmed:
            return
        pid = asked.pid
        try:  # the engine refuses, atomically, a pid that is not the watch the operator was asked about
            action = call(self.engine, command, pid, asked.watch_id)
        except MemtuiError as exc:
            self.notify(str(exc), severity="warning", timeout=5)
            return
        if not action.ok:
            self.notify(f"{action.signal} to pid {pid} failed: {action.error}", severity="error", timeout=5)
        self.tick()

    def action_thresholds(self) -> None:
        s = self.engine.snapshot()
        self.push_screen(
            MonitorThresholdsScreen(
                f"{s.warning_bytes / GB:.2f}GB", f"{s.max_bytes / GB:.2f}GB", self._apply_thresholds
            )
        )

    # -- sorting and filtering (the table only: the engine watches the same processes) --
    def action_cycle_order(self) -> None:
        self.table.sort_by(self.table.order.next())
        self._update_key_state()

    def action_filter(self) -> None:
        self.filter_bar.display = True
        self.filter_bar.focus()

    def action_clear_filter(self) -> None:
        self.filter_bar.value = ""
        self._close_filter()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input is self.filter_bar:
            self.table.filter_by(event.value)
            self._update_key_state()
            self.refresh_bindings()  # esc is offered while a filter holds

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input is self.filter_bar:
            self.filter_bar.display = bool(event.value)
            self.table.focus()

    def on_filter_bar_cleared(self, _event: FilterBar.Cleared) -> None:
        self._close_filter()

    def _close_filter(self) -> None:
        self.filter_bar.display = False
        self.table.filter_by("")
        self.table.focus()
        self._update_key_state()
        self.refresh_bindings()

    # -- quitting ---------------------------------------------------------------------
    def action_request_quit(self) -> None:
        """End the watch (memtui resumes what it stopped) and exit with the report."""
        if self.report is not None or self._worker is None:
            self._exit_with_report()
            return
        if not self.quitting:
            self._stop_engine()

    def _quit_on_signal(self) -> None:
        """SIGTERM, SIGINT and SIGHUP (EngineApp) end the watch like q: memtui resumes what it stopped."""
        self.action_request_quit()
