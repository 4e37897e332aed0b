"""Memory at a glance: the last minute as a sparkline, then current, peak, levels, limit (or the headroom
to the limit that kills, with the system, cgroup and swap readings), trend."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

from memtui.memory.breaker import BreakerState
from memtui.memory.monitor import least_squares_slope
from memtui.memory.units import GB, MB
from memtui.runner import RunSnapshot
from memtui.tui.headroom_text import headroom_line, readings_line
from memtui.tui.text import STATE_CLASS, STATE_STYLE, format_duration, gb
from memtui.tui.widgets.memory_sparkline import MemorySparkline
from memtui.tui.widgets.panel import Readout

#: A breaker further away than this at the recent slope is noise on a flat line, not a trend.
STEADY_AFTER_S = 3600.0
#: How long the running job's memory must have been sampled before a trend is told, and over what.
TREND_WINDOW_S = 30.0
#: Less change than this over the window is flat (a sawtooth's noise), not a trend.
FLAT_BYTES = 32 * MB


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
            self.border_subtitle = f"{floor / GB:.0f}–{top / GB:.1f}GB ⎺ levels · last {format_duration(span)}"
        state = STATE_STYLE[m.state]
        limit = m.limit
        if limit is not None and limit.bytes:
            limit_line = Content.assemble(
                ("limit ", "$text-muted"), gb(limit.bytes), (f" from {limit.source}", "$text-muted")
            )
        else:
            limit_line = Content.styled("limit unknown (no cgroup or rlimit found)", "$text-muted")
        # With the system read (memtui.memory.headroom), the headroom to the limit that binds and the
        # readings behind it take the limit line's place.
        h = s.headroom
        self.set_class(h is not None and h.low, "-headroom-low")
        # A cluster run's panel is the client's (the workers' memory is the workers panel's): say whose.
        title = "Memory · client" if s.workers else "Memory"
        self.border_title = f"{title} · headroom below one batch" if h is not None and h.low else title
        text = self.query_one("#memory-text", Readout)
        limit_lines = [limit_line] if h is None else [headroom_line(h), readings_line(h, text.content_size.width)]
        text.text = Content("\n").join(
            [
                Content.assemble(
                    ("RSS ", "$text-muted"),
                    (gb(m.rss_bytes), f"bold {state}"),
                    ("  peak ", "$text-muted"),
                    gb(m.peak_bytes),
                ),
                Content.assemble(
                    ("warning ", "$warning"), gb(m.warning_bytes), ("  breaker ", "$error"), gb(m.max_bytes)
                ),
                *limit_lines,
                self._trend(s),
            ]
        )

    def set_classes_for(self, state) -> None:
        for cls in STATE_CLASS.values():
            self.set_class(cls == STATE_CLASS[state], cls)

    @staticmethod
    def _trend(s: RunSnapshot) -> Content:
        """Time to the breaker, only from a steady rise of the running job; else flat, falling or why not."""
        m = s.memory
        label = ("time to breaker ", "$text-muted")
        if s.finished:
            return Content.assemble(label, "— (the run is over)")
        if m.rss_bytes >= m.max_bytes:
            return Content.styled("at or above the breaker level", "bold $error")
        if s.paused or s.phase == "paused":
            return Content.assemble(label, "— (paused)")
        if m.breaker.state is BreakerState.OPEN:
            return Content.assemble(label, "— (breaker open)")
        if s.running_since is None:
            return Content.assemble(label, f"— ({s.phase})")
        kind, eta = trend([(t, r) for t, r in m.history if t >= s.running_since], m.rss_bytes, m.max_bytes)
        if kind != "rising" or eta is None or eta > STEADY_AFTER_S:
            return Content.assemble(label, f"— ({kind})")
        style = "bold $error" if eta < 60 else "$warning" if eta < 600 else ""
        return Content.assemble(label, (f"~{format_duration(eta)}", style), (" at this slope", "$text-muted"))


def trend(
    history: list[tuple[float, int]], rss: int, level: int, window_s: float = TREND_WINDOW_S
) -> tuple[str, float | None]:
    """("rising", seconds to ``level``) only for a steady rise; else ("flat" | "falling" | "settling", None).

    Steady: at least ``window_s`` of samples, and both halves of the window rise on their own
    (a load spike, a single allocation or a sawtooth's peak rises in one half only), by more than
    ``FLAT_BYTES`` over the window.
    """
    if not history or history[-1][0] - history[0][0] < window_s:
        return "settling", None
    end = history[-1][0]
    points = [(t, r) for t, r in history if t >= end - window_s]
    mid = end - window_s / 2
    halves = [[p for p in points if p[0] < mid], [p for p in points if p[0] >= mid]]
    slopes = [least_squares_slope(h) for h in halves]
    whole = least_squares_slope(points)
    if whole is None or any(x is None for x in slopes):
        return "settling", None
    if abs(whole) * window_s < FLAT_BYTES:
        return "flat", None
    if whole < 0:
        return "falling", None
    if any(x is not None and x <= 0 for x in slopes):
        return "flat", None
    return "rising", max(0.0, (level - rss) / whole)
