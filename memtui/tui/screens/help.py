"""What every key does and how to read the panels, for the operator woken up at 3 a.m."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

KEYS = [
    ("p  space", "pause / resume: a pause holds after the sub-batch in flight; panels keep updating"),
    ("c", "clean up now: gc, hand freed heap back to the OS, clear model caches (see the GC log)"),
    ("t", "thresholds: warning and breaker levels, in GB, MB or % of the memory limit"),
    ("+  -", "raise / lower the breaker level by 0.1 GB"),
    ("b", "batch-size limits: the size at warning (min) and when memory is normal (max)"),
    ("g", "memory chart for the whole run (in place of the log on small screens)"),
    ("l", "once the run is over on a small screen: flip between the run report and the log"),
    ("tab", "focus the log, then arrows / page keys scroll it"),
    ("ctrl+p", "command palette: every action and every theme"),
    ("?", "this help"),
    ("q  ctrl+c", "quit: asks first, then commits the batch in flight (a rerun resumes)"),
]

PANELS = [
    ("Memory", "RSS over the last minute, scaled to the breaker level; green normal, amber warning, "
               "red over the breaker. 'to breaker' is the time left at the recent slope."),
    ("Breaker", "CLOSED normal · WARNING batches shrink to the minimum · OPEN no new batches, cleanups "
                "and backoff until memory stays low · HALF-OPEN one probe batch."),
    ("Batch", "domains per batch now (0 while the breaker is open), its limits, batches done, responses/s."),
    ("Progress", "responses and domains done of total, elapsed, ETA, the batch in flight."),
    ("GC log", "every cleanup (objects, before -> after, freed), warning, breaker change and command; "
               "newest last. Tab focuses it for scrolling."),
]


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog help"):
            yield Label("memtui: keys and panels", classes="dialog-title")
            with VerticalScroll():
                # Two-column grids, so a long explanation wraps beside its key, not under it.
                with Grid(classes="help-grid"):
                    for key, text in KEYS:
                        yield Static(Content.styled(key, "bold $accent"), classes="help-key")
                        yield Static(text, markup=False)
                with Grid(classes="help-grid"):
                    for name, text in PANELS:
                        yield Static(Content.styled(name, "bold $primary"), classes="help-key")
                        yield Static(text, markup=False)
            yield Static("Esc, ? or q closes", classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
