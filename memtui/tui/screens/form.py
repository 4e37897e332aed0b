"""A two-field dialog that applies on Enter and stays open with a message on bad input.

The dialog never touches the job: the app hands it an ``apply`` callable that
returns None on success or a one-line error (nothing applied) to show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

Apply = Callable[[str, str], "str | None"]


class Field(NamedTuple):
    """One row of the dialog: label | input | explanation."""

    id: str
    label: str
    explanation: str


class TwoFieldScreen(ModalScreen[bool]):
    """Base for the thresholds and batch-limits dialogs; dismisses True once applied."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    TITLE_TEXT = ""
    FIELDS: tuple[Field, Field] = (Field("first", "", ""), Field("second", "", ""))
    HINT = ""

    def __init__(self, first: str, second: str, apply: Apply) -> None:
        super().__init__()
        self._values = (first, second)
        self._apply = apply

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.TITLE_TEXT, classes="dialog-title")
            for field, value in zip(self.FIELDS, self._values):
                with Horizontal(classes="dialog-row"):
                    yield Label(field.label, classes="dialog-label")
                    yield Input(value=value, id=field.id, compact=True)
                    yield Label(field.explanation, classes="dialog-explain")
            yield Static(self.HINT, classes="dialog-hint", markup=False)
            yield Static("", classes="dialog-error", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply", id="apply", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "apply":
            self.submit()
        else:
            self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)

    def submit(self) -> None:
        first, second = (self.query_one(f"#{field.id}", Input).value.strip() for field in self.FIELDS)
        error = self._apply(first, second)
        if error:
            self.show_error(error)
        else:
            self.dismiss(True)

    def show_error(self, message: str) -> None:
        box = self.query_one(".dialog-error", Static)
        box.update(f"✖ {message} (nothing changed)")
        self.query_one(f"#{self.FIELDS[0].id}", Input).focus()
        box.add_class("-visible")
