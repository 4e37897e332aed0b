"""What every key does and how to read the panels, for the operator woken up at 3 a.m.

The keys are read from the bindings (memtui.tui.keys): the screen that opens
the help hands over its own and the app's, so a new key shows up here by itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.dom import DOMNode
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from memtui.tui.keys import documented

#: Keys Textual binds itself (no memtui binding describes them), worth knowing anyway.
TEXTUAL_KEYS = [
    ("tab", "focus the log, then arrows / page keys scroll it"),
    ("^p", "command palette: every action and every theme"),
]

PANELS = [
    (
        "Memory",
        "RSS over the last minute on a fixed scale, 0 to a little above the breaker (the subtitle "
        "says it); the amber and red lines mark the warning and breaker levels (in one row, the breaker's "
        "line), and the two marks at the right edge show both always; green normal, amber "
        "warning, red over the breaker. 'headroom' is what is left before the limit that kills the job "
        "(the cgroup's, the system's available memory or RLIMIT_AS, whichever is least) against one "
        "batch's measured cost ('batch +'); red below it. Under it: the cgroup's usage/limit, available "
        "memory, swap. 'time to breaker' is told only for a steady rise of the running "
        "job; otherwise it says flat, falling, paused or why not.",
    ),
    (
        "Breaker",
        "CLOSED normal · WARNING batches shrink to the minimum · OPEN no new batches, cleanups "
        "and backoff until memory stays below the reset level (t sets it), with when the run gives "
        "up · HALF-OPEN one probe batch.",
    ),
    ("Batch", "domains per batch now (0 while the breaker is open), its limits, batches done, responses/s."),
    ("Progress", "responses and domains done of total, elapsed, ETA, the batch in flight."),
    (
        "GC log",
        "every cleanup (objects, before -> after, freed), warning, breaker change and command; "
        "newest last. Tab focuses it for scrolling.",
    ),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, bound: Iterable[DOMNode], panels: list[tuple[str, str]] | None = None) -> None:
        """``bound``: the nodes whose bindings to list (the screen that opens the help, then the app);
        ``panels``: what each part of the screen shows (the dashboard's by default)."""
        super().__init__()
        self._bound = list(bound)
        self._panels = PANELS if panels is None else panels

    def key_rows(self) -> list[tuple[str, str]]:
        """(keys, what they do): every documented binding, then Textual's own keys. A key bound to several
        actions (l: log, report or memory, whichever applies) is one row, each action on its own line."""
        rows: dict[str, list[str]] = {}
        for doc in documented(self._bound):
            keys = doc.key_display(self.app)
            if keys in rows and not any(binding.show for binding in doc.keys):
                continue  # a hidden fallback of a key listed already (l's "the log is on screen")
            rows.setdefault(keys, []).append(doc.tooltip)
        return [(keys, "\n".join(texts)) for keys, texts in rows.items()] + TEXTUAL_KEYS

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("memtui: keys and panels", classes="dialog-title")
            with VerticalScroll():
                # Two-column grids, so a long explanation wraps beside its key, not under it.
                with Grid(classes="help-grid"):
                    for key, text in self.key_rows():
                        yield Static(Content.styled(key, "bold $accent"), classes="help-key")
                        yield Static(text, markup=False)
                with Grid(classes="help-grid"):
                    for name, text in self._panels:
                        yield Static(Content.styled(name, "bold $primary"), classes="help-key")
                        yield Static(text, markup=False)
            yield Static("Esc, ? or q closes", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
