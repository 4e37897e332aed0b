"""A user's job in the TUI: the same panels, speaking of items and calls (not responses and domains)."""

from __future__ import annotations

import json

from memtui.faces.run_job import build_job_runner
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.tui.app import MemtuiApp
from memtui.tui.widgets import BatchPanel, ProgressPanel

from .conftest import wait_for


def _double(items: list[dict]) -> list[int]:
    return [item["n"] * 2 for item in items]


async def test_a_job_run_counts_items_and_calls(tmp_path):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": i, "n": i}) + "\n" for i in range(40)))
    runner = build_job_runner(
        _double, "test:_double", items, tmp_path / "r.sqlite", MemoryMonitor(MemoryConfig()), call_items=4
    )
    runner.open()
    app = MemtuiApp(runner)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: runner.snapshot().finished, what="the job to finish")
        await pilot.pause()
        progress = str(app.dashboard.query_one(ProgressPanel).render())
        batch = app.dashboard.query_one(BatchPanel)
        assert "40/40 items" in progress and "10/10 calls" in progress, progress
        assert "responses" not in progress and "domains" not in progress
        assert batch.border_title == "Batch · calls"
        await pilot.press("q")
    assert runner.snapshot().report.status == "success"


async def test_a_tui_stop_of_a_job_whose_function_never_returns_exits_with_the_interrupted_report(tmp_path):
    """The TUI waited on the stuck call for ever (its worker never posted the report); the engine's bounded
    stop reports interrupted and the app exits with that report."""
    import threading

    entered, release = threading.Event(), threading.Event()

    def hang(items: list[dict]) -> list[int]:
        if any(item["n"] == 3 for item in items):
            entered.set()
            release.wait(120)
        return [item["n"] for item in items]

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": i, "n": i}) + "\n" for i in range(8)))
    runner = build_job_runner(
        hang, "test:hang", items, tmp_path / "r.sqlite", MemoryMonitor(MemoryConfig()), call_items=1, stop_grace_s=0.5
    )
    runner.open()
    app = MemtuiApp(runner)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await wait_for(pilot, entered.is_set, what="the hanging call")
            app.stop_and_exit()
            await wait_for(pilot, lambda: runner.abandoned, what="the grace to run out")
            await wait_for(pilot, lambda: app.report is not None, what="the app to take the report")
    finally:
        release.set()
    assert app.report.status == "interrupted" and "did not return within 0.5 s" in app.report.reason
