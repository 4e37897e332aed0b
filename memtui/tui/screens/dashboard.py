"""The main screen: every panel, and how they reflow for the terminal's size.

Narrow terminals put the side panels under the memory panel and let the body
scroll. Short ones (below TALL_HEIGHT rows) show one thing at a time in the
lower area: the chart if toggled on, else the run report once the job is over
(l flips to the log), else the log. Tall ones show chart, report and log together.
Short and narrow ones (60x20) have no room below the fold: the chart, the log
(with a cluster's workers) and the run report take the memory panel's place;
the report does so by itself once the run is over, the log when l asks
(``DashboardScreen.l_does`` is the one rule for what l does, and what its footer says).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.reactive import var
from textual.screen import Screen
from textual.widgets import Footer

from memtui.records import RunReport
from memtui.runner import RunSnapshot
from memtui.tui.history import RssHistory
from memtui.tui.screens.help import HelpScreen
from memtui.tui.widgets import (
    BatchPanel,
    BreakerPanel,
    GcLog,
    MemoryChart,
    MemoryPanel,
    ProgressPanel,
    ReportBanner,
    RunHeader,
)
from memtui.tui.widgets.alert_bar import AlertBar
from memtui.tui.widgets.gc_log import local_clock
from memtui.tui.widgets.workers_panel import WorkersPanel

if TYPE_CHECKING:
    from memtui.tui.app import MemtuiApp

#: Below this many columns the side panels move under the memory panel.
NARROW_WIDTH = 76
#: From this many rows up the chart fits beside the log and is shown by default.
TALL_HEIGHT = 34
#: Keys that leave the footer below NARROW_WIDTH (still keys, in the help and the palette), so l and q fit.
FOOTER_SPARE = ("cleanup", "batch_limits")
CLEANUP_TIP = "Clean up memory now: gc, hand freed heap back to the OS, clear model caches (see the GC log)"
BATCH_TIP = "Change batch-size limits: the size at warning (min) and when memory is normal (max)"


class JobState(NamedTuple):
    """What the keys depend on: it changes a few times a run, not on every poll."""

    paused: bool = False
    over: bool = False  # finished (or the worker has reported)
    stopping: bool = False  # told to stop (a confirmed quit, a signal)


class DashboardScreen(Screen):
    """The operator's screen: its keys steer the job through the app (MemtuiApp), which owns the runner.

    Each binding's tooltip is its line in the help and its entry in the palette (memtui.tui.keys).
    """

    # Nothing focused at start: every key reaches the screen's bindings, and a narrow
    # terminal shows the top of the body. Tab focuses the log (or the body) to scroll.
    AUTO_FOCUS = None
    BINDINGS: ClassVar[list[BindingType]] = [
        # Two bindings per key whose label changes; check_action shows the one that applies.
        Binding(
            "p,space",
            "pause",
            "Pause",
            id="pause",
            tooltip="Pause the job: holds after the sub-batch in flight; the panels keep updating",
        ),
        Binding("p,space", "resume", "Resume", id="pause", tooltip="Resume the job: batches start again"),
        Binding(
            "c",
            "cleanup",
            "Cleanup",
            id="cleanup",
            tooltip=CLEANUP_TIP,
        ),
        Binding(
            "t",
            "thresholds",
            "Thresholds",
            id="thresholds",
            tooltip="Change memory thresholds: warning and breaker levels, in GB, MB or % of the memory limit",
        ),
        Binding(
            "plus,equals_sign",
            "breaker_step(1)",
            "Breaker+",
            show=False,
            id="breaker_up",
            tooltip="Raise the breaker level by 0.1GB",
        ),
        Binding(
            "minus,underscore",
            "breaker_step(-1)",
            "Breaker-",
            show=False,
            id="breaker_down",
            tooltip="Lower the breaker level by 0.1GB",
        ),
        Binding(
            "b",
            "batch_limits",
            "Batch",
            id="batch",
            tooltip=BATCH_TIP,
        ),
        Binding(
            "g",
            "toggle_chart",
            "Chart",
            id="chart",
            tooltip="Show or hide the memory chart: the whole run (in place of the log on small screens)",
        ),
        # l does one of these (l_does): the help lists them on one line.
        Binding(
            "l",
            "show_log",
            "Log",
            id="log",
            tooltip="Show the log: with a cluster's workers, in place of the chart, the run report, "
            "or on a narrow screen the memory panel",
        ),
        Binding(
            "l",
            "show_report",
            "Report",
            id="log",
            tooltip="Show the run report: back from the log, once the run is over",
        ),
        Binding(
            "l", "hide_log", "Memory", id="log", tooltip="Show the memory panel: back from the log, on a narrow screen"
        ),
        # l when the log is already on screen: say so instead of doing nothing (the help's l line is show_log's).
        Binding(
            "l", "log_why", "Log", show=False, id="log", tooltip="Where the log is: l says so when it is on screen"
        ),
        Binding(
            "x",
            "dismiss_alerts",
            "Dismiss",
            show=False,  # the bar names its key; the footer keeps its room for q
            id="dismiss",
            tooltip="Dismiss the warnings from before the run (they stay in the GC log)",
        ),
        # Narrow terminals: c and b leave the footer so l and q fit in 60 columns; these twins keep the keys.
        Binding(
            "c",
            "quiet('cleanup')",
            "Cleanup",
            show=False,
            id="cleanup",
            tooltip=CLEANUP_TIP,
        ),
        Binding(
            "b",
            "quiet('batch_limits')",
            "Batch",
            show=False,
            id="batch",
            tooltip=BATCH_TIP,
        ),
        Binding("question_mark", "help", "Help", id="help", tooltip="Help: keys and panels"),
        Binding(
            "q",
            "request_quit",
            "Quit",
            id="quit",
            tooltip="Quit: asks first, then commits the batch in flight (a rerun resumes)",
        ),
    ]

    #: The latest snapshot polled (the app sets it on every poll; the watcher hands it to every panel).
    snapshot: var[RunSnapshot | None] = var(None, always_update=True, init=False)
    #: What the keys offer follows these (``bindings=True``: the footer is redrawn only when one changes).
    job: var[JobState] = var(JobState(), bindings=True, init=False)
    show_chart: var[bool | None] = var(None, bindings=True, init=False)  # None: decide from the height
    log_after_finish = var(False, bindings=True, init=False)  # short terminals show the report; l the log
    log_first = var(False, bindings=True, init=False)  # short, narrow terminals: the log in the memory panel's place
    tall = var(False, bindings=True, init=False)
    narrow = var(False, bindings=True, init=False)  # below NARROW_WIDTH: l's log view, c and b off the footer

    def __init__(self, *, time_format: Callable[[float], str] = local_clock) -> None:
        super().__init__(id="dashboard")
        self._time_format = time_format
        self.history = RssHistory()
        self.finished = False

    @property
    def host(self) -> MemtuiApp:
        """The app, which owns the runner: the keys steer the job only through it."""
        return self.app  # type: ignore[return-value]

    @property
    def last(self) -> RunSnapshot | None:
        return self.snapshot

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
        yield AlertBar(id="alerts")
        with VerticalScroll(id="body"):
            with Horizontal(id="top"):
                yield MemoryPanel(id="memory")
                with Vertical(id="side"):
                    yield BreakerPanel(id="breaker")
                    yield BatchPanel(id="batch")
            yield ProgressPanel(id="progress")
            with Vertical(id="lower"):
                yield ReportBanner(id="banner")
                yield MemoryChart(id="chart")
                yield GcLog(id="gclog", time_format=self._time_format)
        yield Footer(id="footer", compact=True)

    @property
    def gc_log(self) -> GcLog:
        return self.query_one(GcLog)

    @property
    def alerts(self) -> AlertBar:
        return self.query_one(AlertBar)

    def show_alerts(self, lines: list[str]) -> None:
        self.alerts.show(lines)
        self.refresh_bindings()

    def action_dismiss_alerts(self) -> None:
        self.alerts.dismiss()
        self.refresh_bindings()

    @property
    def banner(self) -> ReportBanner:
        return self.query_one(ReportBanner)

    @property
    def chart(self) -> MemoryChart:
        return self.query_one(MemoryChart)

    @property
    def chart_on(self) -> bool:
        return self.show_chart if self.show_chart is not None else self.tall

    def on_mount(self) -> None:
        self.apply_layout()

    def on_resize(self, _event: Resize) -> None:
        self.apply_layout()
        self.redraw_chart()

    def watch_snapshot(self, s: RunSnapshot | None) -> None:
        """Hand every panel the same snapshot; derive what the keys depend on."""
        if s is None:
            return
        self.query_one(RunHeader).show(s)
        self.query_one("#body").set_class(s.headroom is not None, "-system")  # one more memory line
        self.query_one(MemoryPanel).show(s)
        self.query_one(BreakerPanel).show(s)
        self.query_one(BatchPanel).show(s)
        self.query_one(ProgressPanel).show(s)
        if s.workers:
            self.show_workers(s)
        m = s.memory
        self.history.extend(m.history)
        self.chart.show(self.history.points, m.time, m.warning_bytes, m.max_bytes)
        app = self.host
        self.job = JobState(
            paused=s.paused, over=s.finished or app.report is not None, stopping=s.stopping or app.quitting
        )

    def show_workers(self, s: RunSnapshot) -> None:
        """A cluster run's rows, one per worker: the panel is mounted with the first rows, above the log."""
        panels = self.query(WorkersPanel)
        if panels:
            panels.first().show(s)
            return
        panel = WorkersPanel(id="workers")
        panel.show(s)
        self.query_one("#lower").mount(panel, before=0)
        self.apply_layout()

    def redraw_chart(self) -> None:
        """Draw the chart now (it is otherwise redrawn at most once a second)."""
        if (s := self.snapshot) is not None:
            m = s.memory
            self.chart.show(self.history.points, m.time, m.warning_bytes, m.max_bytes, force=True)

    def show_report(self, report: RunReport) -> None:
        self.finished = True
        self.banner.show_report(report)
        self.apply_layout()

    def show_stopping(self) -> None:
        self.banner.show_stopping()
        self.apply_layout()

    def watch_show_chart(self) -> None:
        self.apply_layout()
        self.redraw_chart()

    def watch_log_after_finish(self) -> None:
        self.apply_layout()

    def watch_log_first(self) -> None:
        self.apply_layout()

    def l_does(self) -> str:
        """What l does now (an action's name): the one rule for l's footer label, its key and its answer."""
        if self.tall:
            return "log_why"  # chart, report and log are all on screen
        if self.chart_on:
            return "show_log"
        if self.job.over:
            return "show_report" if self.log_after_finish else "show_log"
        if self.narrow:
            return "hide_log" if self.log_first else "show_log"
        return "log_why"

    def apply_layout(self) -> None:
        width, height = self.size
        self.tall = tall = height >= TALL_HEIGHT
        body = self.query_one("#body")
        self.narrow = width < NARROW_WIDTH
        body.set_class(self.narrow, "-narrow")
        body.set_class(tall, "-tall")
        # The footer must keep q (and a viewer's d) visible: the palette hint goes first when columns run out.
        self.query_one(Footer).show_command_palette = width >= (92 if self.host.attached_to else 80)
        chart_on = self.chart_on
        banner = self.banner
        if tall:
            views = (chart_on, banner.has_text, True)
        elif chart_on:
            views = (True, False, False)
        elif self.finished and not self.log_after_finish:
            views = (False, True, False)
        else:
            # While stopping, the short 'committing' banner sits above the log.
            views = (False, banner.has_text and not self.finished, True)
        narrow = width < NARROW_WIDTH
        self.chart.display, banner.display, self.gc_log.display = views
        for workers in self.query(WorkersPanel):  # a short terminal shows them with the log, not the chart
            workers.display = tall or views[2]
        # The progress panel always stays. A short, narrow terminal gives the chart, the run report or
        # (when l asks) the log the memory panel's rows, so what the state needs is on screen without
        # scrolling (the chart shows memory over the whole run, levels included).
        self.query_one(ProgressPanel).display = True
        lower_only = (
            not tall and narrow and (views[0] or (self.finished and views[1]) or (views[2] and self.log_first_now))
        )
        self.query_one(MemoryPanel).display = not lower_only
        body.set_class(lower_only, "-lower-only")
        if lower_only:
            body.scroll_home(animate=False)
        banner.set_class(self.finished and not tall, "-fill")

    @property
    def log_first_now(self) -> bool:
        """The log takes the memory panel's place: asked for while running, or l after the run."""
        return self.log_first or (self.finished and self.log_after_finish)

    # -- keys -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """True shows a key, False hides it, None shows it greyed out (nothing to act on)."""
        if action == "quiet":  # c and b on a narrow terminal, kept out of the footer
            return self._offered(str(parameters[0]), ()) if self.narrow else False
        if action in FOOTER_SPARE and self.narrow:
            return False
        return self._offered(action, parameters)

    def _offered(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        job = self.job
        if action == "dismiss_alerts":
            return self.alerts.showing
        if action == "pause":
            return False if job.over or job.paused else None if job.stopping else True
        if action == "resume":
            return (None if job.stopping else True) if job.paused and not job.over else False
        if action in ("cleanup", "thresholds", "breaker_step", "batch_limits"):
            # Hidden once the job is over, so the footer keeps room for q at 80 columns.
            return False if job.over else None if job.stopping else True
        if action in ("show_log", "show_report", "hide_log", "log_why"):
            return action == self.l_does()
        return True

    def action_quiet(self, action: str) -> None:
        getattr(self, f"action_{action}")()

    def action_pause(self) -> None:
        self.host.pause_job()

    def action_resume(self) -> None:
        self.host.resume_job()

    def action_cleanup(self) -> None:
        self.host.request_cleanup()

    def action_thresholds(self) -> None:
        self.host.edit_thresholds()

    def action_breaker_step(self, direction: int) -> None:
        self.host.step_breaker(direction)

    def action_batch_limits(self) -> None:
        self.host.edit_batch_limits()

    def action_toggle_chart(self) -> None:
        self.show_chart = not self.chart.display

    def action_show_log(self) -> None:
        self.show_chart = False if self.chart_on else self.show_chart
        if self.job.over:
            self.log_after_finish = True
        elif self.narrow:
            self.log_first = True

    def action_hide_log(self) -> None:
        self.log_first = False

    def action_log_why(self) -> None:
        if self.tall:
            why = "The log, the chart and the run report all fit on this screen"
        else:
            why = "The log is on screen; once the run is over l switches between it and the run report"
        self.notify(why, timeout=4)

    def action_show_report(self) -> None:
        self.log_after_finish = False

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen([self, self.app]))

    def action_request_quit(self) -> None:
        self.host.action_request_quit()
