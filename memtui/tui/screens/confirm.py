"""A yes/no question before anything that cannot be taken back (quitting a job, signalling a process)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Dismisses with True on y (or the confirm button), False on n/Esc; focus starts on the safe answer."""

    YES = "Yes"
    NO = "No"
    COMPACT = False
    BINDINGS = [Binding("y", "confirm", "Yes"), Binding("n,escape", "cancel", "No")]

    def __init__(self, question: str, detail: str) -> None:
        super().__init__()
        self._question = question
        self._detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self._question, classes="dialog-title")
            yield Static(self._detail, classes="dialog-hint", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(f"{self.YES} (y)", id="confirm", variant="error", compact=self.COMPACT)
                yield Button(f"{self.NO} (n)", id="cancel", compact=self.COMPACT)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
