"""The memory panel's headroom lines at 80x24 and 60x20: no cgroup, a cgroup with room, and room for less than
one batch (the warning, the brake holding the run). A frozen run (frozen.py) with a headroom watch on a fake
/proc and /sys tree, so every number is known; each line must fit its panel, and the panel must not overlap
the next one."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.cells import cell_len

from memtui.memory.headroom import HeadroomWatch
from memtui.memory.system import SystemReader
from memtui.memory.units import GB, MB
from tests.memory.test_system import meminfo, v1_group, write

from .frozen import FrozenRun

V1_UNLIMITED = "9223372036854771712"


def no_cgroup(proc: Path, _root: Path) -> None:
    write(proc / "meminfo", meminfo(16384, 12000))


def cgroup_with_room(proc: Path, root: Path) -> None:
    write(proc / "self" / "cgroup", "4:memory:/jobs/memtui\n0::/\n")
    write(proc / "meminfo", meminfo(16384, 12000, swap_total_mb=2048, swap_free_mb=1741))
    v1_group(root / "memory" / "jobs" / "memtui", usage=1536 * MB, limit=str(4 * GB), inactive=308 * MB)


def cgroup_nearly_full(proc: Path, root: Path) -> None:
    write(proc / "self" / "cgroup", "4:memory:/jobs/memtui\n0::/\n")
    write(proc / "meminfo", meminfo(16384, 12000))
    v1_group(root / "memory" / "jobs", usage=2 * GB, limit=str(2 * GB), inactive=10 * MB)
    v1_group(root / "memory" / "jobs" / "memtui", usage=1200 * MB, limit=V1_UNLIMITED, inactive=0)


#: state -> (tree, headroom line, readings line); the frozen run's sub-batches grow RSS by 22MB each.
STATES = {
    "no cgroup": (
        no_cgroup,
        "headroom 11.7GB to available  batch +0.02GB",
        "no memory cgroup  avail 11.7GB  no swap",
    ),
    "cgroup with room": (
        cgroup_with_room,
        "headroom 2.80GB to cgroup  batch +0.02GB",
        "cgroup 1.20/4.00GB  avail 11.7GB  swap 0.3/2.0GB",
    ),
    "below one batch": (
        cgroup_nearly_full,
        "headroom 0.01GB < batch +0.02GB (cgroup)",
        "cgroup 1.99/2.00GB  avail 11.7GB  no swap",
    ),
}
SIZES = [(80, 24), (60, 20)]


@pytest.fixture
def frozen_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    runs: list[FrozenRun] = []

    def make(tree) -> FrozenRun:
        proc, root = tmp_path / "proc", tmp_path / "sys"
        tree(proc, root)
        run = FrozenRun(tmp_path, hold_at=24)
        run.runner.headroom = HeadroomWatch(SystemReader(proc, root, getrlimit=None))
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.release()


async def _held(pilot, run: FrozenRun, *, braked: bool = False) -> None:
    """Until the run is held at its point; with ``braked``, until the headroom brake holds it (it never
    reaches that point: below one batch's cost, no sub-batch starts)."""

    def there() -> bool:
        if braked:
            snap = run.runner.snapshot()
            return snap.phase == "waiting for memory" and snap.headroom is not None and snap.headroom.low
        return run.held

    for _ in range(1500):
        if there():
            break
        await pilot.pause(0.02)
    assert there(), "the frozen run never reached its point"
    pilot.app.tick(force_chart=True)
    await pilot.pause()
    pilot.app.tick(force_chart=True)  # once more: the readings line fits the width laid out by the first
    await pilot.pause()


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("state", list(STATES))
async def test_headroom_lines_fit_and_tell_the_state(frozen_with, state, size):
    tree, headroom, readings = STATES[state]
    run = frozen_with(tree)
    app = run.app()
    low = state == "below one batch"
    async with app.run_test(size=size) as pilot:
        await _held(pilot, run, braked=low)
        d = app.dashboard
        panel, text = d.query_one("#memory"), d.query_one("#memory-text")
        lines = str(text.render()).splitlines()
        assert lines[2] == headroom
        # two spaces between the readings where they fit, one where they would not (80 columns with swap)
        assert lines[3] == (readings if cell_len(readings) <= text.content_size.width else " ".join(readings.split()))
        assert lines[0].startswith("RSS ") and lines[4].startswith("time to breaker")
        width = text.content_size.width
        assert all(cell_len(line) <= width for line in lines), (width, lines)  # nothing cut off
        assert text.region.height == len(lines) == 5
        progress = d.query_one("#progress")
        assert panel.region.bottom <= progress.region.y, "the memory panel overlaps what is under it"
        assert progress.region.bottom <= app.size.height - 1, "the progress panel is pushed off the screen"
        assert panel.has_class("-headroom-low") is low
        assert ("headroom below one batch" in panel.border_title) is low
        warned = [line for line in d.gc_log.lines_text() if "below one batch's measured cost" in line]
        assert bool(warned) is low
        await pilot.press("q", "y")


@pytest.mark.parametrize("size", [(60, 40), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
async def test_tall_terminals_keep_every_line(frozen_with, size):
    """Tall terminals give the sparkline three rows: the panel grows so the five lines still show."""
    run = frozen_with(cgroup_with_room)
    app = run.app()
    async with app.run_test(size=size) as pilot:
        await _held(pilot, run)
        d = app.dashboard
        panel, text = d.query_one("#memory"), d.query_one("#memory-text")
        assert text.region.height == 5
        assert text.region.bottom <= panel.content_region.bottom, "the last line is cut off"
        await pilot.press("q", "y")


async def test_without_a_watch_the_limit_line_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A run that reads no system memory (a viewer of an older run, the frozen screens) keeps four lines."""
    monkeypatch.chdir(tmp_path)
    run = FrozenRun(tmp_path, hold_at=24)
    try:
        app = run.app()
        async with app.run_test(size=(80, 24)) as pilot:
            await _held(pilot, run)
            d = app.dashboard
            lines = str(d.query_one("#memory-text").render()).splitlines()
            assert lines[2].startswith("limit 2.00GB from cgroup")
            assert not d.query_one("#body").has_class("-system")
            assert d.query_one("#memory-text").region.height == 4
            await pilot.press("q", "y")
    finally:
        run.release()
