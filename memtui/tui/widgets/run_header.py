"""One line on top: what runs, from where, into which cache, and its phase."""

from __future__ import annotations

import os

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content

from memtui.memory.breaker import BreakerState
from memtui.records import backend_label
from memtui.runner import RunSnapshot
from memtui.tui.text import short_path
from memtui.tui.widgets.panel import FittedReadout, Readout

PHASE_STYLE = {
    "running": "$success",
    "success": "$success",
    "paused": "$warning",
    "pausing": "$warning",
    "loading model": "$primary",
    "scanning input": "$primary",
    "starting": "$primary",
    "waiting for memory": "$error",
    "stopping": "$warning",
    "resuming": "$accent",
    "interrupted": "$warning",
    "aborted": "$error",
    "failed": "$error",
    "run lost": "$error",
}


def phase_of(s: RunSnapshot) -> str:
    """What the job is doing, as the operator would say it (a requested pause is 'pausing' until it holds)."""
    if s.finished:
        return s.report.status if s.report else s.phase
    if s.stopping:
        return "stopping"
    if s.paused:
        return "paused" if s.phase == "paused" else "pausing"
    if s.phase == "waiting for memory" and s.memory.breaker.state is not BreakerState.OPEN:
        return "resuming"  # memory is back (HALF-OPEN): the probe batch starts at the next checkpoint
    return s.phase


def title_parts(s: RunSnapshot, width: int) -> tuple[str, str, str]:
    """(input, cache, model) shortened to fit ``width`` cells: the model goes first, then path heads."""
    model = s.model.rsplit("/", 1)[-1]
    backend = backend_label(s.backend)  # the exact default says nothing; another backend is news
    if backend:
        model += f" · {backend}"
    fixed = len("memtui ") + len(s.mode) + len("  ·  ") + len(" → ")
    inp, cache = short_path(s.input, 10_000), short_path(s.cache, 10_000)
    if fixed + len(inp) + len(cache) + len(model) + 5 > width:
        model = backend  # the model's name goes first; the backend stays (the cache's vectors depend on it)
    if fixed + len(inp) + len(cache) > width:
        inp = os.path.basename(s.input)
    room = width - fixed - len(inp) - (len(model) + 5 if model else 0)
    if room < 8:  # the input's name gives way too, so the backend at the end is never cut
        inp = short_path(inp, max(8, len(inp) - (8 - room)))
        room = width - fixed - len(inp) - (len(model) + 5 if model else 0)
    return inp, short_path(s.cache, max(8, room)), model


class RunHeader(Horizontal):
    def compose(self) -> ComposeResult:
        yield Readout(id="header-title", markup=False)
        yield FittedReadout(id="header-phase", markup=False)  # its width follows the phase

    def show(self, s: RunSnapshot) -> None:
        # A viewer whose run went away says so at once: its last frame's phase (RUNNING) is no longer true.
        phase = "run lost" if getattr(self.app, "lost", None) else phase_of(s)
        badge = Content.assemble(("● ", PHASE_STYLE.get(phase, "$primary")), (phase.upper(), "bold"))
        if viewer_of := getattr(self.app, "attached_to", None):  # a viewer says so, before anything it may cut
            badge = Content.assemble((f"viewer of {viewer_of}  ", "bold $accent"), badge)
        width = max(20, self.size.width - 2 - len(badge.plain) - 2)
        inp, cache, model = title_parts(s, width)
        self.query_one("#header-title", Readout).text = Content.assemble(
            ("memtui ", "bold $primary"),
            (s.mode, "bold"),
            ("  ·  ", "$text-muted"),
            inp,
            (" → ", "$text-muted"),
            cache,
            *((("  ·  ", "$text-muted"), (model, "$text-muted")) if model else ()),
        )
        self.query_one("#header-phase", Readout).text = badge
