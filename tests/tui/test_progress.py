"""The screen counts what the report counts: once a run is over (stopped with q, aborted on the breaker's
floor), the progress panel's responses and rate are the report's, unfinished domains' committed part included."""

from __future__ import annotations

import threading

from memtui.memory.config import MemoryConfig
from memtui.tui.app import MemtuiApp
from memtui.tui.text import count
from memtui.tui.widgets import BatchPanel, ProgressPanel
from tests.support.executors import FakeExecutor

from .conftest import wait_for
from .test_open_breaker import _trip


def agrees_with_the_report(progress: str, batch: str, report) -> None:
    done = report.items_skipped + report.responses_committed
    assert f"{count(done)}/{count(report.items_total)} responses" in progress, progress
    assert f"{done / report.items_total * 100:5.1f}%" in progress, progress
    assert f"{count(report.domains_done)}/{count(report.domains_total)} domains" in progress, progress
    assert f"{report.items_per_s:.1f}/s" in batch or report.items_per_s == 0, batch


async def test_q_mid_batch_the_last_frame_counts_the_unfinished_domains_vectors_as_the_report_does(make_rig):
    gate = threading.Event()
    executor = FakeExecutor(sub_batch=3, on_sub_batch=lambda n: executor.hold(gate) if n == 2 else None)
    rig = make_rig(domains=10, per_domain=4, executor=executor)
    app = MemtuiApp(rig.runner)
    frames: list[tuple[str, str]] = []
    leave = app.exit

    def exit_after_looking(*args, **kw):  # the panels as the operator last sees them, report in hand
        frames.append(
            (str(app.dashboard.query_one(ProgressPanel).render()), str(app.dashboard.query_one(BatchPanel).render()))
        )
        leave(*args, **kw)

    app.exit = exit_after_looking  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, executor.holding.is_set, what="the first batch to be held mid-way")
        await pilot.press("q", "y")  # the stop releases the hold: 6 of the batch's responses embedded
        await wait_for(pilot, lambda: not app.is_running, what="the app to exit")
    report = app.return_value
    assert report.status == "interrupted" and report.responses_committed == 6 and report.items == 4, report
    assert frames, "the app exited with the report"
    agrees_with_the_report(*frames[-1], report)
    assert "incl. 2 of unfinished domains" in frames[-1][0]


async def test_ending_on_the_floor_mid_batch_the_progress_panel_counts_what_the_report_counts(make_rig):
    fast = MemoryConfig(backoff_initial_s=0.01, backoff_max_s=0.05, breaker_timeout_s=300.0)
    gate = threading.Event()
    executor = FakeExecutor(sub_batch=3, on_sub_batch=lambda n: executor.hold(gate) if n == 2 else None)
    rig = make_rig(domains=10, per_domain=4, executor=executor, config=fast)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, executor.holding.is_set, what="the first batch to be held mid-way")
        await _trip(app, pilot, rig)  # levels below RSS: the breaker opens while the batch is held
        gate.set()  # 6 of the batch's responses embedded, then the breaker holds the job until it gives up
        await wait_for(pilot, lambda: app.report is not None, what="the run to end on the floor")
        await pilot.pause(0.3)
        report = app.report
        assert report.status == "aborted" and report.memory_floor_gb is not None
        assert report.responses_committed == 6 and report.items == 4, report
        agrees_with_the_report(
            str(app.dashboard.query_one(ProgressPanel).render()),
            str(app.dashboard.query_one(BatchPanel).render()),
            report,
        )
        await pilot.press("q")
