"""The circuit breaker's state in words and color, how long it has been there, and its trips."""

from __future__ import annotations

from textual.content import Content

from memtui.memory.breaker import BreakerState
from memtui.runner import RunSnapshot
from memtui.tui.widgets.panel import Panel
from memtui.tui.text import STATE_CLASS, STATE_STYLE, format_duration, gb


class BreakerPanel(Panel):
    def on_mount(self) -> None:
        self.border_title = "Breaker"

    def show(self, s: RunSnapshot) -> None:
        m = s.memory
        b = m.breaker
        for cls in STATE_CLASS.values():
            self.set_class(cls == STATE_CLASS[b.state], cls)
        style = STATE_STYLE[b.state]
        first = Content.assemble(("● ", style), (b.state.label, f"bold {style}"),
                                 ("  for ", "$text-muted"), format_duration(b.time_in_state_s))
        if b.state is BreakerState.OPEN:
            second = Content.assemble(("back below ", "$text-muted"), gb(m.reset_bytes),
                                      (f" for {format_duration(b.required_hold_s)}", "$text-muted"))
        else:
            second = Content.assemble(("trips ", "$text-muted"), str(b.trips),
                                      ("  warnings ", "$text-muted"), str(m.warnings))
        self.set_text(Content("\n").join([first, second]))
