"""Progress: the one rule for counts, rate and ETA that the snapshot and the report share."""

from __future__ import annotations

import pytest

from memtui.jobs.base import CommitResult, JobTotals
from memtui.progress import Progress


def opened(items: int = 100, done: int = 20) -> Progress:
    progress = Progress()
    progress.opened(JobTotals(units=10, items=items, units_done=2, items_done=done))
    return progress


def test_no_eta_while_held_and_none_left_is_zero():
    progress = opened()
    assert progress.eta(10.0, started=True, held=False) == pytest.approx(8.0)  # 80 left at 10/s
    assert progress.eta(10.0, started=True, held=True) is None  # paused or waiting for memory: no extrapolation
    assert progress.eta(0.0, started=True, held=False) is None  # no rate yet
    done = opened(items=20, done=20)
    assert done.eta(0.0, started=True, held=True) == 0.0
    assert done.eta(0.0, started=False, held=False) is None


def test_work_in_flight_counts_and_the_rate_counts_this_runs_work_only():
    progress = opened()
    progress.started(("a", "b"), 10)
    progress.in_flight_progress = (4, 10)
    assert progress.done_now() == 24
    assert progress.overall_rate(working=2.0) == pytest.approx(2.0)  # 4 of this run's in 2 s; the 20 resumed not
    assert progress.overall_rate(working=0.0) == 0.0


def test_commits_feed_the_recent_rate_and_the_reports_committed_count():
    progress = opened()
    progress.started(("a", "b"), 10)
    first = CommitResult(("a",), 6, 6, stored=(("a", 6, 6), ("b", 3, 5)))
    assert progress.committed(first, embedded=9, active=100.0) == 1
    assert progress.in_flight == () and progress.responses_committed() == 9  # a whole, b's 3 so far
    second = CommitResult(("b",), 5, 2, stored=(("b", 5, 5),))
    assert progress.committed(second, embedded=2, active=110.0) == 2
    assert progress.responses_committed() == 11  # b counted once, whole
    assert progress.recent_rate(active=110.0, working=10.0) == pytest.approx(0.5)  # 5 more in 10 s of work
    counts = progress.report_counts(working=10.0)
    assert counts["items"] == 11 and counts["responses_committed"] == 11 and counts["items_per_s"] == 1.1
    assert counts["batches"] == 2 and counts["items_embedded"] == 11 and counts["domains_done"] == 4
