"""EngineCore: the commands, events and working time every engine shares, on a fake clock (no sleeping)."""

from __future__ import annotations

import threading

import pytest

from memtui.engine import call
from memtui.engine_core import EngineCore, Requests, Wording
from memtui.events import Notice
from memtui.jobs.cache import CacheJob
from memtui.jobs.monitor.engine import MonitorEngine
from memtui.memory import MemoryConfig, MemoryMonitor
from memtui.runner import JobEngine, Runner
from tests.support.executors import FakeExecutor
from tests.support.fakes import FakeClock
from tests.support.inputs import write_input

WORDS = Wording(pause="paused!", resume="resumed!", stop="stopping!")


def notes(queue) -> list[str]:
    return [e.message for e in queue.drain() if isinstance(e, Notice)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def core(clock: FakeClock) -> EngineCore:
    return EngineCore(clock=clock, wording=WORDS)


def test_pause_and_resume_say_so_once_per_change(core: EngineCore):
    queue = core.subscribe()
    core.pause()
    core.pause()  # already paused: nothing new to say
    assert core.paused and core._requests() == Requests(stop=False, paused=True, cleanup=False)
    core.resume()
    core.resume()
    assert not core.paused
    assert notes(queue) == ["paused!", "resumed!"]


def test_a_cleanup_request_is_taken_once(core: EngineCore):
    assert core._take_cleanup() is False
    core.request_cleanup()
    assert core._requests().cleanup
    assert core._take_cleanup() is True
    assert core._take_cleanup() is False


def test_stop_wakes_a_waiting_engine_thread_at_once(core: EngineCore):
    woke = threading.Event()

    def engine_thread() -> None:
        core._wait_for(lambda: core._stop_requested, 60.0)  # a minute, unless the stop wakes it
        woke.set()

    thread = threading.Thread(target=engine_thread)
    thread.start()
    queue = core.subscribe()
    core.stop()
    assert woke.wait(30), "the stop did not wake the engine's wait"
    thread.join(30)
    assert core._requests().stop and notes(queue) == ["stopping!"]


def test_held_spells_are_left_out_of_working_time_not_elapsed(core: EngineCore, clock: FakeClock):
    assert core._elapsed() == 0.0 and core._working() == 0.0  # not begun
    core._begin()
    clock.advance(10)
    with core._lock:
        core._hold(True, clock())
    clock.advance(5)
    with core._lock:
        assert core._elapsed() == 15 and core._working() == 10  # held now: the spell so far is left out
        core._hold(True, clock())  # held again while held: the spell began at its start
        core._hold(False, clock())
    clock.advance(5)
    core._end()
    clock.advance(100)  # after the end: both frozen
    with core._lock:
        assert core._elapsed() == 20
        assert core._working() == 15
        assert core._active(1000.0 + 20) == 1000.0 + 15


def test_a_late_subscriber_gets_the_recent_past(core: EngineCore):
    core.pause()
    assert notes(core.subscribe()) == ["paused!"]


def test_both_engines_take_their_commands_from_the_one_core():
    assert issubclass(Runner, EngineCore) and issubclass(MonitorEngine, EngineCore)
    for name in ("pause", "resume", "stop", "request_cleanup", "subscribe", "unsubscribe"):
        assert getattr(Runner, name) is getattr(EngineCore, name) or name == "request_cleanup"
        assert getattr(MonitorEngine, name) is getattr(EngineCore, name) or name == "request_cleanup"


def test_the_runner_has_no_toggle_pause_a_viewer_could_call(tmp_path):
    """A remote viewer reaches only ``commands`` (memtui.engine.call): pause and resume, no toggle."""
    source = write_input(tmp_path / "in.jsonl", domains=2)
    job = CacheJob(source, tmp_path / "c.sqlite", FakeExecutor(), model_id="fake")
    runner = Runner(job, MemoryMonitor(MemoryConfig()))
    assert "toggle_pause" not in runner.commands and not hasattr(runner, "toggle_pause")
    with pytest.raises(ValueError, match="takes no command 'toggle_pause'"):
        call(runner, "toggle_pause")
    assert isinstance(runner, JobEngine)  # what the job's TUI (MemtuiApp) is typed against
    call(runner, "pause")
    assert runner.snapshot().paused
    call(runner, "resume")
    assert not runner.snapshot().paused
