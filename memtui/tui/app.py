"""The operator TUI: the engine in a thread worker beside live panels.

The app reads the runner only through ``snapshot()`` (polled a few times a
second) and ``subscribe()`` (drained into the GC log on the same tick), and
steers it only through its thread-safe commands. The job never calls into the
app: when ``Runner.run()`` returns, the worker posts a ``JobFinished`` message.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar

from textual.app import App
from textual.binding import Binding, BindingType

from memtui.early_log import EarlyLine
from memtui.errors import MemtuiError
from memtui.memory.breaker import BreakerState
from memtui.memory.units import GB, parse_gb
from memtui.records import Report, RunReport, backend_label
from memtui.runner import JobEngine, RunSnapshot
from memtui.tui.commands import KeyCommands
from memtui.tui.engine_app import EngineApp
from memtui.tui.screens import BatchLimitsScreen, QuitScreen, ThresholdsScreen
from memtui.tui.screens.dashboard import DashboardScreen
from memtui.tui.text import count, gb, short_path
from memtui.tui.theming import NO_COLOR_THEME
from memtui.tui.widgets.gc_log import GcLog, local_clock

POLL_INTERVAL_S = 0.25
BREAKER_STEP_GB = 0.1


class MemtuiApp(EngineApp):
    CSS_PATH = "app.tcss"
    TITLE = "memtui"
    COMMANDS = App.COMMANDS | {KeyCommands}
    #: The dashboard's keys are on DashboardScreen; here only what works on every screen: Ctrl-C
    #: (a priority binding: no dialog or input takes it; a second one in the quit question confirms).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding(
            "ctrl+c",
            "interrupt",
            "Quit",
            show=False,
            priority=True,
            tooltip="Interrupt: asks like q, on any screen; a second ctrl+c in the question confirms",
        ),
    ]

    def __init__(
        self,
        runner: JobEngine,
        *,
        theme: str | None = None,
        autostart: bool = True,
        poll_interval: float = POLL_INTERVAL_S,
        time_format: Callable[[float], str] = local_clock,
        handle_signals: bool = False,
        early: Sequence[EarlyLine] = (),
        keymap: Mapping[str, str] | None = None,
    ) -> None:
        # NO_COLOR without --theme: the ANSI contrast theme, drawn in native ANSI so Textual's NoColor
        # filter leaves the terminal's own foreground and background (its Monochrome filter, chosen for
        # truecolor themes, would turn the theme's "default" colors black on black).
        plain = "NO_COLOR" in os.environ and theme in (None, NO_COLOR_THEME)
        # EngineApp picks the hangup-safe driver on a real Linux terminal and handles SIGHUP.
        super().__init__(
            runner,
            theme=theme,
            autostart=autostart,
            poll_interval=poll_interval,
            handle_signals=handle_signals,
            early=early,
            keymap=keymap,
            ansi_color=True if plain else None,
        )
        self.runner = runner
        self.dashboard = DashboardScreen(time_format=time_format)

    def get_default_screen(self) -> DashboardScreen:
        return self.dashboard

    def on_ready(self) -> None:
        """Once the dashboard is up: say what runs, start polling, start the job."""
        s = self.runner.snapshot()
        log = self.dashboard.gc_log
        self._log_early()  # the setup's lines first: they were logged before anything below
        # The runner replays what it said before we subscribed (resuming, a killed previous run):
        # the intro line goes first, dated no later than those.
        replayed = self._events.drain()
        backend = f" ({label})" if (label := backend_label(s.backend)) else ""  # what makes the vectors
        log.add(
            "NOTE",
            "info",
            f"{s.mode} mode{backend}: {count(s.units_total)} {s.words[1]}, {count(s.items_total)} {s.words[0]} "
            f"from {short_path(s.input, 36)}; ? for help",
            at=min([time.time(), *(event.at for event in replayed)]),
        )
        for event in replayed:
            log.add_event(event)
        self._start_hosting()

    # -- the job ----------------------------------------------------------------------
    @property
    def job_log(self) -> GcLog:
        return self.dashboard.gc_log

    def _show_alerts(self, lines: list[str]) -> None:
        self.dashboard.show_alerts(lines)

    def _show_report(self, report: Report) -> None:
        assert isinstance(report, RunReport), "the job's app hosts a Runner"
        self.dashboard.show_report(report)

    def _show_stopping(self) -> None:
        self.dashboard.show_stopping()

    # -- polling ----------------------------------------------------------------------
    def tick(self, *, force_chart: bool = False) -> None:
        """Poll one snapshot and drain the events: the only way the UI learns about the job."""
        if not self.is_running:  # shutting down: the panels are being removed (the poll timer still fires)
            return
        s = self.runner.snapshot()
        log = self.dashboard.gc_log
        for event in self._events.drain():
            log.add_event(event)
        self.dashboard.snapshot = s  # its watcher shows it; the keys follow (DashboardScreen.check_action)
        if force_chart:
            self.dashboard.redraw_chart()

    @property
    def last(self) -> RunSnapshot | None:
        """The latest snapshot polled (held by the dashboard, a reactive)."""
        return self.dashboard.snapshot

    # -- what the dashboard's keys do (DashboardScreen binds them) ----------------------
    def pause_job(self) -> None:
        self.runner.pause()
        self.tick()

    def resume_job(self) -> None:
        self.runner.resume()
        self.tick()

    def request_cleanup(self) -> None:
        self.runner.request_cleanup()
        s = self.runner.snapshot()
        when = "runs now (the job is paused)" if s.phase == "paused" else "runs after the sub-batch in flight"
        self.dashboard.gc_log.add("NOTE", "info", f"Cleanup requested: {when}")

    def edit_thresholds(self) -> None:
        m = self.runner.snapshot().memory
        reset = "" if m.reset_bytes == m.warning_bytes else f"{m.reset_bytes / GB:.2f}GB"  # empty: follows warning
        self.push_screen(
            ThresholdsScreen(f"{m.warning_bytes / GB:.2f}GB", f"{m.max_bytes / GB:.2f}GB", reset, self._apply_levels)
        )

    def _apply_levels(self, warning: str, breaker: str, reset: str = "") -> str | None:
        """The t dialog: warning and breaker as any engine's, then the reset level (empty: the warning's)."""
        error = self._levels_error(warning, breaker)
        if error is not None:
            return error
        try:
            self.runner.set_thresholds(warning=warning, max=breaker, reset=reset or None, reset_follows=not reset)
        except MemtuiError as exc:  # invalid, or an attached run that did not answer
            return str(exc)
        self.tick()
        return None

    def _check_thresholds(self, warning: str, breaker: str) -> str | None:
        limit = self.runner.snapshot().memory.limit
        try:
            levels = [
                parse_gb(v, limit_bytes=limit.bytes if limit and limit.bytes else None, what=w)
                for w, v in (("warning", warning), ("breaker", breaker))
            ]
        except ValueError as exc:
            return str(exc)
        # Compared as the panels show them (to 0.01GB): two levels that read the same are refused, whether
        # typed in t or reached with + and - (both come here).
        if round(levels[0], 2) >= round(levels[1], 2):
            return f"the breaker must stay above the warning level: {levels[1]:.2f}GB is not above {levels[0]:.2f}GB"
        return None

    def step_breaker(self, direction: int) -> None:
        m = self.runner.snapshot().memory
        new = round(m.max_bytes / GB + direction * BREAKER_STEP_GB, 2)
        error = self._apply_thresholds(f"{m.warning_bytes / GB!r}", f"{new}")  # the t dialog's rule
        if error:
            self.notify(f"{error}; press t to move both", severity="warning", timeout=5)
            return
        after = self.runner.snapshot().memory
        if after.state is BreakerState.OPEN and after.rss_bytes >= after.reset_bytes:
            # A higher breaker does not close an open one: memory must fall below the reset level.
            self.notify(
                f"Breaker now {gb(after.max_bytes)}, but it stays open until memory ({gb(after.rss_bytes)}) "
                f"falls below the reset level {gb(after.reset_bytes)}: press t to change the reset level",
                severity="warning",
                timeout=8,
            )

    def edit_batch_limits(self) -> None:
        s = self.runner.snapshot()
        self.push_screen(BatchLimitsScreen(str(s.batch_min), str(s.batch_max), self._apply_batch_limits))

    def _apply_batch_limits(self, minimum: str, maximum: str) -> str | None:
        values = []
        for what, text in (("minimum", minimum), ("maximum", maximum)):
            try:
                value = int(text)
            except ValueError:
                return f"{what}: {text!r} is not a whole number"
            if value < 1:
                return f"{what}: must be 1 or more"
            values.append(value)
        try:
            self.runner.set_batch_limits(minimum=values[0], maximum=values[1])
        except MemtuiError as exc:
            return str(exc)
        self.tick()
        return None

    # -- quitting ---------------------------------------------------------------------
    def action_request_quit(self) -> None:
        """q and Ctrl-C: quit at once when the job is over, otherwise ask, then stop cleanly."""
        if not self.job_running:
            self._exit_with_report()
            return
        if self.quitting:
            self.notify("Already stopping: committing the batch in flight", timeout=3)
            return
        if isinstance(self.screen, QuitScreen):
            return
        s = self.runner.snapshot()
        detail = f"Done so far: {count(s.units_done)}/{count(s.units_total)} {s.words[1]}."
        self.push_screen(QuitScreen(detail, job=s.mode == "job"), self._quit_answered)

    def action_interrupt(self) -> None:
        """Ctrl-C asks like q; a second Ctrl-C in the question confirms, as in the headless face."""
        if isinstance(self.screen, QuitScreen):
            self.screen.dismiss(True)
        else:
            self.action_request_quit()

    def _quit_answered(self, confirmed: bool | None) -> None:
        if confirmed:
            self.stop_and_exit()

    def stop_and_exit(self) -> None:
        """Stop after the batch in flight; exit with the report when the worker returns."""
        if not self.job_running:
            self._exit_with_report()
            return
        self._stop_engine()

    # Textual's Ctrl-C hint goes through the same door as its ctrl+q (EngineApp.action_quit).
    def action_help_quit(self) -> None:
        self.action_interrupt()

    def _quit_on_signal(self) -> None:
        self.stop_and_exit()
