"""memtui.cluster.bounded: a blocking call waited for with a deadline and a stop flag (no Dask needed)."""

from __future__ import annotations

import threading

import pytest

from memtui.cluster.bounded import Late, Stopped, bounded


def test_the_result_and_the_exception_of_a_call_that_returns():
    assert bounded(lambda: 42, timeout_s=30) == 42

    def fails() -> None:
        raise OSError("refused")

    with pytest.raises(OSError, match="refused"):
        bounded(fails, timeout_s=30)


def test_a_call_that_never_returns_is_left_at_its_deadline_or_at_once_on_a_stop():
    never = threading.Event()
    with pytest.raises(Late):
        bounded(never.wait, timeout_s=0.3)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    with pytest.raises(Stopped):
        bounded(never.wait, timeout_s=3600, stopped=stop.is_set)


def test_what_a_call_returns_after_it_was_left_is_closed():
    release, closed = threading.Event(), threading.Event()
    got: list[object] = []

    def slow() -> str:
        release.wait(60)
        return "client"

    with pytest.raises(Late):
        bounded(slow, timeout_s=0.2, on_late=lambda late: (got.append(late), closed.set()))
    release.set()
    assert closed.wait(30) and got == ["client"]
