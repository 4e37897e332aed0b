"""The attach server in-process, over a real Runner with a fast fake executor: slow and frozen viewers
never hold the run back (bounded outboxes, drop-and-resync, dropped after the send timeout), commands
reach only the engine's own names, and the RemoteEngine satisfies the Engine protocol."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from memtui import wire
from memtui.attach.client import RemoteEngine, read_lines
from memtui.attach.server import AttachServer
from memtui.engine import Engine
from memtui.errors import ConfigError, RuntimeFailure
from memtui.jobs.cache import CacheJob
from memtui.memory import MemoryConfig, MemoryMonitor
from memtui.memory.units import GB
from memtui.runner import Runner
from memtui.trace import RunTrace
from tests.support.executors import FakeExecutor
from tests.support.inputs import write_input


@pytest.fixture
def run_dir(monkeypatch):
    folder = Path(tempfile.mkdtemp(prefix="mts", dir="/tmp"))
    monkeypatch.setenv("MEMTUI_RUN_DIR", str(folder / "runs"))
    yield folder / "runs"
    shutil.rmtree(folder, ignore_errors=True)


def make_runner(
    tmp_path: Path, *, domains: int = 40, delay_s: float = 0.002, gate=None, config: MemoryConfig | None = None
) -> Runner:
    cache = tmp_path / "cache.sqlite"
    job = CacheJob(
        write_input(tmp_path / "in.jsonl", domains=domains, per_domain=9),
        cache,
        FakeExecutor(delay_s=delay_s, sub_batch=2, gate=gate),
        model_id="t",
    )
    config = config or MemoryConfig(batch_size_max=1, batch_size_min=1)
    return Runner(job, MemoryMonitor(config), trace=RunTrace(cache.with_name("cache.sqlite.trace")))


def timed_run(runner: Runner) -> float:
    start = time.monotonic()
    report = runner.run()
    assert report["status"] == "success"
    return time.monotonic() - start


def test_a_frozen_viewer_is_resynced_then_dropped_and_never_slows_the_run(tmp_path, run_dir):
    runner = make_runner(tmp_path)
    runner.open()
    server = AttachServer(runner, snapshot_every_s=0.01, outbox_lines=8, send_timeout_s=1.0).start()
    frozen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    frozen.connect(str(server.socket_path))  # and never reads a byte
    healthy = RemoteEngine(str(server.socket_path))
    deadline = time.monotonic() + 60
    while server.viewers < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    viewers = list(server._viewers)
    elapsed = timed_run(runner)
    server.finish(runner.snapshot().report)
    assert healthy.run()["status"] == "success"  # the healthy viewer got the report
    assert elapsed < 30
    frozen_viewer = viewers[0]
    assert frozen_viewer.resyncs > 0 or not frozen_viewer.open
    frozen.close()
    assert not server.socket_path.exists() and not (run_dir / f"{server.run_id}.json").exists()


def test_the_outbox_drops_its_backlog_for_a_fresh_snapshot(tmp_path, run_dir):
    from memtui.attach.server import _line, _Viewer

    runner = make_runner(tmp_path, domains=3)
    runner.open()
    server = AttachServer(runner, outbox_lines=4)
    viewer = _Viewer(server, conn=None, pid=0)  # type: ignore[arg-type]  # never sends: only the outbox
    for _n in range(3):
        viewer.push("snapshot", _line("snapshot", runner.snapshot()))
    assert len(viewer.outbox) == 1  # a newer snapshot replaces one not yet sent
    viewer.push("delta", b"new samples only\n")
    assert viewer.outbox[-1] == ("snapshot", server.full_line())  # not a delta: its samples would be lost
    assert wire.loads(server.full_line())[0] == "snapshot"
    event = _line("event", wire.decode(wire.encode(runner.snapshot().memory.breaker)) and None)  # a plain null body
    for _ in range(10):
        viewer.push("event", event)
    assert viewer.resyncs >= 1
    kinds = [kind for kind, _ in viewer.outbox]
    assert len(viewer.outbox) <= 4 + 2 and "snapshot" in kinds
    note = next(line for kind, line in viewer.outbox if kind == "event" and b"fell behind" in line)
    assert b"resynced" in note


def test_commands_reach_only_the_engines_own_names(tmp_path, run_dir):
    gate = threading.Event()
    runner = make_runner(tmp_path, domains=4, gate=gate)
    runner.open()
    server = AttachServer(runner).start()
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(5)
        sock.connect(str(server.socket_path))
        lines = read_lines(sock)

        def ask(body) -> dict:
            sock.sendall((wire.dumps("command", body) + "\n").encode())
            for raw in lines:
                kind, reply = wire.loads(raw)
                if kind == "reply":
                    return reply
            raise AssertionError("no reply")

        for name in ("run", "emergency_exit", "__init__", "snapshot", "_lock", "subscribe"):
            reply = ask({"id": 1, "name": name, "args": [], "kwargs": {}})
            assert reply["ok"] is False and "takes no command" in reply["error"], name
        built = {"warning": {"__type__": "MemoryLimit"}}  # no objects from a viewer, not even listed types
        assert ask({"id": 2, "name": "set_thresholds", "kwargs": built})["ok"] is False
        reply = ask({"id": 3, "name": "set_thresholds", "kwargs": {"warning": "9GB", "max": "1GB"}})
        assert reply["ok"] is False and reply["type"] == "ConfigError"
        assert ask({"id": 4, "name": "pause"})["ok"] is True
        assert runner.snapshot().paused
        sock.sendall(b"not json\n")
        reply = next(body for kind, body in map(wire.loads, lines) if kind == "reply")
        assert reply["ok"] is False and "not a command" in reply["error"]
        assert runner.snapshot().paused  # nonsense changes nothing; the run goes on
        assert ask({"id": 5, "name": "stop"})["ok"] is True
        gate.set()
        worker.join(30)
        assert runner.snapshot().report["exit_code"] == 130
        sock.close()
    finally:
        gate.set()
        runner.stop()
        worker.join(30)
        server.finish(runner.snapshot().report)


def test_a_remote_engine_is_an_engine(tmp_path, run_dir):
    runner = make_runner(tmp_path, domains=3)
    runner.open()
    server = AttachServer(runner).start()
    try:
        remote = RemoteEngine(str(server.socket_path))
        assert isinstance(remote, Engine)
        assert remote.kind == "job" and remote.commands == runner.commands
        assert remote.snapshot().items_total == runner.snapshot().items_total
        remote.set_batch_limits(minimum=1, maximum=2)  # an engine's own command, through call()
        assert runner.snapshot().batch_max == 2
        remote.detach()
        remote.stop()  # after detaching: nothing reaches the run
        assert not runner.snapshot().stopping
    finally:
        server.finish()


def test_deltas_carry_only_new_samples_and_every_viewer_holds_the_runs_history(tmp_path, run_dir, capsys):
    """After the first snapshot a viewer gets only new samples, yet the RemoteEngine and ``attach --json``
    (full snapshots for scripts) hold exactly the run's memory history."""
    from memtui.attach.commands import stream_json

    config = MemoryConfig(batch_size_max=1, batch_size_min=1, sample_interval_s=0.01, history_size=100_000)
    runner = make_runner(tmp_path, domains=60, delay_s=0.01, config=config)
    runner.open()
    server = AttachServer(runner, snapshot_every_s=0.05).start()
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.settimeout(30)
    raw.connect(str(server.socket_path))
    received: list[tuple[str, object]] = []
    reader = threading.Thread(target=lambda: received.extend(map(wire.loads, read_lines(raw))), daemon=True)
    reader.start()
    remote = RemoteEngine(str(server.socket_path))
    codes: list[int] = []
    streamer = threading.Thread(target=lambda: codes.append(stream_json(server.entry)), daemon=True)
    streamer.start()
    seen: list[tuple[tuple[float, int], ...]] = []
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    while worker.is_alive():  # what the viewer holds, as the run goes
        seen.append(remote.snapshot().memory.history)
        time.sleep(0.02)
    server.finish(runner.snapshot().report)
    for thread in (reader, streamer):
        thread.join(30)
    run_history = runner.snapshot().memory.history
    assert len(run_history) > 50

    deltas = [body for kind, body in received if kind == "delta"]
    assert len(deltas) > 5
    assert all(len(d["snapshot"].memory.history) < d["history_len"]["memory"] for d in deltas[1:])
    assert len(run_history) > max(len(d["snapshot"].memory.history) for d in deltas[1:]) * 4

    seen.append(remote.snapshot().memory.history)
    assert len(seen[-1]) > len(run_history) / 2
    for history in seen:  # never a gap, never a sample twice: the run's own history, as far as it went
        assert history == run_history[: len(history)]

    assert codes == [0]
    lines = [wire.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = {kind for kind, _ in lines}
    assert "delta" not in kinds and "snapshot" in kinds
    assert lines[-1][0] == "report"  # the run's last word: its own last event went before it
    assert "RunFinished" in {type(body).__name__ for _, body in lines[-4:-1]}
    streamed = [body.memory.history for kind, body in lines if kind == "snapshot"]
    assert len(streamed) > 5
    for history in streamed:
        assert history == run_history[: len(history)]


async def test_an_attached_dashboard_redraws_per_frame_not_per_poll(tmp_path, run_dir, monkeypatch):
    """The viewer polls its RemoteEngine often (keys feel quick) but draws a snapshot once: a poll
    that brings no new frame and no event redraws nothing. Load-proof: it waits on counts, not on time."""
    from memtui.tui.attached import AttachedMemtuiApp
    from memtui.tui.screens.dashboard import DashboardScreen

    gate = threading.Event()
    runner = make_runner(tmp_path, domains=4, gate=gate)  # held in its first batch: a quiet run
    runner.open()
    server = AttachServer(runner, snapshot_every_s=0.5).start()
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    drawn: list[object] = []
    polls = [0]
    draw = DashboardScreen.watch_snapshot
    tick = AttachedMemtuiApp.tick
    monkeypatch.setattr(DashboardScreen, "watch_snapshot", lambda screen, s: (drawn.append(s), draw(screen, s)))
    monkeypatch.setattr(
        AttachedMemtuiApp, "tick", lambda app, **kw: (polls.__setitem__(0, polls[0] + 1), tick(app, **kw))
    )

    async def until(what: str, condition) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {len(drawn)} drawn, {polls[0]} polls"
            await pilot.pause(0.05)

    try:
        app = AttachedMemtuiApp(RemoteEngine(str(server.socket_path)), poll_interval=0.02)
        async with app.run_test(size=(80, 24)) as pilot:
            await until("the replayed past to be drawn", lambda: drawn)
            drawn.clear()
            polls[0] = 0
            # Several frames drawn, and many more polls than frames: a per-poll redraw never gets here.
            await until("3 frames and 4 polls a frame", lambda: len(drawn) >= 3 and polls[0] >= 4 * len(drawn))
            assert len({id(s) for s in drawn}) == len(drawn)  # each frame drawn once
            await pilot.press("d")
    finally:
        gate.set()
        runner.stop()
        worker.join(30)
        server.finish(runner.snapshot().report)


def test_a_viewer_attaching_mid_run_beside_another_gets_the_runs_exact_history(tmp_path, run_dir):
    """The second viewer's deltas start where its first snapshot ends (the first viewer's base is not
    its own): it holds the run's memory history with no gap and no sample twice, as does the first."""
    config = MemoryConfig(batch_size_max=1, batch_size_min=1, sample_interval_s=0.01, history_size=100_000)
    gate = threading.Event()
    runner = make_runner(tmp_path, domains=3, gate=gate, config=config)  # held: the history grows, the run waits
    runner.open()
    server = AttachServer(runner, snapshot_every_s=0.05).start()
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    first = RemoteEngine(str(server.socket_path))
    seen: dict[str, list[tuple[tuple[float, int], ...]]] = {"first": [], "second": []}

    def watch(until) -> None:
        deadline = time.monotonic() + 60
        while not until():
            assert time.monotonic() < deadline, "timed out watching the run's history grow"
            for name, remote in viewers.items():
                seen[name].append(remote.snapshot().memory.history)
            time.sleep(0.02)

    try:
        viewers = {"first": first}
        watch(lambda: len(seen["first"]) > 3 and len(seen["first"][-1]) > 40)  # the first one follows deltas
        past = len(runner.snapshot().memory.history)
        second = RemoteEngine(str(server.socket_path))
        viewers["second"] = second
        joined = len(second.snapshot().memory.history)
        assert joined >= past  # the whole past, in its first snapshot
        watch(lambda: len(seen["second"][-1] if seen["second"] else ()) > joined + 40)
    finally:
        gate.set()
        worker.join(60)
        server.finish(runner.snapshot().report)
    assert first.run()["status"] == second.run()["status"] == "success"
    run_history = runner.snapshot().memory.history
    for name in seen:
        seen[name].append(viewers[name].snapshot().memory.history)
        for history in seen[name]:  # never a gap, never a sample twice
            assert history == run_history[: len(history)], name
    assert len(seen["second"][-1]) > joined + 40  # it went on getting new samples


def test_a_viewer_that_stops_reading_is_dropped_after_the_send_timeout(tmp_path, run_dir):
    """A viewer that never reads fills its socket; the sender's write then waits at most the send timeout
    and the viewer is dropped (not resynced: its outbox never overflows), while another viewer goes on."""
    gate = threading.Event()
    runner = make_runner(tmp_path, domains=3, gate=gate)
    runner.open()
    server = AttachServer(runner, snapshot_every_s=0.01, outbox_lines=1_000_000, send_timeout_s=1.0).start()
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    frozen = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    frozen.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        frozen.connect(str(server.socket_path))  # and never reads a byte
        deadline = time.monotonic() + 60
        while server.viewers < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        [frozen_viewer] = list(server._viewers)
        healthy = RemoteEngine(str(server.socket_path))
        while frozen_viewer.open:
            assert time.monotonic() < deadline + 60, "the frozen viewer was never dropped"
            time.sleep(0.05)
        assert frozen_viewer.resyncs == 0  # dropped by the send timeout, not by an overflowing outbox
        assert frozen_viewer not in server._viewers and server.viewers == 1
        before = healthy.snapshot()
        deadline = time.monotonic() + 60
        while healthy.snapshot() is before:  # the other viewer still gets frames
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        frozen.close()
        gate.set()
        worker.join(60)
        server.finish(runner.snapshot().report)


def test_attach_json_rebuilds_each_full_snapshot_byte_for_byte(tmp_path):
    """A script gets from a delta exactly the line the run would have sent in full (samples kept as text)."""
    import dataclasses

    from memtui.attach import delta
    from memtui.attach.commands import _FullSnapshots
    from memtui.attach.server import _line

    runner = make_runner(tmp_path, domains=3)
    runner.open()
    s = runner.snapshot()
    samples = tuple((1000.0 + i / 7, 500_000_000 + 4099 * i) for i in range(60))

    def at(start: int, end: int, done: int):
        return dataclasses.replace(s, memory=dataclasses.replace(s.memory, history=samples[start:end]), items_done=done)

    frames = [at(0, 30, 1), at(0, 40, 2), at(5, 45, 3), at(20, 60, 4)]  # the history fills, then slides
    full = _FullSnapshots()
    assert full.line(_line("snapshot", frames[0])) is not None
    for before, now in zip(frames, frames[1:]):
        body, lengths = delta.cut(now, delta.since(before))
        assert len(body.memory.history) < len(now.memory.history)
        line = full.line(_line("delta", {"snapshot": body, "history_len": lengths}))
        assert line is not None and line.encode() == _line("snapshot", now).rstrip(b"\n")


def test_a_viewer_sets_all_the_engines_levels_and_is_told_when_a_command_found_no_run(tmp_path, run_dir):
    """The job's `t` dialog sends a reset level too; once the run is over, a command whose answer matters
    raises instead of returning None (read as done), while pause/stop stay quiet (snapshots tell)."""
    gate = threading.Event()
    runner = make_runner(tmp_path, domains=3, gate=gate)
    runner.open()
    server = AttachServer(runner).start()
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()
    try:
        remote = RemoteEngine(str(server.socket_path))
        remote.set_thresholds(warning="0.9GB", max="1.4GB", reset="0.8GB", reset_follows=False)
        levels = runner.snapshot().memory
        assert (round(levels.warning_bytes / GB, 2), round(levels.max_bytes / GB, 2)) == (0.9, 1.4)
        assert round(runner.monitor.config.reset_memory_gb or 0, 2) == 0.8
        with pytest.raises(ConfigError):
            remote.set_thresholds(warning="2GB", max="1GB")  # the engine's own check, as its error type
        gate.set()
        worker.join(30)
        server.finish(runner.snapshot().report)
        deadline = time.monotonic() + 10
        while remote.report is None and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(RuntimeFailure, match="set_batch_limits: not sent, the run has ended"):
            remote.set_batch_limits(minimum=1, maximum=2)
        remote.pause()  # quiet: nothing to pause, and no error for the face to show
    finally:
        gate.set()
        worker.join(30)
