"""Reflow at any size, the chart toggle, and the pure helpers the panels draw with."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from memtui import wire
from memtui.events import BatchDone, BatchStarted, CleanupRan, MemoryWarning, Notice, WorkerDone
from memtui.memory.cleanup import CleanupReport
from memtui.memory.units import MB
from memtui.tui.history import RssHistory
from memtui.tui.text import bar, classify, short_path, strip_icon
from memtui.tui.widgets import MemorySparkline
from memtui.tui.widgets.run_header import title_parts

from .frozen import FrozenRun


@pytest.fixture
def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    run = FrozenRun(tmp_path, hold_at=24)
    yield run
    run.release()


async def _wait_held(pilot, run: FrozenRun) -> None:
    for _ in range(500):
        if run.held:
            return
        await pilot.pause(0.02)
    raise AssertionError("the frozen run never reached its point")


async def test_resizes_reflow_instead_of_crashing(held):
    app = held.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait_held(pilot, held)
        body = app.dashboard.query_one("#body")
        for size, narrow, tall in (
            ((120, 40), False, True),
            ((60, 20), True, False),
            ((30, 10), True, False),
            ((20, 6), True, False),
            ((200, 60), False, True),
            ((80, 24), False, False),
        ):
            await pilot.resize_terminal(*size)
            await pilot.pause(0.1)
            app.tick()
            await pilot.pause()
            assert app.is_running, f"crashed at {size}"
            assert body.has_class("-narrow") is narrow and body.has_class("-tall") is tall, size
        await pilot.press("q", "y")


async def test_chart_replaces_the_log_on_short_terminals_and_joins_it_on_tall_ones(held):
    app = held.app()
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait_held(pilot, held)
        d = app.dashboard
        assert not d.chart.display and d.gc_log.display
        progress = d.query_one("#progress")
        await pilot.press("g")
        assert d.chart.display and not d.gc_log.display and progress.display, "the chart gets the log's rows"
        await pilot.press("g")
        assert not d.chart.display and d.gc_log.display and progress.display
        await pilot.resize_terminal(120, 40)
        await pilot.pause(0.1)
        assert not d.chart.display and d.gc_log.display, "the operator hid the chart: it stays hidden"
        await pilot.press("g")
        assert d.chart.display and d.gc_log.display, "a tall terminal shows chart and log together"
        await pilot.press("q", "y")


async def test_a_tall_terminal_shows_the_chart_by_default(held):
    app = held.app()
    async with app.run_test(size=(120, 40)) as pilot:
        await _wait_held(pilot, held)
        assert app.dashboard.chart.display and app.dashboard.gc_log.display
        await pilot.press("q", "y")


def test_rss_history_keeps_peaks_at_bounded_size():
    history = RssHistory(max_points=10, bucket_s=1.0)
    samples = [(float(t), 100 + (900 if t == 37 else 0)) for t in range(100)]
    assert history.extend(samples)
    assert not history.extend(samples[:50]), "old samples are not added twice"
    assert len(history.points) <= 10 and history.bucket_s > 1.0
    assert max(p for _, p in history.points) == 1000, "a one-sample spike survives every merge"


def test_sparkline_columns_keep_a_spike_when_downsampling():
    spark = MemorySparkline()
    spark.show([10] * 50 + [99] + [10] * 49, warning_bytes=50, max_bytes=80)
    cols = spark.columns(20)
    assert len(cols) == 20 and max(cols) == 99
    spark.show([1, 2, 3], warning_bytes=50, max_bytes=80)
    assert spark.columns(20) == [1, 2, 3], "short histories are drawn as they are (right-aligned)"


def test_event_lines_drop_emoji_and_get_a_tag():
    report = CleanupReport(
        objects=12,
        rss_before=900 * MB,
        rss_after=800 * MB,
        trimmed=True,
        cleared=(),
        duration_s=0.1,
        reason="requested by operator",
    )
    assert classify(CleanupRan(report)) == ("GC", "cleanup")
    assert classify(MemoryWarning(1 << 30)) == ("WARN", "warning")
    assert classify(BatchStarted(1, ("a",), 3, 3, 0)) is None
    assert classify(BatchDone(1, ("a",), 3, 3, 0.5, 0)) is None, "the GC log holds no batch lines"
    done = WorkerDone("worker 1", "a.com", 21, 6.6, 600 * MB, 640 * MB, "closed")
    assert classify(done) is None, "a worker's domain is a batch line too: the workers panel's"
    assert done.message == "🖥️ worker 1: a.com · 21 embedded in 6.6s · worker mem 0.59GB peak 0.62GB · breaker closed"
    assert wire.loads(wire.dumps("event", done)) == ("event", done), "attached viewers and headless get it typed"
    assert classify(Notice("x", level="error")) == ("ERROR", "error")
    assert strip_icon("⚠️ Memory warning: 1.12GB") == "Memory warning: 1.12GB"
    assert strip_icon("🧹 Cleanup: 1 objects") == "Cleanup: 1 objects"
    assert strip_icon("Model loaded") == "Model loaded"
    assert strip_icon("-> arrow first") == "-> arrow first", "ASCII punctuation is text, not an icon"


def test_bar_and_short_path():
    filled, empty = bar(0.5, 10)
    assert len(filled) + len(empty) == 10 and filled == "█████"
    assert bar(1.0, 4) == ("████", "") and bar(0.0, 4) == ("", "░░░░")
    shortened = short_path("/very/long/path/to/some/cache.sqlite", 16)
    assert len(shortened) == 16 and shortened.startswith("…") and shortened.endswith("/cache.sqlite")


async def test_the_sparkline_scale_is_fixed_by_the_levels_and_marks_them():
    """Same RSS, same height: the scale (0 to a little above the breaker) does not follow the data."""
    from textual.app import App

    from memtui.memory.units import GB as _GB
    from memtui.tui.widgets.memory_sparkline import GUTTER, MemorySparkline

    class One(App):
        def compose(self):
            yield MemorySparkline(id="s")

    app = One()
    async with app.run_test(size=(40, 4)) as pilot:
        spark = app.query_one(MemorySparkline)
        spark.styles.height = 2
        spark.show([int(0.4 * _GB)] * 10, int(1.0 * _GB), int(1.5 * _GB))
        await pilot.pause()
        first = spark.scale
        low = str(spark.render())
        spark.show([int(0.4 * _GB)] * 5 + [int(0.7 * _GB)] * 5, int(1.0 * _GB), int(1.5 * _GB))
        await pilot.pause()
        assert spark.scale == first == (0, int(1.7 * _GB) // (_GB // 10) * (_GB // 10))
        high = str(spark.render())
        first_five = slice(-10 - GUTTER, -5 - GUTTER)  # the newest columns end where the levels' gutter starts
        assert low.splitlines()[-1][first_five] == high.splitlines()[-1][first_five], "0.4GB drawn at the same height"
        assert any(ch in low for ch in "⎽⎼⎻⎺"), "the warning and breaker levels are marked"


def test_the_header_names_a_backend_other_than_the_exact_default(held):
    s = held.runner.snapshot()
    assert s.backend == "torch" and title_parts(s, 200)[2] == "all-MiniLM-L6-v2"
    int8 = replace(s, backend="onnx-int8/r3/avx512_vnni")
    assert title_parts(int8, 200)[2] == "all-MiniLM-L6-v2 · onnx-int8"
    assert title_parts(replace(s, backend="openvino/bf16"), 200)[2] == "all-MiniLM-L6-v2 · openvino bf16"
    assert title_parts(int8, 40)[2] == "onnx-int8", "a narrow header drops the model's name first, not the backend"
