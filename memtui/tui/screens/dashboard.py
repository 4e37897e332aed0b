"""The main screen: every panel, and how they reflow for the terminal's size.

Narrow terminals put the side panels under the memory panel and let the body
scroll. Short ones (below TALL_HEIGHT rows) show one thing at a time in the
lower area: the chart if toggled on, else the run report once the job is over
(l flips to the log), else the log. Tall ones show chart, report and log together.
"""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.events import Resize
from textual.screen import Screen
from textual.widgets import Footer

from memtui.records import RunReport
from memtui.runner import RunSnapshot
from memtui.tui.history import RssHistory
from memtui.tui.widgets import (BatchPanel, BreakerPanel, GcLog, MemoryChart, MemoryPanel, ProgressPanel,
                                ReportBanner, RunHeader)
from memtui.tui.widgets.gc_log import local_clock

#: Below this many columns the side panels move under the memory panel.
NARROW_WIDTH = 76
#: From this many rows up the chart fits beside the log and is shown by default.
TALL_HEIGHT = 34


class DashboardScreen(Screen):
    # Nothing focused at start: every key reaches the app's bindings, and a narrow
    # terminal shows the top of the body. Tab focuses the log (or the body) to scroll.
    AUTO_FOCUS = None
    def __init__(self, *, time_format: Callable[[float], str] = local_clock) -> None:
        super().__init__(id="dashboard")
        self._time_format = time_format
        self.history = RssHistory()
        self.show_chart: bool | None = None  # None: decide from the terminal height
        self.log_after_finish = False  # short terminals show the report once done; l flips to the log
        self.finished = False
        self.last: RunSnapshot | None = None

    def compose(self) -> ComposeResult:
        yield RunHeader(id="header")
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
    def banner(self) -> ReportBanner:
        return self.query_one(ReportBanner)

    @property
    def chart(self) -> MemoryChart:
        return self.query_one(MemoryChart)

    @property
    def tall(self) -> bool:
        return self.size.height >= TALL_HEIGHT

    def on_mount(self) -> None:
        self.apply_layout()

    def on_resize(self, _event: Resize) -> None:
        self.apply_layout()
        if self.last is not None:
            self.show(self.last, force_chart=True)

    def show(self, s: RunSnapshot, *, force_chart: bool = False) -> None:
        """Hand every panel the same snapshot."""
        self.last = s
        self.query_one(RunHeader).show(s)
        self.query_one(MemoryPanel).show(s)
        self.query_one(BreakerPanel).show(s)
        self.query_one(BatchPanel).show(s)
        self.query_one(ProgressPanel).show(s)
        m = s.memory
        self.history.extend(m.history)
        self.chart.show(self.history.points, m.time, m.warning_bytes, m.max_bytes, force=force_chart)

    def show_report(self, report: RunReport) -> None:
        self.finished = True
        self.banner.show_report(report)
        self.apply_layout()

    def show_stopping(self) -> None:
        self.banner.show_stopping()
        self.apply_layout()

    def toggle_chart(self) -> None:
        self.show_chart = not self.chart.display
        self.apply_layout()
        if self.last is not None:
            self.show(self.last, force_chart=True)

    def set_log_after_finish(self, value: bool) -> None:
        self.log_after_finish = value
        self.apply_layout()

    def apply_layout(self) -> None:
        width, height = self.size
        tall = height >= TALL_HEIGHT
        body = self.query_one("#body")
        body.set_class(width < NARROW_WIDTH, "-narrow")
        body.set_class(tall, "-tall")
        # The footer must keep q visible: the palette hint goes first when columns run out.
        self.query_one(Footer).show_command_palette = width >= 80
        chart_on = self.show_chart if self.show_chart is not None else tall
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
        self.chart.display, banner.display, self.gc_log.display = views
        # A short terminal gives the chart the progress panel's rows too: a 4-row plot misplaces lines.
        self.query_one(ProgressPanel).display = tall or not views[0]
        banner.set_class(self.finished and not tall, "-fill")
        self.app.refresh_bindings()
