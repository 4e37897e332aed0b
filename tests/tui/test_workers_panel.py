"""The workers panel: one row per cluster worker, mounted only when the snapshot has worker rows, fitting
80x24 beside the log and 60x20 in the scrolling body, scrolling when there are many workers.

The engine is a real Runner held at a point (FrozenRun) whose snapshots carry ClusterRunner-shaped worker
rows; tests/cluster/test_operator.py runs the panel on a real cluster.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from rich.color import Color

from memtui.memory.breaker import BreakerState
from memtui.memory.units import GB, MB
from memtui.records import WorkerRow
from memtui.tui.widgets import GcLog, MemoryPanel, ProgressPanel
from memtui.tui.widgets.workers_panel import NARROW, WIDE, WorkersPanel, columns, doing, spark

from .conftest import wait_for
from .frozen import FrozenRun

WARNING, BREAKER = int(1.0 * GB), int(1.5 * GB)


def worker(n: int, rss_mb: int = 650, **kw) -> WorkerRow:
    fields = dict(
        address=f"tcp://127.0.0.1:{40000 + n}",
        name=str(n),
        rss_bytes=rss_mb * MB,
        peak_bytes=(rss_mb + 40) * MB,
        history=tuple((rss_mb - 20 + (i % 5) * 10) * MB for i in range(20)),
        warning_bytes=WARNING,
        max_bytes=BREAKER,
        breaker=BreakerState.CLOSED,
        breaker_trips=0,
        warnings=0,
        cleanups=1,
        batch_size=128,
        current_domain=f"site{n:03d}.example",
        activity="embedding",
        items_done=300 * n,
        domains_done=n,
        sub_batches=3 * n,
        model_loaded=True,
        model_loads=1,
        paused=False,
        orders=0,
    )
    fields.update(kw)
    return WorkerRow(**fields)  # type: ignore[arg-type]


TWO = (
    worker(0),
    worker(
        1,
        1600,
        breaker=BreakerState.OPEN,
        breaker_trips=2,
        activity="waiting for memory",
        current_domain="a-very-long-domain-name-that-cannot-fit.example",
    ),
)


@pytest.fixture
def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    run = FrozenRun(tmp_path, hold_at=24)
    yield run
    run.release()


def cluster_shaped(run: FrozenRun, rows: Callable[[], tuple[WorkerRow, ...]]) -> None:
    """The held Runner's snapshots, with the worker rows a ClusterRunner's would carry."""
    real = run.runner.snapshot
    run.runner.snapshot = lambda: replace(real(), workers=rows())  # type: ignore[method-assign]


async def _panel(pilot, run: FrozenRun) -> WorkersPanel:
    await wait_for(pilot, lambda: run.held, what="the frozen run")
    await wait_for(pilot, lambda: bool(pilot.app.dashboard.query(WorkersPanel)), what="the workers panel")
    pilot.app.tick()
    await pilot.pause()
    return pilot.app.dashboard.query_one(WorkersPanel)


def _cell(panel: WorkersPanel, row: WorkerRow, column: str) -> str:
    return panel.get_cell(row.address, column).plain


async def test_a_local_run_mounts_no_workers_panel(held):
    app = held.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: held.held, what="the frozen run")
        app.tick()
        await pilot.pause()
        assert not app.dashboard.query(WorkersPanel)
        assert app.dashboard.query_one(MemoryPanel).border_title == "Memory"
        await pilot.press("q", "y")


async def test_two_workers_fit_at_80x24_beside_the_log(held):
    cluster_shaped(held, lambda: TWO)
    app = held.app()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await _panel(pilot, held)
        d = app.dashboard
        assert panel.row_count == 2 and panel.display
        assert d.query_one("#body").max_scroll_y == 0, "the screen must not need scrolling at 80x24"
        assert panel.region.right <= 80 and panel.max_scroll_x == 0, "every column fits the width"
        log = d.query_one(GcLog)
        assert log.display and log.region.height >= 4 and log.region.y >= panel.region.bottom
        assert panel.region.bottom <= d.query_one("#footer").region.y
        ok, hot = TWO
        assert _cell(panel, ok, "name") == "0" and _cell(panel, ok, "rss") == "0.64GB"  # 0.635GB: the report's rounding
        assert _cell(panel, ok, "breaker") == "CLOSED" and _cell(panel, hot, "breaker") == "OPEN"
        assert _cell(panel, ok, "doing") == "site000.example"
        assert _cell(panel, hot, "doing").startswith("waiting: a-very-long")
        assert [c.value for c in panel.columns] == ["name", "rss", "trend", "breaker", "batch", "doing"]
        assert len(_cell(panel, ok, "trend")) == 10  # 20 seconds, the peak of each slice
        assert panel.columns["doing"].width >= len("paused: site000.example")
        # colors from the theme: the open breaker in $error, a sparkline over the breaker level too
        error = Color.parse(app.theme_variables["error"])
        assert panel.get_cell(hot.address, "breaker").style.color.triplet == error.triplet
        assert all(span.style.color.triplet == error.triplet for span in panel.get_cell(hot.address, "trend").spans)
        assert panel.border_title == "Workers 2"
        assert d.query_one(MemoryPanel).border_title == "Memory · client", "whose memory the panel shows"
        await pilot.press("q", "y")


async def test_at_60x20_the_panel_drops_a_column_and_the_body_scrolls_to_it(held):
    cluster_shaped(held, lambda: TWO)
    app = held.app()
    async with app.run_test(size=(60, 20)) as pilot:
        panel = await _panel(pilot, held)
        assert panel.size.width < NARROW
        assert [c.value for c in panel.columns] == ["name", "rss", "trend", "breaker", "batch", "doing"]
        assert len(_cell(panel, TWO[0], "trend")) == 6
        assert panel.max_scroll_x == 0, "every column fits the width"
        body = app.dashboard.query_one("#body")
        body.scroll_to_widget(panel, animate=False)
        await pilot.pause()
        assert body.region.contains_region(panel.region), "the panel can be scrolled into view"
        await pilot.press("q", "y")


async def test_many_workers_scroll_and_the_keys_still_steer_the_run(held):
    many = tuple(worker(n) for n in range(12))
    cluster_shaped(held, lambda: many)
    app = held.app()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await _panel(pilot, held)
        assert panel.row_count == 12 and panel.max_scroll_y > 0
        assert app.dashboard.query_one("#body").max_scroll_y == 0, "the panel scrolls, not the screen"
        assert [panel.get_row_at(i)[0].plain for i in range(3)] == ["0", "1", "2"]
        for _ in range(6):  # Tab reaches the panel (no mouse needed)
            if app.focused is panel:
                break
            await pilot.press("tab")
        assert app.focused is panel
        await pilot.press("down")
        await wait_for(pilot, lambda: panel.scroll_y == 1, what="a row down")
        await pilot.press(*["down"] * panel.max_scroll_y)
        await wait_for(pilot, lambda: panel.scroll_y == panel.max_scroll_y, what="the last rows")
        await pilot.press("p")  # the screen's keys reach past the focused panel
        await wait_for(pilot, lambda: held.runner.paused, what="the pause")
        await pilot.press("g")
        assert app.dashboard.chart.display and not panel.display, "a short terminal gives the chart the rows"
        await pilot.press("g")
        assert panel.display
        await pilot.press("q", "y")


async def test_a_lost_worker_keeps_its_row_dimmed_and_rows_update_in_place(held):
    rows = {"now": TWO}
    cluster_shaped(held, lambda: rows["now"])
    app = held.app()
    async with app.run_test(size=(80, 24)) as pilot:
        panel = await _panel(pilot, held)
        rows["now"] = (replace(TWO[0], rss_bytes=900 * MB), replace(TWO[1], lost=True))
        app.tick()
        await pilot.pause()
        assert panel.row_count == 2 and panel.border_title == "Workers 1 · 1 lost"
        assert _cell(panel, TWO[0], "rss") == "0.88GB"
        assert _cell(panel, TWO[1], "doing") == "lost" and _cell(panel, TWO[1], "breaker") == "—"
        muted = panel.get_component_rich_style("workers-panel--muted", partial=True)
        assert muted.color is not None and panel.get_cell(TWO[1].address, "rss").style == muted
        assert panel.get_cell(TWO[0].address, "rss").style != muted
        await pilot.press("q", "y")


def test_the_sparkline_has_a_fixed_scale_and_keeps_spikes():
    low, high = 300 * MB, 1400 * MB
    alone = spark([low], 1, WARNING, BREAKER)
    beside_high = spark([low, high], 2, WARNING, BREAKER)
    assert alone[0] == beside_high[0], "the same memory is the same height whatever else is drawn"
    assert [zone for _, zone in spark([low, WARNING, BREAKER], 3, WARNING, BREAKER)] == [
        "normal",
        "warning",
        "critical",
    ]
    values = [low] * 19 + [high]
    assert spark(values, 5, WARNING, BREAKER)[-1] == spark([high], 1, WARNING, BREAKER)[0], "a spike survives"
    assert spark([1], 3, WARNING, BREAKER)[0][0] == "▁", "a tiny RSS still draws"


def test_columns_fit_the_width_and_doing_names_the_domain_first():
    for width in (55, 69, 70, 76, 89, 90, 120):
        layout = columns(width)
        assert sum(c.width + 2 for c in layout) + 1 <= width, width  # padding and a scrollbar included
        assert layout[-1].key == "doing" and layout[-1].width >= 8
        assert ("done" in [c.key for c in layout]) is (width >= WIDE)
    assert doing(worker(1, activity="paused", paused=True)) == "paused: site001.example"
    assert doing(worker(1, activity="waiting for memory")) == "waiting: site001.example"
    assert doing(worker(1)) == "site001.example"
    assert doing(worker(1, paused=True)) == "pausing: site001.example"
    assert doing(worker(1, activity="idle", current_domain=None)) == "idle"
    assert doing(worker(1, lost=True)) == "lost"


async def test_a_wide_terminal_shows_each_workers_responses_done(held):
    cluster_shaped(held, lambda: TWO)
    app = held.app()
    async with app.run_test(size=(120, 40)) as pilot:
        panel = await _panel(pilot, held)
        assert panel.size.width >= WIDE and panel.max_scroll_x == 0
        assert _cell(panel, TWO[0], "done") == "0" and _cell(panel, TWO[1], "done") == "300"
        assert _cell(panel, TWO[1], "doing") == "waiting: a-very-long-domain-name-that-cannot-fit.example"
        await pilot.press("q", "y")


async def test_the_progress_panel_names_the_domains_out_when_workers_give_no_text_counts(held):
    """A ClusterRunner knows which domains are out, not how far each worker is: no '0/0 of 4 domains'."""
    real = held.runner.snapshot
    held.runner.snapshot = lambda: replace(  # type: ignore[method-assign]
        real(), workers=TWO, in_flight=("a", "b", "c", "d"), in_flight_progress=(0, 0)
    )
    app = held.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _panel(pilot, held)
        text = str(app.dashboard.query_one(ProgressPanel).render())
        assert "in flight 4 domains" in text and "0/0" not in text
        await pilot.press("q", "y")
