"""The smaller items: l during a run says why, the header during HALF-OPEN, the running batch's size,
no batch lines in the GC log, cache info's dates."""

from __future__ import annotations

import re

from memtui.tui.app import MemtuiApp
from memtui.tui.widgets import BatchPanel
from tests.support.cli import memtui
from tests.tui.conftest import wait_for
from tests.tui.test_keys import log_lines, quit_and_confirm


async def test_l_during_a_run_says_why_and_the_log_has_no_batch_lines_at_80x24(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.runner.snapshot().batches >= 2, what="two batches")
        notes: list[str] = []
        app.dashboard.notify = lambda message, **kw: notes.append(message)  # type: ignore[method-assign]
        await pilot.press("l")
        assert notes and notes[-1].startswith("The log is on screen") and "once the run is over" in notes[-1]
        assert not any(line.startswith("BATCH") for line in log_lines(app)), "batches are the panels'"
        await wait_for(pilot, lambda: bool(rig.runner.snapshot().in_flight), what="a batch in flight")
        s = rig.runner.snapshot()
        app.dashboard.query_one(BatchPanel).show(s)
        text = str(app.dashboard.query_one(BatchPanel).render())
        assert f"size {len(s.in_flight)}" in text, text
        await quit_and_confirm(app, pilot)


def test_cache_info_shows_times_as_dates(tmp_path, make_rig):
    rig = make_rig(domains=2)
    rig.runner.run()
    out = memtui("cache", "info", "--cache", rig.cache, timeout=60)
    assert out.returncode == 0, out.stderr
    created = next(line for line in out.stdout.splitlines() if "created_at" in line)
    assert re.search(r"created_at: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", created), created


def test_the_header_says_resuming_not_waiting_once_the_breaker_half_opens(make_rig):
    from dataclasses import replace

    from memtui.memory.breaker import BreakerState
    from memtui.tui.widgets.run_header import phase_of

    s = make_rig(domains=2).runner.snapshot()
    m = s.memory

    def at(state):
        return replace(s, phase="waiting for memory", memory=replace(m, breaker=replace(m.breaker, state=state)))

    assert phase_of(at(BreakerState.OPEN)) == "waiting for memory"
    assert phase_of(at(BreakerState.HALF_OPEN)) == "resuming"
