"""The TUI and the headless face return the same run report: the runner's own."""

from __future__ import annotations

import io

from memtui.faces.headless import HeadlessFace
from memtui.tui.app import MemtuiApp

from .conftest import wait_for

STABLE = (
    "status",
    "exit_code",
    "mode",
    "memory_warnings",
    "breaker_trips",
    "batches",
    "items",
    "items_embedded",
    "items_skipped",
    "items_total",
    "domains_done",
    "domains_total",
    "unprocessed_domains",
    "unprocessed",
    "bad_lines",
    "warning_memory_gb",
    "max_memory_gb",
    "model",
)


async def test_tui_and_headless_reports_match(make_rig, tmp_path):
    headless = make_rig(domains=7, cache_path=tmp_path / "headless.sqlite")
    report_h = HeadlessFace(headless.runner, err=io.StringIO(), progress_every_s=60).run()

    tui = make_rig(domains=7, cache_path=tmp_path / "tui.sqlite", input_path=headless.input)
    app = MemtuiApp(tui.runner)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.report is not None, what="the run to finish")
        await pilot.press("q")
    report_t = app.return_value
    assert set(report_t) == set(report_h)
    assert {k: report_t[k] for k in STABLE} == {k: report_h[k] for k in STABLE}
    assert report_t["status"] == "success" and tui.committed() == headless.committed() == (7, 28)
