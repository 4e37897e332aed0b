"""After the job ends: a banner with the outcome and the same run report the headless face prints."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static

from memtui.records import RunReport

_HEADLINE = {
    "success": ("✔ Run finished", "$success"),
    "interrupted": ("Stopped: finished batches committed, a rerun resumes", "$warning"),
    "aborted": ("✖ Aborted by the breaker after committing; a rerun resumes", "$error"),
    "failed": ("✖ Run failed", "$error"),
}


class ReportBanner(Static):
    has_text = False

    def on_mount(self) -> None:
        self.border_title = "Run report"

    def show_stopping(self) -> None:
        self.has_text = True
        self.set_classes("-stopping")
        self.border_title = "Stopping"
        self.update(Content.assemble(("Stopping: ", "bold $warning"), "committing the batch in flight, then quitting…"))

    def show_report(self, report: RunReport) -> None:
        status = report.status
        headline, style = _HEADLINE.get(status, (f"Run {status}", "$error"))
        if report.memory_floor_gb is not None:
            headline = f"✖ Stopped: memory stays at {report.memory_floor_gb:.2f}GB, above the reset level"
        self.has_text = True
        self.set_classes(f"-{status}")
        self.border_title = Content.assemble((headline, f"bold {style}"))
        self.border_subtitle = "q quits"
        self.update(Content("\n").join([Content(line) for line in report.summary_lines()]))
