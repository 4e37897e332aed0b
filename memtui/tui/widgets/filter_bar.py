"""The process table's filter line: what is typed narrows the table at once.

Enter keeps the filter and hands the keys back to the table; Escape clears it.
The app listens for ``Input.Changed`` (live narrowing), ``Input.Submitted``
and ``FilterBar.Cleared``.
"""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import Input


class FilterBar(Input):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "submit", "Keep filter", tooltip="Keep the filter: the keys go back to the table"),
        Binding("escape", "clear", "Clear filter", tooltip="Clear the filter: every row again"),
    ]

    class Cleared(Message):
        """Escape in the filter line: the filter is gone."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(placeholder="filter by name or pid · Enter keeps it · Esc clears it", id=id)

    def action_clear(self) -> None:
        self.value = ""
        self.post_message(self.Cleared())
