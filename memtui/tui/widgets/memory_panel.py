"""Memory at a glance: the last minute as a sparkline, then current, peak, levels, limit, trend."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from memtui.memory.units import GB, format_bytes
from memtui.runner import RunSnapshot
from memtui.tui.text import STATE_CLASS, STATE_STYLE, format_duration, gb
from memtui.tui.widgets.memory_sparkline import MemorySparkline
from memtui.tui.widgets.panel import Readout

#: A breaker further away than this at the recent slope is noise on a flat line, not a trend.
STEADY_AFTER_S = 3600.0


class MemoryPanel(Vertical):
    def compose(self) -> ComposeResult:
        yield MemorySparkline(id="memory-sparkline")
        yield Readout(id="memory-text", markup=False)

    def on_mount(self) -> None:
        self.border_title = "Memory"
        self.border_subtitle = "last 60s"

    def show(self, s: RunSnapshot) -> None:
        m = s.memory
        self.set_classes_for(m.state)
        spark = self.query_one(MemorySparkline)
        spark.show([rss for _, rss in m.history], m.warning_bytes, m.max_bytes)
        if m.history:
            span = m.history[-1][0] - m.history[0][0]
            floor, top = spark.scale
            self.border_subtitle = f"{floor / GB:.1f}–{top / GB:.1f}GB · last {format_duration(span)}"
        state = STATE_STYLE[m.state]
        limit = m.limit
        if limit is not None and limit.bytes:
            limit_line = Content.assemble(("limit ", "$text-muted"), format_bytes(limit.bytes).replace(" ", ""),
                                          (f" from {limit.source}", "$text-muted"))
        else:
            limit_line = Content.styled("limit unknown (no cgroup or rlimit found)", "$text-muted")
        self.query_one("#memory-text", Readout).text = Content("\n").join([
            Content.assemble(("RSS ", "$text-muted"), (gb(m.rss_bytes), f"bold {state}"),
                             ("  peak ", "$text-muted"), gb(m.peak_bytes)),
            Content.assemble(("warning ", "$warning"), gb(m.warning_bytes),
                             ("  breaker ", "$error"), gb(m.max_bytes)),
            limit_line,
            self._trend(s),
        ])

    def set_classes_for(self, state) -> None:
        for cls in STATE_CLASS.values():
            self.set_class(cls == STATE_CLASS[state], cls)

    @staticmethod
    def _trend(s: RunSnapshot) -> Content:
        """Time to the breaker at the recent slope: the number that says 'act now' or 'sleep on'."""
        m = s.memory
        if s.finished:
            return Content.assemble(("time to breaker ", "$text-muted"), "— (the run is over)")
        if m.rss_bytes >= m.max_bytes:
            return Content.styled("at or above the breaker level", "bold $error")
        eta = m.seconds_to_limit()
        if eta is None or eta > STEADY_AFTER_S:
            return Content.assemble(("time to breaker ", "$text-muted"), "— (not rising)")
        style = "bold $error" if eta < 60 else "$warning" if eta < 600 else ""
        return Content.assemble(("time to breaker ", "$text-muted"), (f"~{format_duration(eta)}", style),
                                (" at this slope", "$text-muted"))
