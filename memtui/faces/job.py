"""The headless parts of the embedding job (the Runner): progress and summary lines in the guide's style."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memtui.events import BreakerChanged, CleanupRan, Event, MemoryWarning, PhaseChanged
from memtui.faces.headless import HeadlessParts
from memtui.records import RunReport

if TYPE_CHECKING:  # the runner pulls in numpy; the faces import without it
    from memtui.runner import RunSnapshot

# These the memory core already logs itself (same words); printing the events too would say it twice.
_LOGGED_BY_CORE = (MemoryWarning, CleanupRan, BreakerChanged)


def progress_line(s: RunSnapshot) -> str:
    done = s.responses_done
    pct = 100.0 * done / s.items_total if s.items_total else 0.0
    m = s.memory
    state = "paused" if s.paused else s.phase
    h = s.headroom
    headroom = f" · headroom {h.describe()}{' (below one batch)' if h.low else ''}" if h is not None else ""
    items, units = s.words
    return (
        f"⏳ {done}/{s.items_total} {items} ({pct:.1f}%) · {s.units_done}/{s.units_total} {units} · "
        f"{s.items_per_s:.1f}/s · ETA {s.eta_text} · "
        f"mem {m.rss_gb:.2f}GB peak {m.peak_gb:.2f}GB{headroom} · breaker {m.state.label} · batch {s.batch_size} · "
        f"{state}"
    )


#: The run's summary lines (the report words itself: the TUI's report panel shows the same lines).
summary_lines = RunReport.summary_lines


def shows(event: Event) -> bool:
    """Every event but those the memory core logs itself and the phases the progress lines say."""
    if isinstance(event, _LOGGED_BY_CORE):
        return False
    return not (isinstance(event, PhaseChanged) and event.phase in ("running", "success"))


HEADLESS = HeadlessParts(
    thread_name="memtui-runner",
    stopping="finishing the sub-batch in flight and committing",
    hard_exit_note=" (committed batches are safe)",
    summary=summary_lines,
    progress=progress_line,
    shows=shows,
)
