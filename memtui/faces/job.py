"""The headless parts of the embedding job (the Runner): progress and summary lines in the guide's style."""

from __future__ import annotations

from typing import TYPE_CHECKING

from memtui.events import BreakerChanged, CleanupRan, Event, MemoryWarning, PhaseChanged
from memtui.faces.headless import HeadlessParts
from memtui.memory.units import format_duration

if TYPE_CHECKING:  # the runner pulls in numpy; the faces import without it
    from memtui.records import RunReport
    from memtui.runner import RunSnapshot

# These the memory core already logs itself (same words); printing the events too would say it twice.
_LOGGED_BY_CORE = (MemoryWarning, CleanupRan, BreakerChanged)


def progress_line(s: RunSnapshot) -> str:
    pct = 100.0 * s.items_done / s.items_total if s.items_total else 0.0
    m = s.memory
    state = "paused" if s.paused else s.phase
    return (f"⏳ {s.items_done}/{s.items_total} responses ({pct:.1f}%) · {s.units_done}/{s.units_total} domains · "
            f"{s.items_per_s:.1f}/s · ETA {format_duration(s.eta_s)} · "
            f"mem {m.rss_gb:.2f}GB peak {m.peak_gb:.2f}GB · breaker {m.state.label} · batch {s.batch_size} · {state}")


def summary_lines(report: RunReport) -> list[str]:
    r = report
    lines = [
        f"Run {r.status} ({r.mode}): {r.items} responses embedded or checked in {r.duration_s:.1f}s "
        f"({r.items_per_s:.1f}/s), {r.items_skipped} already cached",
        f"Domains {r.domains_done}/{r.domains_total} · batches {r.batches} · memory now "
        f"{r.memory_usage_gb:.2f}GB, peak {r.peak_memory_gb:.2f}GB · warnings {r.memory_warnings} · "
        f"breaker trips {r.breaker_trips} · cleanups {r.cleanups}",
    ]
    if r.limit_gb:
        lines.append(f"Memory limit {r.limit_gb:.1f}GB from {r.limit_source} · thresholds warning "
                     f"{r.warning_memory_gb:.2f}GB, breaker {r.max_memory_gb:.2f}GB")
    if r.bad_lines:
        lines.append(f"{r.bad_lines} bad input line(s) skipped")
    if r.unprocessed_domains:
        names = ", ".join(r.unprocessed[:5])
        more = f" and {r.unprocessed_domains - 5} more" if r.unprocessed_domains > 5 else ""
        how = "rerun with the levels above to resume" if r.memory_floor_gb else "rerun to resume"
        lines.append(f"Not processed: {r.unprocessed_domains} domain(s): {names}{more} ({how})")
    if r.reason:
        lines.append(f"Why: {r.reason}")
    if r.error:
        lines.append(f"Error: {r.error}")
    lines.append(f"Cache: {r.cache}")
    return lines


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
