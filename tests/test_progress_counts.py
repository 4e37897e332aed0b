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


def test_a_runner_waiting_for_memory_shows_no_eta_and_its_rate_leaves_the_wait_out(tmp_path):
    """The breaker opens mid-run and stays open: every snapshot while the job waits has no ETA, and the
    rate (working time only) does not fall as the wait goes on."""
    from memtui.memory.units import GB, MB
    from tests.memory.fakes import ScriptedProbe
    from tests.test_runner import HashExecutor, fake_time_runner

    box: dict = {"at": None}

    def rss(_reads):
        if box["at"] is None:
            return int(0.5 * GB)
        return int(3.0 * GB) - int(20 * MB * (box["clock"].now() - box["at"]))

    def leak(texts):
        box["clock"].advance(1.0)  # each sub-batch takes a second of working time
        if box["at"] is None and box.get("n", 0) >= 2:
            box["at"] = box["clock"].now()
        box["n"] = box.get("n", 0) + 1

    probe = ScriptedProbe(on_read=rss)
    runner, _executor, clock = fake_time_runner(
        tmp_path, domains=5, executor=HashExecutor(sub_batch=3, on_sub_batch=leak), probe=probe
    )
    box["clock"] = clock
    seen = []

    def sleep(seconds: float) -> None:
        seen.append(runner.snapshot())
        clock.sleep(seconds)

    runner._sleep = sleep
    report = runner.run()
    waiting = [s for s in seen if s.phase == "waiting for memory"]
    assert report.status == "aborted" and len(waiting) >= 3
    assert all(s.eta_s is None for s in waiting), [s.eta_s for s in waiting]
    assert waiting[0].items_per_s > 0
    assert waiting[-1].items_per_s == pytest.approx(waiting[0].items_per_s)  # 30 s of waiting left out
    assert waiting[-1].elapsed_s >= waiting[0].elapsed_s + 20  # while the wall clock ran on
