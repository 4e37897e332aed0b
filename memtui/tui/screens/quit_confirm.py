"""Ask before quitting a running job; confirming stops it after the batch in flight is committed."""

from __future__ import annotations

from textual.binding import Binding

from memtui.tui.screens.confirm import ConfirmScreen


class QuitScreen(ConfirmScreen):
    YES = "Stop and quit"
    NO = "Keep running"
    COMPACT = True
    BINDINGS = [
        Binding("y", "confirm", "Stop and quit"),  # (a second Ctrl-C confirms too: see the app's interrupt)
        Binding("n,escape", "cancel", "Keep running"),
    ]

    def __init__(self, detail: str = "") -> None:
        super().__init__("Stop the job and quit?",
                         "The batch in flight is finished and committed first: nothing done is lost, "
                         "and a rerun resumes where this one stopped." + (f"\n{detail}" if detail else ""))
