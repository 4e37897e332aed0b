"""A job's progress, counted in one place: what is done, what is committed, the rate and the ETA.

The snapshot (``RunSnapshot``: the progress panel, the headless line, attached viewers) and the run
report read the same counts and the same rule:

* rates count working time only: the engine's clock with held spells left out
  (``EngineCore._active``; the Runner holds while paused);
* while the job is held (paused, or waiting for memory: the breaker open or the headroom brake on)
  there is no ETA (None: the faces say why), never an extrapolation from a rate that is not running;
* done work counts the batch in flight while it runs; the report's count is what the cache holds
  (``committed``: domains finished plus each unfinished one's latest count).

No lock of its own: the engine's lock guards it (every method: "lock held").
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any, TypedDict

from memtui.jobs.base import CommitResult, JobTotals
from memtui.jobs.input import BadLine

#: The phase while the breaker (or the headroom brake) holds the job.
WAITING_PHASE = "waiting for memory"
#: Phases that hold the job: their time is left out of the rate, and no ETA while in one (one rule).
HELD_PHASES = ("paused", WAITING_PHASE)
#: The recent rate's window, in seconds of working time.
RECENT_S = 30.0


class ReportCounts(TypedDict):
    """The run report's (``RunReport``'s) fields that come from the progress (typed: mypy checks the call)."""

    batches: int
    items: int
    responses_committed: int
    items_embedded: int
    items_skipped: int
    items_total: int
    items_per_s: float
    domains_done: int
    domains_total: int
    bad_lines: int
    bad_line_details: tuple[dict[str, Any], ...]


@dataclass
class Progress:
    """Counts of one run (the engine's lock held for every read and write)."""

    units_done: int = 0
    units_total: int = 0
    items_done: int = 0
    items_total: int = 0
    items_skipped: int = 0  # done before this run (resumed)
    items_embedded: int = 0
    bad_lines: int = 0
    bad_line_details: tuple[BadLine, ...] = ()
    batches: int = 0
    in_flight: tuple[str, ...] = ()
    in_flight_progress: tuple[int, int] = (0, 0)
    # (active time, responses done) at each commit; active time leaves held spells out
    _rate_window: collections.deque[tuple[float, int]] = field(default_factory=lambda: collections.deque(maxlen=64))
    # responses of this run with a vector in the cache: domains finished, plus each unfinished one's latest count
    _committed_complete: int = 0
    _committed_partial: dict[str, int] = field(default_factory=dict)

    def opened(self, totals: JobTotals) -> None:
        self.units_total, self.items_total = totals.units, totals.items
        self.units_done, self.items_done = totals.units_done, totals.items_done
        self.items_skipped = totals.items_done
        self.bad_lines = totals.bad_lines
        self.bad_line_details = totals.bad_line_details

    def started(self, names: tuple[str, ...], texts: int) -> None:
        """A batch begins: its domains and its texts to embed are in flight."""
        self.in_flight, self.in_flight_progress = names, (0, texts)

    def committed(self, result: CommitResult, embedded: int, active: float) -> int:
        """A batch is committed (``active``: the working clock now); returns its number."""
        for domain, have, total in result.stored:
            if have == total:
                self._committed_partial.pop(domain, None)
                self._committed_complete += total
            elif have:
                self._committed_partial[domain] = have
        self.units_done += result.units_completed
        self.items_done += result.items_completed
        self.items_embedded += embedded
        self.batches += 1
        self.in_flight, self.in_flight_progress = (), (0, 0)
        self._rate_window.append((active, self.items_done))
        return self.batches

    def settled(self) -> None:
        """The run is over: nothing is in flight."""
        self.in_flight, self.in_flight_progress = (), (0, 0)

    # -- reading -----------------------------------------------------------------------------
    def done_now(self) -> int:
        """Responses done, counting those of the batch in flight already embedded."""
        return self.items_done + self.in_flight_progress[0]

    def responses_committed(self) -> int:
        return self._committed_complete + sum(self._committed_partial.values())

    def overall_rate(self, working: float) -> float:
        """This run's responses per second of working time, work in flight included."""
        return (self.done_now() - self.items_skipped) / working if working > 0 else 0.0

    def recent_rate(self, active: float, working: float) -> float:
        """Responses per second over the last ~30 s of working time, work in flight included."""
        points = [(t, n) for t, n in self._rate_window if active - t <= RECENT_S]
        points.append((active, self.done_now()))
        if len(points) >= 2 and points[-1][0] - points[0][0] >= 1.0:
            return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
        return self.overall_rate(working) if self.done_now() > self.items_skipped else 0.0

    def eta(self, rate: float, *, started: bool, held: bool) -> float | None:
        """Seconds left at ``rate``: 0 once nothing is left (after the start); None while held or unknown."""
        remaining = max(0, self.items_total - self.done_now())
        if not remaining:
            return 0.0 if started else None
        if held or rate <= 0:
            return None
        return remaining / rate

    def report_counts(self, working: float) -> ReportCounts:
        """The run report's counts (``RunReport`` fields), its rate per second of working time."""
        committed = self.responses_committed()
        return {
            "batches": self.batches,
            "items": self.items_done - self.items_skipped,
            "responses_committed": committed,
            "items_embedded": self.items_embedded,
            "items_skipped": self.items_skipped,
            "items_total": self.items_total,
            "items_per_s": round(committed / working, 2) if working > 0 else 0.0,
            "domains_done": self.units_done,
            "domains_total": self.units_total,
            "bad_lines": self.bad_lines,
            "bad_line_details": tuple(bad.as_dict() for bad in self.bad_line_details),
        }
