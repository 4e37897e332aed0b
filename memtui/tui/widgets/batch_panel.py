"""Batch size now (what the breaker allows) within its limits, batches done, throughput."""

from __future__ import annotations

from textual.content import Content

from memtui.runner import RunSnapshot
from memtui.tui.widgets.panel import Panel


class BatchPanel(Panel):
    def on_mount(self) -> None:
        self.border_title = "Batch · domains"  # a worker's row counts texts: the units are named where both meet

    def show(self, s: RunSnapshot) -> None:
        self.border_title = f"Batch · {s.words[1]}"
        if s.finished:
            size = Content.styled("–", "$text-muted")
        elif s.batch_size == 0:
            size = Content.styled("0 (held)", "bold $error")
        elif s.batch_size < s.batch_max:
            size = Content.styled(str(s.batch_size), "bold $warning")
        else:
            size = Content.styled(str(s.batch_size), "bold")
        if s.in_flight and not s.finished:  # the batch actually running; the next one's size if it differs
            running = len(s.in_flight)
            size = Content.assemble(
                (str(running), "bold"), (f"→{s.batch_size}", "$warning") if s.batch_size != running else ""
            )
        first = Content.assemble(
            ("size ", "$text-muted"), size, ("  limits ", "$text-muted"), f"{s.batch_min}..{s.batch_max}"
        )
        per_s = s.report.items_per_s if s.report is not None else s.items_per_s  # once over: the report's
        rate = f"{per_s:.1f}" if per_s > 0 else "–"  # no rate until work is done
        second = Content.assemble(
            ("batches ", "$text-muted"), f"{s.batches:,}", ("  ", ""), rate, ("/s", "$text-muted")
        )
        self.set_text(Content("\n").join([first, second]))
