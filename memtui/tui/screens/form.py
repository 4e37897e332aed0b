"""A dialog of a few fields that applies on Enter and stays open with a message on bad input.

The dialog never touches the job: the app hands it an ``apply`` callable that
returns None on success or a one-line error (nothing applied) to show.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, NamedTuple

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

Apply = Callable[..., "str | None"]  # one str per field, in order


class Field(NamedTuple):
    """One row of the dialog: label | input | explanation."""

    id: str
    label: str
    explanation: str


class TwoFieldScreen(ModalScreen[bool]):
    """Base for the thresholds and batch-limits dialogs (two fields or more); dismisses True once applied.

    Enter applies wherever the focus is (a field or a button): a priority binding, so no
    focused widget takes it first. Tab and Shift-Tab are priority bindings too (see BINDINGS).
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("enter", "apply", "Apply", priority=True),
        # Priority, so the focus moves before the app hands on the next key: keys that arrive in one
        # burst (a paste, a slow SSH link) go to the field they were typed for ("0.9<Tab>1.4").
        Binding("tab", "app.focus_next", "Next", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", "Previous", show=False, priority=True),
    ]
    TITLE_TEXT = ""
    FIELDS: tuple[Field, ...] = (Field("first", "", ""), Field("second", "", ""))
    HINT = ""

    def __init__(self, *values_and_apply: object) -> None:
        """``(first, second, ..., apply)``: one starting value per field, then the apply callable."""
        super().__init__()
        *values, apply = values_and_apply
        assert len(values) == len(self.FIELDS) and callable(apply)
        self._values = tuple(str(v) for v in values)
        self._apply: Apply = apply

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

    def action_apply(self) -> None:
        self.submit()

    def action_cancel(self) -> None:
        self.dismiss(False)

    def submit(self) -> None:
        values = [self.query_one(f"#{field.id}", Input).value.strip() for field in self.FIELDS]
        error = self._apply(*values)
        if error:
            self.show_error(error)
        else:
            self.dismiss(True)

    def show_error(self, message: str) -> None:
        box = self.query_one(".dialog-error", Static)
        box.update(f"✖ {message} (nothing changed)")
        self.query_one(f"#{self.FIELDS[0].id}", Input).focus()
        box.add_class("-visible")
