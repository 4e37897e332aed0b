"""Time to breaker only from a steady rise of the running job: no alarm while loading, falling, flat or paused."""

from __future__ import annotations

from memtui.memory.units import GB, MB
from memtui.tui.app import MemtuiApp
from memtui.tui.widgets.memory_panel import trend

from .conftest import wait_for

BREAKER = int(2 * GB)


def series(f, seconds=60, step=1.0):
    return [(1000.0 + i * step, int(f(i * step))) for i in range(int(seconds / step) + 1)]


def test_a_steady_rise_gives_a_time_to_the_breaker():
    h = series(lambda t: 1 * GB + 2 * MB * t)
    kind, eta = trend(h, h[-1][1], BREAKER)
    assert kind == "rising" and eta is not None and abs(eta - (BREAKER - h[-1][1]) / (2 * MB)) < 1


def test_a_model_load_then_a_plateau_is_not_a_rise():
    # The load: +500 MB in 5 s, then flat: the whole window's slope rises, its second half does not.
    h = series(lambda t: 0.5 * GB + 100 * MB * min(t, 5.0), seconds=30)
    assert trend(h, h[-1][1], BREAKER)[0] == "flat"


def test_falling_and_flat_and_too_short_say_so():
    falling = series(lambda t: 1.5 * GB - 3 * MB * t)
    assert trend(falling, falling[-1][1], BREAKER) == ("falling", None)
    flat = series(lambda t: 1 * GB + (8 * MB if int(t) % 2 else 0))  # a sawtooth
    assert trend(flat, flat[-1][1], BREAKER) == ("flat", None)
    short = series(lambda t: 1 * GB + 5 * MB * t, seconds=10)
    assert trend(short, short[-1][1], BREAKER) == ("settling", None)


async def test_paused_says_paused_not_a_countdown_at_80x24(make_rig):
    rig = make_rig(domains=30, delay_s=0.03)
    app = MemtuiApp(rig.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: rig.executor.sub_batches >= 1, what="the job to start")
        await pilot.press("p")
        await wait_for(pilot, lambda: rig.runner.snapshot().phase == "paused", what="the pause")
        await pilot.pause(0.3)
        text = str(app.dashboard.query_one("#memory-text").render())
        assert "time to breaker — (paused)" in text, text
        assert rig.runner.snapshot().running_since is None
        await pilot.press("p")
        await wait_for(pilot, lambda: rig.runner.snapshot().running_since is not None, what="running again")
        await pilot.pause(0.3)
        text = str(app.dashboard.query_one("#memory-text").render())
        assert "at this slope" not in text, "a fresh run of the job has no trend yet"
        await pilot.press("q")
        await pilot.press("y")
        await wait_for(pilot, lambda: not app.is_running, what="exit")
