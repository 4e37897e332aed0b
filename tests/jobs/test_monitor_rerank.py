"""The default top N kept live: re-ranked by RSS, exited and overtaken processes leave, the report keeps them.

The ranking rule is a pure function (tested on numbers); the engine is tested on
real children that allocate when told. The whole-machine scan cannot be
deterministic on a shared machine (another user's job may be the largest), so
the engine tests rank only their own children, read from /proc like the real
scan; one test runs the real scan itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable

import psutil
import pytest

from memtui.errors import UsageError
from memtui.jobs.monitor.engine import MonitorEngine
from memtui.jobs.monitor.events import TargetAdded, TargetGone
from memtui.jobs.monitor.targets import ENTER_GAP, Selection, TopN, ranked_processes, rerank
from memtui.jobs.monitor.tracker import TargetState
from memtui.memory.config import MemoryConfig
from memtui.memory.pid_probe import PidProbe
from memtui.memory.units import MB
from tests.jobs.test_monitor_engine import Child, spawn, wait_for, watch  # noqa: F401 - fixtures


# -- the rule ---------------------------------------------------------------------------------------
def test_free_places_are_filled_largest_first():
    ranked = [(500 * MB, 1), (400 * MB, 2), (300 * MB, 3), (200 * MB, 4)]
    assert rerank(ranked, watched=set(), pinned=set(), n=2) == ([1, 2], [])
    assert rerank(ranked, watched={4}, pinned=set(), n=3) == ([1, 2, 3], [4]), "then the smallest gives way"
    assert rerank(ranked, watched={4}, pinned=set(), n=5) == ([1, 2, 3], [])


def test_a_larger_newcomer_takes_the_smallest_place():
    ranked = [(900 * MB, 9), (500 * MB, 1), (100 * MB, 2)]
    assert rerank(ranked, watched={1, 2}, pinned=set(), n=2) == ([9], [2])


def test_near_equals_do_not_swap_at_every_refresh():
    just_above = 100 * MB + ENTER_GAP - 1
    ranked = [(500 * MB, 1), (just_above, 9), (100 * MB, 2)]
    assert rerank(ranked, watched={1, 2}, pinned=set(), n=2) == ([], [])
    clearly = [(500 * MB, 1), (120 * MB, 9), (100 * MB, 2)]
    assert rerank(clearly, watched={1, 2}, pinned=set(), n=2) == ([9], [2])


def test_a_process_memtui_stopped_never_leaves():
    ranked = [(900 * MB, 9), (800 * MB, 8), (500 * MB, 1), (100 * MB, 2)]
    entering, leaving = rerank(ranked, watched={1, 2}, pinned={2}, n=2)
    assert (entering, leaving) == ([9], [1]), "the pinned small one stays, the other place goes to the largest"
    assert rerank(ranked, watched={1, 2}, pinned={1, 2}, n=2) == ([], [])


def test_a_watched_pid_missing_from_the_scan_is_left_to_the_sampling():
    ranked = [(900 * MB, 9), (500 * MB, 1)]
    assert rerank(ranked, watched={1, 77}, pinned=set(), n=2) == ([9], [1])


def test_only_the_default_selection_is_ranked():
    assert Selection().top() == TopN(5)
    assert Selection(pids=(1,)).top() is None and Selection(match="x").top() is None


# -- the real scan ------------------------------------------------------------------------------------
def test_the_real_scan_ranks_the_users_processes_but_never_memtuis_own():
    """An orphan (not memtui's descendant) is ranked with its real RSS; memtui and its children are not."""
    launcher = subprocess.run(
        [
            sys.executable,
            "-c",
            "import subprocess, sys; p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
            " stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(p.pid)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = int(launcher.stdout)
    own_child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        wait_for(lambda: psutil.Process(orphan).memory_info().rss > 0, "the orphan to run")
        ranked = ranked_processes()
        pids = [pid for _, pid in ranked]
        assert orphan in pids and os.getpid() not in pids and own_child.pid not in pids
        assert [rss for rss, _ in ranked] == sorted((rss for rss, _ in ranked), reverse=True)
        assert dict((pid, rss) for rss, pid in ranked)[orphan] > 1 * MB
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(orphan, signal.SIGKILL)
        own_child.kill()
        own_child.wait(timeout=10)


# -- the engine on real children -------------------------------------------------------------------
def scan_of(children: list[Child]) -> Callable[[], list[tuple[int, int]]]:
    """The real scan's answer, restricted to these children: their RSS read now from /proc."""

    def scan() -> list[tuple[int, int]]:
        ranked = []
        for child in children:
            with contextlib.suppress(psutil.Error):
                if child.proc.poll() is None:
                    ranked.append((psutil.Process(child.pid).memory_info().rss, child.pid))
        return sorted(ranked, reverse=True)

    return scan


def live_pids(engine: MonitorEngine) -> set[int]:
    return {t.pid for t in engine.snapshot().targets if not t.gone}


def test_a_growing_process_enters_the_smallest_leaves_and_an_exit_is_refilled(spawn, watch):  # noqa: F811
    small, middle, grower = spawn(), spawn(), spawn()
    small.step("alloc 20")
    middle.step("alloc 60")
    top = TopN(2, scan=scan_of([small, middle, grower]))
    engine = MonitorEngine(
        [PidProbe(middle.pid), PidProbe(small.pid)], MemoryConfig(), interval_s=0.05, top=top, selection="top 2"
    )
    w = watch(engine)
    grower.step("alloc 150")
    wait_for(lambda: live_pids(engine) == {middle.pid, grower.pid}, "the grower to take the small one's place")
    left = wait_for(lambda: [e for e in w.events if isinstance(e, TargetGone)], "the small one's leaving line")
    assert left[0].target.pid == small.pid and left[0].target.state is TargetState.LEFT
    assert "left the top 2" in left[0].message
    added = [e for e in w.events if isinstance(e, TargetAdded)]
    assert [e.target.pid for e in added] == [grower.pid] and "entered the top 2" in added[0].message

    middle.kill()  # an exit frees a place: the small one comes back at once
    wait_for(lambda: live_pids(engine) == {small.pid, grower.pid}, "the freed place to be refilled")
    exited = wait_for(
        lambda: [e for e in w.events if isinstance(e, TargetGone) and e.target.pid == middle.pid], "the exit line"
    )
    assert exited[0].target.state is TargetState.EXITED and "exited" in exited[0].message
    wait_for(lambda: middle.pid not in {t.pid for t in engine.snapshot().targets}, "the exited one to leave")
    assert not engine.snapshot().finished, "a top-N watch refills; it does not end when its targets exit"

    engine.stop()
    report = w.finish()
    states = [(t["pid"], t["state"]) for t in report["targets"]]
    assert (small.pid, "left") in states and (middle.pid, "exited") in states
    assert (small.pid, "running") in states and (grower.pid, "running") in states
    assert report["peak_pid"] == grower.pid


def test_a_process_memtui_stopped_stays_in_the_top_n_and_is_resumed(spawn, watch):  # noqa: F811
    small, big = spawn(), spawn()
    small.step("alloc 20")
    top = TopN(1, scan=scan_of([small, big]))
    engine = MonitorEngine([PidProbe(small.pid)], MemoryConfig(), interval_s=0.05, top=top)
    w = watch(engine)
    wait_for(lambda: engine.snapshot().rounds >= 2, "a few rounds")
    engine.pause_target(small.pid)
    big.step("alloc 150")
    wait_for(lambda: engine.snapshot().rounds >= 40, "rounds with the bigger process present")
    assert live_pids(engine) == {small.pid}, "memtui must resume what it stopped: the held one keeps its place"
    engine.resume_target(small.pid)
    wait_for(lambda: live_pids(engine) == {big.pid}, "the resumed one to give way")
    engine.stop()
    w.finish()
    assert small.status != "stopped"


def test_a_command_for_a_watch_that_left_and_came_back_sends_nothing(spawn, watch):  # noqa: F811
    """A face passes the watch id it showed; the engine refuses a pid watched anew since (any face, any wire)."""
    a, b = spawn(), spawn()
    a.step("alloc 40")
    engine = MonitorEngine([PidProbe(a.pid)], MemoryConfig(), interval_s=0.05, top=TopN(1, scan=scan_of([a, b])))
    w = watch(engine)
    shown = wait_for(lambda: engine.snapshot().target(a.pid), "a to be watched").watch_id
    b.step("alloc 150")
    wait_for(lambda: live_pids(engine) == {b.pid}, "b to take the only place")
    b.kill()
    wait_for(lambda: live_pids(engine) == {a.pid}, "a back: a new watch of the same pid")
    with pytest.raises(UsageError, match="left the table after it was shown; nothing was sent"):
        engine.terminate_target(a.pid, shown)
    assert a.proc.poll() is None and engine.snapshot().target(a.pid).actions == ()
    action = engine.pause_target(a.pid, engine.snapshot().target(a.pid).watch_id)  # the current watch is obeyed
    assert action.ok
    wait_for(lambda: a.status == "stopped", "SIGSTOP to take effect")  # delivered asynchronously
    engine.resume_target(a.pid)
    engine.stop()
    w.finish()
