"""The base of the fixed-size text panels: repaint only what changed, and without a relayout.

The app polls four times a second; most ticks change one number or none. A
panel's text is a reactive, so Textual itself skips an unchanged text, and a
changed one repaints in place: its size is fixed by the stylesheet, so a layout
pass over the whole screen is never needed (``Readout.LAYOUT`` where it is).
"""

from __future__ import annotations

from textual.content import Content
from textual.reactive import var
from textual.widgets import Static


class Readout(Static):
    """A Static whose text is a reactive: setting the same text again costs nothing."""

    #: True where the widget's size follows its text (a relayout on each change).
    LAYOUT = False

    text: var[Content] = var(Content(""), init=False)

    def watch_text(self, text: Content) -> None:
        self.update(text, layout=self.LAYOUT)


class FittedReadout(Readout):
    """A Readout sized by its text (the header's phase badge)."""

    LAYOUT = True


class Panel(Readout):
    def set_text(self, content: Content) -> None:
        self.text = content
