"""While the run waits for memory the ETA says so instead of extrapolating, and the rate and the ETA follow
one rule: time held (paused, or waiting for memory) counts in neither."""

from __future__ import annotations

import pytest

from memtui.memory.config import MemoryConfig
from memtui.runner import WAITING_PHASE
from memtui.tui.app import MemtuiApp
from memtui.tui.widgets import ProgressPanel
from tests.support.fakes import FakeClock

from .conftest import wait_for
from .test_keys import quit_and_confirm
from .test_open_breaker import _trip


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_the_eta_says_waiting_for_memory_while_the_breaker_holds_the_run(size, make_rig):
    rig = make_rig(domains=30, delay_s=0.03, config=MemoryConfig(breaker_timeout_s=300.0))
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=size) as pilot:
        await _trip(app, pilot, rig)
        await wait_for(pilot, lambda: rig.runner.snapshot().phase == WAITING_PHASE, what="the wait")
        s = rig.runner.snapshot()
        assert s.eta_s is None and s.eta_text == "waiting for memory"
        app.tick()
        await pilot.pause()
        text = str(app.dashboard.query_one(ProgressPanel).render())
        assert "ETA waiting for memory" in text, text
        await quit_and_confirm(app, pilot)


def test_rate_and_eta_leave_out_paused_and_waiting_time_alike(make_rig):
    clock = FakeClock(1000.0)
    rig = make_rig(domains=4, per_domain=50, clock=clock)
    runner = rig.runner
    runner._set_phase("running")
    with runner._lock:
        runner._t0 = clock()
    clock.advance(10)
    with runner._lock:
        runner._items_done = 100  # 100 responses in 10 s of work
    before = runner.snapshot()
    assert before.items_per_s == pytest.approx(10.0)
    runner._set_phase(WAITING_PHASE)
    clock.advance(50)  # the breaker holds the run
    waiting = runner.snapshot()
    assert waiting.items_per_s == pytest.approx(10.0), "waiting time is not work"
    assert waiting.eta_s is None and waiting.eta_text == "waiting for memory"
    runner._set_phase("paused")
    clock.advance(30)  # then the operator pauses it
    assert runner.snapshot().items_per_s == pytest.approx(10.0)
    runner._set_phase("running")
    after = runner.snapshot()
    assert after.items_per_s == pytest.approx(10.0)
    assert after.eta_s == pytest.approx((after.items_total - 100) / 10.0), "the ETA from the same rate"
    assert after.elapsed_s == pytest.approx(90.0)  # elapsed is wall time; only the rate leaves holds out
