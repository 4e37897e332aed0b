"""The base of the fixed-size text panels: repaint only what changed, and without a relayout.

The app polls four times a second; most ticks change one number or none. An
unchanged panel costs nothing, and a changed one repaints in place: its size is
fixed by the stylesheet, so a layout pass over the whole screen is never needed.
"""

from __future__ import annotations

from textual.content import Content
from textual.widgets import Static


def set_text(widget: Static, content: Content, *, layout: bool = False) -> None:
    """Update a Static only if its text or styles changed (``layout`` if its size follows its text)."""
    if getattr(widget, "_memtui_last", None) != content:
        widget._memtui_last = content  # type: ignore[attr-defined]
        widget.update(content, layout=layout)


class Panel(Static):
    def set_text(self, content: Content) -> None:
        set_text(self, content)
