"""How far the run is: a bar, responses and domains done of total, elapsed, ETA, the batch in flight."""

from __future__ import annotations

from textual.content import Content

from memtui.runner import RunSnapshot
from memtui.tui.text import bar, count, format_duration
from memtui.tui.widgets.panel import Panel


class ProgressPanel(Panel):
    def on_mount(self) -> None:
        self.border_title = "Progress"

    def show(self, s: RunSnapshot) -> None:
        items, units = s.words
        unit = units[:-1]
        done = s.responses_done
        fraction = min(1.0, done / s.items_total) if s.items_total else (1.0 if s.finished else 0.0)
        pct = f" {fraction * 100:5.1f}%"
        width = max(4, self.content_size.width - len(pct)) if self.content_size.width else 40
        filled, empty = bar(fraction, width)
        bar_style = "$success" if s.finished and s.report and s.report.status == "success" else "$primary"
        line1 = Content.assemble((filled, bar_style), (empty, "$text-muted"), (pct, "bold"))
        line2 = Content.assemble(
            (count(done if s.finished else s.items_done), "bold"),
            ("/", "$text-muted"),
            count(s.items_total),
            (f" {items}", "$text-muted"),
            ("  ", ""),
            (count(s.units_done), "bold"),
            ("/", "$text-muted"),
            count(s.units_total),
            (f" {units}", "$text-muted"),
            (f"  ({count(s.items_skipped)} already {'done' if s.mode == 'job' else 'cached'})", "$text-muted")
            if s.items_skipped
            else ("", ""),
        )
        parts: list[tuple[str, str] | str] = [("elapsed ", "$text-muted"), format_duration(s.elapsed_s)]
        if s.finished and (partly := done - s.items_done) > 0:
            parts += [("  incl. ", "$text-muted"), count(partly), (f" of unfinished {units}", "$text-muted")]
        if not s.finished:
            parts += [("  ETA ", "$text-muted"), s.eta_text]
            if s.in_flight:
                embedded, total = s.in_flight_progress
                domains = f"{len(s.in_flight)} {unit}{'s' if len(s.in_flight) != 1 else ''}"
                if total:  # a cluster's workers report no per-text progress: the domains out are what is known
                    parts += [("  in flight ", "$text-muted"), f"{embedded}/{total}", (f" of {domains}", "$text-muted")]
                else:
                    parts += [("  in flight ", "$text-muted"), domains]
        self.set_text(Content("\n").join([line1, line2, Content.assemble(*parts)]))
