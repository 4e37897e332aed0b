"""Ask before quitting a running job; confirming stops it after the batch in flight is committed."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


class QuitScreen(ModalScreen[bool]):
    BINDINGS = [
        Binding("y", "confirm", "Stop and quit"),  # (a second Ctrl-C confirms too: see the app's interrupt)
        Binding("n,escape", "cancel", "Keep running"),
    ]

    def __init__(self, detail: str = "") -> None:
        super().__init__()
        self._detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Stop the job and quit?", classes="dialog-title")
            yield Static("The batch in flight is finished and committed first: nothing done is lost, "
                         "and a rerun resumes where this one stopped." + (f"\n{self._detail}" if self._detail else ""),
                         classes="dialog-hint", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Stop and quit (y)", id="confirm", variant="error", compact=True)
                yield Button("Keep running (n)", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "confirm")

    def action_confirm(self) -> None:
        self.dismiss(True)

    def action_cancel(self) -> None:
        self.dismiss(False)
