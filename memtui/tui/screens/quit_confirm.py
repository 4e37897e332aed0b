"""Ask before quitting a running job; confirming stops it after the batch in flight is committed."""

from __future__ import annotations

from typing import ClassVar

from textual.binding import Binding, BindingType

from memtui.tui.screens.confirm import ConfirmScreen


class QuitScreen(ConfirmScreen):
    YES = "Stop and quit"
    NO = "Keep running"
    COMPACT = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Stop and quit"),  # (a second Ctrl-C confirms too: see the app's interrupt)
        Binding("n,escape", "cancel", "Keep running"),
    ]

    def __init__(self, detail: str = "", *, job: bool = False) -> None:
        body = JOB_BODY if job else CACHE_BODY
        super().__init__("Stop the job and quit?", body + (f"\n{detail}" if detail else ""))


CACHE_BODY = (
    "The job stops after the sub-batch in flight and commits every vector made so far "
    "(unfinished domains' too); the rest of the batch is not embedded. A rerun embeds "
    "only what is missing."
)
#: A user's function (run --job) may never return: the stop waits for it only as long as --stop-grace.
JOB_BODY = (
    "The job stops after the call in flight and commits every result made so far. A call "
    "still running when the stop's grace (--stop-grace) runs out is left, and its batch is "
    "lost. A rerun calls the function only for what is missing."
)
