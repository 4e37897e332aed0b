"""The circuit breaker's state in words and color, how long it has been there, and its trips.

While the breaker holds the job it says what it waits for and when the run gives up;
once the run has ended on memtui's own floor, that floor and the flag to change.
"""

from __future__ import annotations

from textual.content import Content

from memtui.memory.breaker import BreakerState
from memtui.runner import RunSnapshot
from memtui.tui.text import STATE_CLASS, STATE_STYLE, format_duration, gb
from memtui.tui.widgets.panel import Panel


class BreakerPanel(Panel):
    def on_mount(self) -> None:
        self.border_title = "Breaker"

    def show(self, s: RunSnapshot) -> None:
        m = s.memory
        b = m.breaker
        for cls in STATE_CLASS.values():
            self.set_class(cls == STATE_CLASS[b.state], cls)
        style = STATE_STYLE[b.state]
        first = Content.assemble(
            ("● ", style),
            (b.state.label, f"bold {style}"),
            ("  for ", "$text-muted"),
            format_duration(b.time_in_state_s),
        )
        report = s.report
        if report is not None and report.memory_floor_gb is not None:
            first = Content.assemble(
                ("● ", style),
                (b.state.label, f"bold {style}"),
                ("  floor ", "$text-muted"),
                (f"{report.memory_floor_gb:.2f}GB", "bold $error"),
            )
            second = Content.assemble(("raise ", "$text-muted"), ("--max-memory", "bold"))
        elif b.state is BreakerState.OPEN and s.breaker_gives_up_in_s is not None:
            first = Content.assemble(
                ("● ", style),
                (b.state.label, f"bold {style}"),
                ("  gives up in ", "$text-muted"),
                (clock(s.breaker_gives_up_in_s), "bold"),
            )
            second = Content.assemble(
                ("waits for <", "$text-muted"),
                gb(m.reset_bytes),
                (f" for {format_duration(b.required_hold_s)}", "$text-muted"),
            )
        elif b.state is BreakerState.OPEN:
            second = Content.assemble(
                ("back below ", "$text-muted"),
                gb(m.reset_bytes),
                (f" for {format_duration(b.required_hold_s)}", "$text-muted"),
            )
        else:
            second = Content.assemble(
                ("trips ", "$text-muted"), str(b.trips), ("  warnings ", "$text-muted"), str(m.warnings)
            )
        self.set_text(Content("\n").join([first, second]))


def clock(seconds: float) -> str:
    """M:SS, rounded up: a countdown shows 0:00 only when nothing is left."""
    whole = max(0, int(-(-seconds // 1)))
    return f"{whole // 60}:{whole % 60:02d}"
