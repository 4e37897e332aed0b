"""The process table's columns for a width, its cells' text, its orders and filter, the row sparkline."""

from __future__ import annotations

import pytest

from memtui.tui.process_columns import LAYOUTS, PADDING, Order, fit, matches, size, trend
from memtui.tui.widgets.process_table import SCROLLBAR
from memtui.tui.widgets.row_sparkline import BLOCKS, MIN_SPAN, row_sparkline


def keys(width: int) -> list[str]:
    return [c.key for c in fit(width)]


def used(width: int) -> int:
    return sum(c.width + PADDING for c in fit(width))


@pytest.mark.parametrize("terminal", [60, 64, 70, 80, 90, 100, 120, 160, 200])
def test_the_columns_fill_the_table_and_never_overflow_it(terminal):
    width = terminal - 2 - SCROLLBAR  # the table's border and the scrollbar's room
    assert used(width) == width
    assert {"pid", "name", "rss", "state", "eta"} <= set(keys(width)), "s/r/k act on rows whose state is shown"


def test_what_goes_first_as_the_terminal_narrows():
    assert keys(76) == ["pid", "name", "rss", "trend", "state", "eta"]  # 80 columns: issue #13's list
    assert "history" in keys(96) and "peak" not in keys(96)  # 100 columns: the row sparkline
    assert "history" not in keys(95)  # 99 columns: not yet
    assert {"history", "peak", "breaker"} <= set(keys(116)) and "peak" not in keys(115)  # 120 columns: everything
    assert keys(56) == ["pid", "name", "rss", "state", "eta"]  # 60 columns: the trend goes, State stays
    assert next(c for c in fit(56) if c.key == "state").width < next(c for c in fit(76) if c.key == "state").width
    assert next(c for c in fit(56) if c.key == "name").width >= 12


def test_a_very_narrow_table_keeps_the_last_layout():
    assert [c.key for c in fit(20)] == [c.key for c in LAYOUTS[-1]]


def test_sizes_and_rates_in_memtuis_units():
    assert [size(300 * 1024), size(4.2 * 2**20), size(124 * 2**20), size(1.5 * 2**30)] == [
        "0.3MB",
        "4.2MB",
        "124MB",
        "1.50GB",
    ]
    assert [trend(None), trend(0.0), trend(1.24 * 2**20), trend(-12.4 * 2**20), trend(1.5 * 2**30)] == [
        "—",
        "0MB/s",
        "+1.2MB/s",
        "-12MB/s",
        "+1.5GB/s",
    ]


def test_o_cycles_rss_growth_pid():
    assert [Order.RSS.next(), Order.GROWTH.next(), Order.PID.next()] == [Order.GROWTH, Order.PID, Order.RSS]


class _Target:
    def __init__(self, pid: int, name: str, label: str) -> None:
        self.pid, self.name, self.label = pid, name, label


def test_the_filter_matches_pid_name_or_command_line_in_any_case():
    t = _Target(4242, "python3", "python3 train.py --epochs 3")
    assert all(matches(t, text) for text in ("", "424", "PYTHON", "train", " epochs "))  # type: ignore[arg-type]
    assert not matches(t, "worker")  # type: ignore[arg-type]


def test_the_row_sparkline_draws_growth_and_keeps_noise_flat():
    mb = 2**20
    assert row_sparkline([100 * mb, 101 * mb, 99 * mb, 100 * mb], 4) == BLOCKS[0] * 4, "2MB of noise is flat"
    ramp = row_sparkline([0, MIN_SPAN // 2, MIN_SPAN, 2 * MIN_SPAN], 4)
    assert ramp[0] == BLOCKS[0] and ramp[-1] == BLOCKS[-1] and list(ramp) == sorted(ramp)
    assert row_sparkline([5 * mb], 3) == "  " + BLOCKS[0], "a short history is right-aligned"
    assert row_sparkline([], 3) == "   " and len(row_sparkline(list(range(20)), 8)) == 8
