"""Snapshot tests at 80x24 and 120x40, on a run frozen at a known point (see frozen.py).

Update after an intended change with ``pytest tests/tui --snapshot-update`` and
look at the SVGs under __snapshots__ before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from .frozen import FrozenRun


@pytest.fixture
def frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    runs: list[FrozenRun] = []

    def make(**kw) -> FrozenRun:
        run = FrozenRun(tmp_path, **kw)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.release()


async def _until(pilot, predicate) -> None:
    for _ in range(500):
        if predicate():
            break
        await pilot.pause(0.02)
    assert predicate(), "the frozen run never reached its point"
    pilot.app.tick(force_chart=True)
    await pilot.pause()


def test_running_in_warning_80x24(snap_compare, frozen):
    run = frozen(hold_at=24)

    async def before(pilot):
        await _until(pilot, lambda: run.held)

    assert snap_compare(run.app(), terminal_size=(80, 24), run_before=before)


def test_running_in_warning_120x40_with_chart(snap_compare, frozen):
    run = frozen(hold_at=24)

    async def before(pilot):
        await _until(pilot, lambda: run.held)

    assert snap_compare(run.app(), terminal_size=(120, 40), run_before=before)


def test_finished_with_report_80x24(snap_compare, frozen):
    run = frozen(hold_at=None)

    async def before(pilot):
        await _until(pilot, lambda: pilot.app.report is not None)

    assert snap_compare(run.app(), terminal_size=(80, 24), run_before=before)


def test_thresholds_dialog_refuses_bad_input_80x24(snap_compare, frozen):
    run = frozen(hold_at=24)

    async def before(pilot):
        await _until(pilot, lambda: run.held)
        await pilot.press("t")
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor makes the picture depend on timing
        pilot.app.screen.query_one("#warning", Input).value = "2GB"
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(run.app(), terminal_size=(80, 24), run_before=before)


def test_narrow_60x20_reflows(snap_compare, frozen):
    run = frozen(hold_at=24)

    async def before(pilot):
        await _until(pilot, lambda: run.held)

    assert snap_compare(run.app(), terminal_size=(60, 20), run_before=before)


def test_chart_at_60x20_keeps_its_axis_and_the_progress_panel(snap_compare, frozen):
    run = frozen(hold_at=24)

    async def before(pilot):
        await _until(pilot, lambda: run.held)
        await pilot.press("g")
        await pilot.pause()
        pilot.app.tick(force_chart=True)
        await pilot.pause()

    assert snap_compare(run.app(), terminal_size=(60, 20), run_before=before)
