"""Warnings the operator must read before the run goes on, kept on screen until dismissed (x).

What the setup logged as a warning before the TUI started (a --max-memory above
the memory limit the kernel enforces, thresholds lowered to fit it) would
otherwise have been printed under the alternate screen and seen only after
quitting; the GC log has every such line too, this bar keeps the weighty ones in view.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.content import Content
from textual.widgets import Static


class AlertBar(Static):
    """Hidden while empty; ``show`` adds lines, ``dismiss`` hides them all."""

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes, markup=False)
        self.lines: list[str] = []
        self.display = False

    def on_mount(self) -> None:
        self.border_title = "Before the run"
        self.border_subtitle = "x dismisses"

    def show(self, lines: Sequence[str]) -> None:
        self.lines.extend(lines)
        if self.lines:
            self.update(Content("\n").join([Content.assemble(("⚠ ", "bold $warning"), line) for line in self.lines]))
            self.display = True

    def dismiss(self) -> None:
        self.lines.clear()
        self.display = False

    @property
    def showing(self) -> bool:
        return bool(self.lines)
