"""One Engine contract (memtui.engine), two engines, one headless host, one TUI host.

Both engines satisfy the protocol (at runtime here, statically when mypy checks
this file: ``_static_check``), their snapshots survive the wire, the monitor's
new pause/resume/cleanup do what the contract says, and the one headless host
treats both the same way: signals, a second signal's emergency exit, hangups,
worker errors. The layers stay a tree: no engine imports a face or the CLI.
"""

from __future__ import annotations

import ast
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from memtui import wire
from memtui.engine import PROTOCOL_COMMANDS, Engine, EngineSnapshot, call
from memtui.events import CleanupRan, Notice
from memtui.faces import job as job_face
from memtui.faces import monitor as monitor_face
from memtui.faces.headless import HeadlessFace, parts_for
from memtui.jobs.cache import CacheJob
from memtui.jobs.monitor.engine import MonitorEngine
from memtui.jobs.monitor.tracker import TargetState
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.pid_probe import PidProbe
from memtui.runner import Runner
from tests.support.executors import FakeExecutor
from tests.support.inputs import write_input

ROOT = Path(__file__).resolve().parents[1]


def _static_check(runner: Runner, monitor: MonitorEngine) -> list[Engine]:
    """mypy checks this: both engines are Engines, and their snapshots EngineSnapshots."""
    snapshots: list[EngineSnapshot] = [runner.snapshot(), monitor.snapshot()]
    assert snapshots
    return [runner, monitor]


def wait_until(check: Callable[[], bool], timeout: float = 60.0, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


@pytest.fixture
def held_runner(tmp_path: Path) -> Iterator[tuple[Runner, FakeExecutor]]:
    """A real Runner parked at its first sub-batch until it is asked to stop."""
    executor = FakeExecutor(sub_batch=2, gate=threading.Event())
    job = CacheJob(write_input(tmp_path / "in.jsonl", domains=6), tmp_path / "c.sqlite", executor, model_id="fake")
    runner = Runner(job, MemoryMonitor(MemoryConfig()))
    executor.stop_check = lambda: runner.snapshot().stopping
    runner.open()
    yield runner, executor
    executor.released.set()


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield child
    child.kill()
    child.wait()


@pytest.fixture
def watch(sleeper: subprocess.Popen) -> MonitorEngine:
    return MonitorEngine([PidProbe(sleeper.pid)], MemoryConfig(), interval_s=0.05, selection="the sleeper")


def _finish(engine: Engine) -> dict[str, Any]:
    """Run the engine in a thread, stop it once it has started, return its report."""
    box: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: box.update(report=engine.run()))
    worker.start()
    wait_until(lambda: engine.snapshot().elapsed_s > 0, what="the engine to start")
    engine.stop()
    worker.join(10)
    return box["report"]


# -- the contract --------------------------------------------------------------------------------


def test_both_engines_satisfy_the_protocol_and_their_snapshots_round_trip(held_runner, watch):
    runner, _ = held_runner
    for engine, kind in ((runner, "job"), (watch, "monitor")):
        assert isinstance(engine, Engine)
        assert engine.kind == kind
        assert set(PROTOCOL_COMMANDS) <= set(engine.commands)
        before = engine.snapshot()
        report = _finish(engine)
        after = engine.snapshot()
        for snapshot in (before, after):
            assert isinstance(snapshot, EngineSnapshot)
            kind_back, back = wire.loads(wire.dumps("snapshot", snapshot))
            assert kind_back == "snapshot" and back == snapshot
        assert not before.finished and before.report is None and not before.paused
        assert after.finished and after.report == report and after.stopping
        assert report["status"] == "interrupted" and report["exit_code"] == 130
    assert _static_check(runner, watch) == [runner, watch]


def test_the_monitors_own_commands_are_named_and_nothing_else_is_callable(watch, sleeper):
    assert {"pause_target", "resume_target", "terminate_target"} <= set(watch.commands)
    action = call(watch, "pause_target", sleeper.pid)
    assert action.ok
    wait_until(lambda: psutil.Process(sleeper.pid).status() == psutil.STATUS_STOPPED, what="SIGSTOP")
    call(watch, "resume_target", sleeper.pid)
    for name in ("release_all", "_act", "run", "__class__"):
        with pytest.raises(ValueError, match="takes no command"):
            call(watch, name)


def test_a_paused_watch_samples_nothing_and_says_so(watch):
    events = watch.subscribe()
    worker = threading.Thread(target=watch.run)
    worker.start()
    try:
        wait_until(lambda: watch.snapshot().rounds >= 2, what="two rounds")
        watch.pause()
        paused = watch.snapshot()
        assert paused.paused and wire.loads(wire.dumps("snapshot", paused))[1] == paused
        time.sleep(0.1)  # a round already under way may still finish
        rounds = watch.snapshot().rounds
        time.sleep(0.4)  # eight intervals
        assert watch.snapshot().rounds == rounds, "a paused watch kept sampling"
        watch.resume()
        assert not watch.snapshot().paused
        wait_until(lambda: watch.snapshot().rounds > rounds, what="sampling to resume")
    finally:
        watch.stop()
        worker.join(10)
    notes = [e.message for e in events.drain() if isinstance(e, Notice)]
    assert "⏸️ Watch paused: no sampling and no breaker actions until resumed" in notes
    assert "▶️ Watch resumed" in notes


def test_a_paused_watch_takes_no_breaker_action(sleeper):
    sent: list[int] = []
    engine = MonitorEngine(
        [PidProbe(sleeper.pid)], MemoryConfig(), interval_s=0.05, policy="stop", send=lambda proc, sig: sent.append(sig)
    )
    engine.pause()
    engine.set_thresholds(warning="1MB", max="2MB")  # the sleeper is far above both
    worker = threading.Thread(target=engine.run)
    worker.start()
    try:
        time.sleep(0.4)
        assert sent == [] and engine.snapshot().rounds == 0 and engine.snapshot().targets[0].trips == 0
        engine.resume()
        wait_until(lambda: sent == [signal.SIGSTOP], what="the breaker's stop once resumed")
    finally:
        engine.stop()
        worker.join(10)
    assert signal.SIGCONT in sent  # and memtui resumes what it stopped as the watch ends


def test_a_monitor_cleanup_cleans_memtuis_own_process_at_once(watch):
    events = watch.subscribe()
    worker = threading.Thread(target=watch.run)
    worker.start()
    try:
        wait_until(lambda: watch.snapshot().rounds >= 1, what="a round")
        watch.request_cleanup()
        wait_until(lambda: any(isinstance(e, CleanupRan) for e in events.drain()), what="the cleanup")
    finally:
        watch.stop()
        worker.join(10)


def test_emergency_exit_resumes_what_the_monitor_stopped(watch, sleeper):
    watch.pause_target(sleeper.pid)
    assert watch.snapshot().targets[0].state is TargetState.STOPPED
    wait_until(lambda: psutil.Process(sleeper.pid).status() == psutil.STATUS_STOPPED, what="SIGSTOP")
    watch.emergency_exit("interrupted twice")
    wait_until(lambda: psutil.Process(sleeper.pid).status() != psutil.STATUS_STOPPED, what="SIGCONT")
    assert watch.snapshot().targets[0].state is not TargetState.STOPPED


def test_emergency_exit_notes_the_runners_end_in_its_trace(held_runner):
    runner, _ = held_runner
    ended: list[str] = []
    runner.trace = type("Trace", (), {"end": lambda self, why: ended.append(why)})()
    runner.emergency_exit("interrupted twice")
    assert ended == ["interrupted twice"]


# -- the one headless host ----------------------------------------------------------------------


@contextmanager
def kept_signal_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _signal_when(ready: Callable[[], bool], *sigs: signal.Signals, gap_s: float = 0.3) -> threading.Thread:
    def send() -> None:
        wait_until(ready, what="the engine to be under way")
        for sig in sigs:
            os.kill(os.getpid(), sig)
            time.sleep(gap_s)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _engines(held_runner, watch) -> list[tuple[Engine, Callable[[], bool], str]]:
    runner, executor = held_runner
    return [
        (runner, executor.holding.is_set, "finishing the sub-batch in flight and committing"),
        (watch, lambda: watch.snapshot().rounds >= 1, "ending the watch"),
    ]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_either_engine_the_same_way(held_runner, watch, sig):
    for engine, ready, stopping in _engines(held_runner, watch):
        err = io.StringIO()
        with kept_signal_handlers():
            sender = _signal_when(ready, sig)
            report = HeadlessFace(engine, err=err, progress_every_s=60).run()
            sender.join(10)
        assert report["status"] == "interrupted" and report["exit_code"] == 130
        assert f"memtui: interrupted: {stopping} (Ctrl-C again to quit now)" in err.getvalue().splitlines()


def test_a_hangup_stops_either_engine_and_never_escalates(held_runner, watch):
    for engine, ready, stopping in _engines(held_runner, watch):
        err = io.StringIO()
        with kept_signal_handlers():
            sender = _signal_when(ready, signal.SIGHUP, signal.SIGHUP, gap_s=0.05)
            face = HeadlessFace(engine, err=err, progress_every_s=60)
            report = face.run()
            sender.join(10)  # the second hangup lands on the ignoring handler the face left, not pytest
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN  # the shell passing it on kills nothing
        assert face.hung_up and report["status"] == "interrupted" and report["exit_code"] == 130
        assert f"memtui: hangup: {stopping}" in err.getvalue().splitlines()
        assert "interrupted again" not in err.getvalue()


class _Exited(Exception):
    pass


def test_a_second_signal_exits_at_once_through_emergency_exit(held_runner, watch, monkeypatch):
    """The Runner notes it in its trace, the monitor resumes what it stopped: one engine method."""
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise _Exited

    monkeypatch.setattr(os, "_exit", fake_exit)
    notes = {"job": " (committed batches are safe)", "monitor": ""}
    for engine, ready, _ in _engines(held_runner, watch):
        # The first signal's stop must not end the run before the second arrives: stop() is held back.
        called: list[str] = []
        monkeypatch.setattr(engine, "stop", lambda: None)
        monkeypatch.setattr(engine, "emergency_exit", called.append)
        err = io.StringIO()
        with kept_signal_handlers():
            sender = _signal_when(ready, signal.SIGINT, signal.SIGTERM)
            with pytest.raises(_Exited):
                HeadlessFace(engine, err=err, progress_every_s=60).run()
            sender.join(10)
        monkeypatch.undo()
        monkeypatch.setattr(os, "_exit", fake_exit)
        assert called == ["interrupted twice"] and codes[-1] == 130
        assert f"memtui: interrupted again, exiting now{notes[engine.kind]}" in err.getvalue().splitlines()
        engine.stop()  # the real one: let the worker end
        wait_until(lambda: engine.snapshot().finished, what="the engine to end")  # noqa: B023 - called here


@pytest.mark.parametrize("kind", ["job", "monitor"])
def test_a_worker_error_is_raised_in_the_main_thread(held_runner, watch, kind, monkeypatch):
    engine: Engine = held_runner[0] if kind == "job" else watch

    def broken() -> dict[str, Any]:
        raise RuntimeError("the engine broke")

    monkeypatch.setattr(engine, "run", broken)
    with kept_signal_handlers(), pytest.raises(RuntimeError, match="the engine broke"):
        HeadlessFace(engine, err=io.StringIO()).run()


def test_each_engine_gets_its_own_parts():
    class Stub:
        kind = "job"

    assert parts_for(Stub()) is job_face.HEADLESS  # type: ignore[arg-type]
    Stub.kind = "monitor"
    assert parts_for(Stub()) is monitor_face.HEADLESS  # type: ignore[arg-type]
    Stub.kind = "dask"
    with pytest.raises(ValueError, match="no headless face for a 'dask' engine"):
        parts_for(Stub())  # type: ignore[arg-type]


def test_the_monitor_prints_every_event_and_the_job_not_what_the_core_logs():
    from memtui.events import MemoryWarning, PhaseChanged

    assert job_face.HEADLESS.progress is not None and monitor_face.HEADLESS.progress is None
    assert not job_face.HEADLESS.shows(MemoryWarning(1)) and monitor_face.HEADLESS.shows(MemoryWarning(1))
    assert not job_face.HEADLESS.shows(PhaseChanged("running"))
    assert job_face.HEADLESS.shows(PhaseChanged("stopping"))


# -- the TUI host ------------------------------------------------------------------------------


def test_run_tui_picks_the_app_for_the_engine(held_runner, watch):
    from memtui.faces.tui import app_class
    from memtui.tui.app import MemtuiApp
    from memtui.tui.monitor_app import MonitorApp

    assert app_class(held_runner[0]) is MemtuiApp and app_class(watch) is MonitorApp


def test_an_engine_app_without_its_hooks_cannot_be_built(watch):
    from memtui.tui.engine_app import EngineApp

    class Half(EngineApp):
        def tick(self) -> None:
            pass

    with pytest.raises(TypeError, match="abstract"):
        Half(watch)  # type: ignore[abstract]


# -- the layers ------------------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


ENGINE_FILES = [
    *sorted((ROOT / "memtui" / "jobs").rglob("*.py")),
    ROOT / "memtui" / "runner.py",
    ROOT / "memtui" / "engine.py",
    ROOT / "memtui" / "events.py",
]


@pytest.mark.parametrize("path", ENGINE_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_engines_import_no_face_and_no_cli(path):
    """jobs/ holds engines only: cli -> jobs -> cli (the old monitor-mode cycle) cannot come back."""
    bad = sorted(
        name
        for name in _imports(path)
        if name.split(".")[:2] in (["memtui", "cli"], ["memtui", "faces"], ["memtui", "tui"], ["memtui", "headless"])
    )
    assert bad == [], f"{path.relative_to(ROOT)} imports a face or the CLI: {bad}"


@pytest.mark.slow  # runs mypy
def test_mypy_sees_both_engines_as_engines():
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent))
    if mypy is None:
        pytest.skip("mypy is not installed")
    # The project's own mypy options and cache (.mypy_cache): `make test` runs `make check`'s mypy first, so
    # only this file and its helpers are checked afresh (about 6 s, where --no-incremental took 30-75 s).
    out = subprocess.run(
        [mypy, "memtui/engine.py", "memtui/faces", __file__],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
