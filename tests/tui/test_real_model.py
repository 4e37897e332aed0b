"""One Pilot run with the real model (all-MiniLM-L6-v2) on a tiny input: pause, clean up, finish."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from memtui.jobs.cache import CacheJob
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.runner import Runner
from memtui.tui.app import MemtuiApp
from memtui.tui.widgets import GcLog
from tests.support.inputs import write_input

from .conftest import wait_for


@pytest.mark.model
async def test_real_model_run_pauses_cleans_up_and_commits(tmp_path, real_embedder):
    source = write_input(tmp_path / "responses.jsonl", domains=8, per_domain=3)
    job = CacheJob(source, tmp_path / "cache.sqlite", real_embedder, model_id=real_embedder.model_id)
    runner = Runner(job, MemoryMonitor(MemoryConfig()))
    runner.open()
    app = MemtuiApp(runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("p")  # holds at the next checkpoint
        await wait_for(pilot, lambda: runner.snapshot().phase == "paused", what="the pause", timeout=30)
        held = runner.snapshot().items_done
        await asyncio.sleep(0.5)
        assert runner.snapshot().items_done == held < 24
        await pilot.press("c")
        log = app.dashboard.query_one(GcLog)
        await wait_for(pilot, lambda: any(line.startswith("GC ") for line in log.lines_text()), what="cleanup")
        assert "model caches" in next(line for line in log.lines_text() if line.startswith("GC "))
        await pilot.press("p")
        await wait_for(pilot, lambda: app.report is not None, what="the run to finish", timeout=60)
        await pilot.press("q")
    report = app.return_value
    assert report["status"] == "success" and report["items_embedded"] == 24 and report["domains_done"] == 8
    con = sqlite3.connect(tmp_path / "cache.sqlite")
    try:
        assert con.execute("SELECT COUNT(*) FROM domains").fetchone()[0] == 8
        assert con.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 24
        dims = {len(row[0]) for row in con.execute("SELECT vector FROM embeddings")}
        assert dims == {384 * 4}
    finally:
        con.close()
