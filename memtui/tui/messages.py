"""Typed messages for what crosses threads into the app.

The job runs in a thread worker; it never touches widgets. When it returns,
the worker posts one of these (``post_message`` is thread-safe) and the app
reacts on its own thread.
"""

from __future__ import annotations

from textual.message import Message

from memtui.records import Report


class JobFinished(Message):
    """The runner returned its report (success, interrupted, aborted or failed)."""

    def __init__(self, report: Report) -> None:
        super().__init__()
        self.report = report


class JobCrashed(Message):
    """The worker died without a report (a bug: Runner.run() catches everything else)."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error
