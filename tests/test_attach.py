"""Attachable runs, with real processes and the real model on small inputs.

``memtui run --detach`` starts a run in its own session; ``ls`` lists it; ``attach``
(the Textual dashboard over a RemoteEngine, driven here by Pilot) and
``attach --json`` watch it; ``stop`` ends it cleanly. A viewer killed with -9
leaves the run going; a run killed with -9 makes its viewer exit 1 within
seconds. Another uid is refused by the server's SO_PEERCRED check.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.support.cli import REPO, make_sample, memtui, memtui_env, popen_memtui

pytestmark = [pytest.mark.model, pytest.mark.slow]

DETACHED = re.compile(r"^memtui: run (\w+) detached: pid (\d+), log (\S+); attach with: memtui attach \1$")


@pytest.fixture
def place(tmp_path):
    """A short run folder (a Unix socket path has a 108-byte limit) and an env pointing at it."""
    runs = Path(tempfile.mkdtemp(prefix="mtr", dir="/tmp"))
    (runs / "runs").mkdir(mode=0o700)
    env = memtui_env(MEMTUI_RUN_DIR=str(runs / "runs"), MEMTUI_CACHE=str(tmp_path / "cache.sqlite"))
    started: list[int] = []
    yield runs / "runs", env, started
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(runs, ignore_errors=True)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attach-inputs")
    return {"small": make_sample(folder / "small.jsonl", 4), "big": make_sample(folder / "big.jsonl", 80)}


def detach(place, inputs, size="big", *extra) -> tuple[str, int, Path]:
    _runs, env, started = place
    done = memtui("run", "--input", inputs[size], *extra, "--detach", env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    match = DETACHED.match(done.stdout.strip())
    assert match, done.stdout
    run_id, pid, log = match.group(1), int(match.group(2)), Path(match.group(3))
    started.append(pid)
    return run_id, pid, log


def ls(env) -> list[dict]:
    done = memtui("ls", "--json", env=env, timeout=180)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_detach_ls_and_stop(place, inputs):
    runs, env, _ = place
    run_id, pid, log = detach(place, inputs)
    assert alive(pid)
    assert os.getsid(pid) == pid  # its own session: no terminal, no hangup from ours
    assert stat.S_IMODE(runs.stat().st_mode) == 0o700
    sock = runs / f"{run_id}.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    for path in (runs / f"{run_id}.json", log):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    [row] = ls(env)
    assert set(row) == {
        "id",
        "pid",
        "mode",
        "input",
        "cache",
        "phase",
        "items_done",
        "items_total",
        "rss_gb",
        "breaker",
        "viewers",
    }
    assert row["id"] == run_id and row["pid"] == pid and row["mode"] == "cache" and row["viewers"] == 0
    assert row["items_total"] > 0 and row["breaker"] == "closed" and row["rss_gb"] > 0
    table = memtui("ls", env=env, timeout=30)
    assert run_id in table.stdout and "PHASE" in table.stdout

    done = memtui("stop", run_id, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "exit 130" in done.stderr
    assert not alive(pid)
    report = json.loads((runs / f"{run_id}.report.json").read_text())
    assert report["exit_code"] == 130 and report["status"] == "interrupted"
    assert not sock.exists() and not (runs / f"{run_id}.json").exists()
    assert ls(env) == []
    assert "interrupted" in log.read_text()


def test_attach_json_streams_the_run_to_its_end(place, inputs):
    _runs, env, _ = place
    run_id, pid, _ = detach(place, inputs, "small")
    viewer = popen_memtui("attach", run_id, "--json", env=env)
    out, err = viewer.communicate(timeout=180)
    assert viewer.returncode == 0, err
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert kinds[0] == "hello" and kinds[1] == "snapshot" and kinds[-1] == "report"
    first = json.loads(out.splitlines()[1])["body"]
    assert first["__type__"] == "RunSnapshot" and "history" in first["memory"]
    assert json.loads(out.splitlines()[-1])["body"]["status"] == "success"
    wait_until(lambda: not alive(pid), 30, "the run to exit")


def test_piped_input_is_spooled_before_detaching_and_the_detached_run_embeds_it(place, inputs):
    """``cat f | memtui run --input - --detach``: the data is read here, then handed to the detached run."""
    runs, env, started = place
    data = Path(inputs["small"]).read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "memtui", "run", "--input", "-", "--detach"],
        input=data,
        capture_output=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    match = DETACHED.match(done.stdout.decode().strip())
    assert match, done.stdout
    run_id, pid = match.group(1), int(match.group(2))
    started.append(pid)
    viewer = popen_memtui("attach", run_id, "--json", env=env)
    _out, err = viewer.communicate(timeout=300)
    assert viewer.returncode == 0, err
    report = json.loads((runs / f"{run_id}.report.json").read_text())
    assert report["status"] == "success" and report["exit_code"] == 0
    assert report["input"] == "-" and report["bad_lines"] == 0 and report["items_total"] > 100, report
    assert report["items_embedded"] + report["items_skipped"] == report["items_total"]


def test_a_viewer_killed_with_9_leaves_the_run_going(place, inputs):
    _runs, env, _ = place
    run_id, pid, _ = detach(place, inputs)
    viewer = popen_memtui("attach", run_id, "--json", env=env)
    assert json.loads(viewer.stdout.readline())["kind"] == "hello"
    wait_until(lambda: ls(env)[0]["viewers"] == 1, 60, "ls to count the viewer")
    viewer.kill()
    viewer.wait(10)
    wait_until(lambda: ls(env)[0]["viewers"] == 0, 60, "the dead viewer to be forgotten")
    assert alive(pid)
    done = memtui("stop", run_id, env=env, timeout=120)
    assert done.returncode == 0, done.stderr


def test_the_run_killed_with_9_ends_its_viewer_with_exit_1(place, inputs):
    runs, env, _ = place
    run_id, pid, _ = detach(place, inputs)
    viewer = popen_memtui("attach", run_id, "--json", env=env)
    assert json.loads(viewer.stdout.readline())["kind"] == "hello"
    os.kill(pid, signal.SIGKILL)
    _, err = viewer.communicate(timeout=60)  # the closed socket ends it: a generous bound, not a timing
    assert viewer.returncode == 1
    assert "ended abnormally" in err
    wait_until(lambda: not alive(pid), 60, "the run to be gone")
    assert (runs / f"{run_id}.json").exists()  # left behind by the kill...
    assert ls(env) == []  # ...and cleaned away by ls
    assert not (runs / f"{run_id}.json").exists() and not (runs / f"{run_id}.sock").exists()


REFUSED_CHILD = """
import os, socket, sys
os.setgid(65534); os.setuid(65534)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(5)
try:
    s.connect(sys.argv[1])
except OSError as exc:
    print("connect-failed", exc.errno); sys.exit(0)
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.decode())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start a child under another uid (os.setuid(65534))")
def test_another_uid_is_refused(place, inputs):
    runs, env, _ = place
    run_id, pid, _ = detach(place, inputs)
    sock = runs / f"{run_id}.sock"
    # As set up: the 0700 folder and the 0600 socket keep another uid out before any check.
    out = subprocess.run([sys.executable, "-c", REFUSED_CHILD, str(sock)], capture_output=True, text=True, timeout=30)
    assert out.stdout.startswith("connect-failed"), out
    # With both opened up by mistake, the server's SO_PEERCRED check still refuses it.
    os.chmod(runs.parent, 0o711)  # (the test's own temporary folder above it)
    os.chmod(runs, 0o711)
    os.chmod(sock, 0o666)
    out = subprocess.run([sys.executable, "-c", REFUSED_CHILD, str(sock)], capture_output=True, text=True, timeout=30)
    reply = json.loads(out.stdout.strip().splitlines()[-1])
    assert reply["kind"] == "reply" and reply["body"]["ok"] is False and "refused" in reply["body"]["error"]
    assert "snapshot" not in out.stdout and "hello" not in out.stdout
    os.chmod(runs, 0o700)
    os.chmod(sock, 0o600)
    assert alive(pid)
    assert "refused a viewer of uid 65534" in (runs / f"{run_id}.log").read_text()
    assert memtui("stop", run_id, env=env, timeout=120).returncode == 0


async def test_attach_pilot_pause_detach_then_quit_and_stop(place, inputs, monkeypatch):
    """The same dashboard over a RemoteEngine: p pauses the run, d detaches (the run goes on),
    q asks stop / detach / cancel, and stop ends the run with its report (exit 130)."""
    from memtui.attach.client import RemoteEngine
    from memtui.attach.runs import find
    from memtui.tui.attached import AttachedMemtuiApp, AttachQuitScreen
    from memtui.tui.keys import documented
    from memtui.tui.screens.help import HelpScreen

    runs, env, _ = place
    monkeypatch.setenv("MEMTUI_RUN_DIR", str(runs))
    run_id, pid, _ = detach(place, inputs)
    engine = RemoteEngine(find(run_id).socket)
    app = AttachedMemtuiApp(engine, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.last.mode == "cache" and app.last.memory.history  # the last minute of memory, replayed
        assert "d" in app.screen.active_bindings  # the footer offers d...
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        assert any(key == "d" and text.startswith("Detach:") for key, text in app.screen.key_rows())  # ...the help
        await pilot.press("escape")
        await pilot.pause()
        assert any(doc.action == "detach" for doc in documented([app.screen, app]))  # ...and the palette's source
        await pilot.press("p")
        deadline = time.monotonic() + 20
        while not engine.snapshot().paused:
            assert time.monotonic() < deadline
            await pilot.pause(0.1)
        await pilot.press("d")
        await pilot.pause()
    assert app.detached and app.return_value is None
    # the run notices a viewer's leaving when it reads its end of the socket: waited for, not assumed
    wait_until(lambda: [row["viewers"] for row in ls(env)] == [0], 60, "the viewer to be gone")
    assert alive(pid)
    [row] = ls(env)
    assert row["phase"] == "paused" and row["viewers"] == 0

    engine = RemoteEngine(find(run_id).socket)
    app = AttachedMemtuiApp(engine, poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.last.paused
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, AttachQuitScreen)
        await pilot.press("n")  # cancel
        await pilot.pause()
        assert not isinstance(app.screen, AttachQuitScreen) and app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.press("s")  # stop the run: it commits first
        deadline = time.monotonic() + 60
        while app.is_running:
            assert time.monotonic() < deadline, "the stopped run did not report"
            await pilot.pause(0.1)
    assert app.return_value is not None and app.return_value["exit_code"] == 130
    wait_until(lambda: not alive(pid), 30, "the stopped run to exit")


def test_the_attach_command_on_no_run_is_a_usage_error(place):
    _, env, _ = place
    done = memtui("attach", env=env, timeout=30)
    assert done.returncode == 2 and "no memtui run is running" in done.stderr
    assert memtui("stop", "abc", env=env, timeout=30).returncode == 2


async def test_attached_dashboard_shows_the_end_and_q_leaves_with_the_runs_report(place, inputs, monkeypatch):
    from memtui.attach.client import RemoteEngine
    from memtui.attach.runs import find
    from memtui.tui.attached import AttachedMemtuiApp

    runs, _env, _ = place
    monkeypatch.setenv("MEMTUI_RUN_DIR", str(runs))
    run_id, _pid, _ = detach(place, inputs, "small")
    app = AttachedMemtuiApp(RemoteEngine(find(run_id).socket), poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        deadline = time.monotonic() + 180
        while app.report is None:
            assert time.monotonic() < deadline, "the run did not report"
            await pilot.pause(0.1)
        assert app.is_running  # the report stays on screen until q
        assert app.dashboard.finished
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value["exit_code"] == 0 and app.return_value["status"] == "success"
    assert not app.lost and not app.detached


async def test_attached_dashboard_of_a_run_killed_with_9_says_so_and_exits(place, inputs, monkeypatch):
    from memtui.attach.client import RemoteEngine
    from memtui.attach.runs import find
    from memtui.tui.attached import AttachedMemtuiApp

    runs, _env, _ = place
    monkeypatch.setenv("MEMTUI_RUN_DIR", str(runs))
    run_id, pid, _ = detach(place, inputs)
    app = AttachedMemtuiApp(RemoteEngine(find(run_id).socket), poll_interval=0.05)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60  # it leaves LOST_EXIT_S after the closed socket; bounded, not timed
        while app.is_running:
            assert time.monotonic() < deadline, "the viewer of a dead run did not exit"
            await pilot.pause(0.1)
    assert app.lost and "ended abnormally" in app.lost and app.return_value is None


def spawn_on_a_terminal(args: list[str], env: dict[str, str]) -> tuple[int, int]:
    """(pid, master fd) of ``python -m memtui ARGS`` on a new pseudo-terminal, its controlling terminal."""
    import pty

    pid, master = pty.fork()
    if pid == 0:  # the child: the terminal's session leader
        try:
            os.chdir(REPO)
            os.execve(sys.executable, [sys.executable, "-m", "memtui", *args], {**env, "TERM": "xterm-256color"})
        except BaseException as exc:
            os.write(2, f"exec failed: {exc!r}\n".encode())
        os._exit(127)
    return pid, master


def drain_until(master: int, predicate, timeout: float) -> bytes:
    """Read the terminal (a child blocked on a full terminal draws nothing) until ``predicate()``."""
    import select

    seen = b""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out; the terminal showed: {seen[-2000:]!r}"
        ready, _, _ = select.select([master], [], [], 0.1)
        if ready:
            try:
                seen += os.read(master, 65536)
            except OSError:
                pass
    return seen


def exit_status(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    return None


def test_a_viewer_whose_terminal_goes_away_detaches_and_the_in_process_tui_is_attachable(place, inputs):
    _runs, env, _ = place
    # The in-process TUI (the job in a worker thread beside the panels), on a terminal of its own...
    tui, tui_master = spawn_on_a_terminal(["run", "--tui", "--input", str(inputs["big"])], env)
    import threading

    draining = threading.Thread(target=drain_until, args=(tui_master, lambda: not alive(tui), 600), daemon=True)
    draining.start()  # a terminal always takes what is drawn on it
    try:
        wait_until(lambda: len(ls(env)) == 1, 120, "the TUI run to be listed")
        [row] = ls(env)
        assert row["pid"] == tui and row["mode"] == "cache"
        # ...watched from a second terminal with `memtui attach`.
        viewer, viewer_master = spawn_on_a_terminal(["attach", row["id"]], env)
        drain_until(viewer_master, lambda: ls(env)[0]["viewers"] == 1, 120)
        # Left as it was: the CLI catches SIGHUP from its start (a KeyboardInterrupt until the face takes
        # over), so SigCgt cannot tell when the dashboard's own handler is set; nothing on screen says so
        # yet either. A condition for it is still to find.
        shown = time.monotonic() + 3
        drain_until(viewer_master, lambda: time.monotonic() > shown, 10)  # the dashboard up, its handlers set
        os.close(viewer_master)  # that terminal goes away: SIGHUP
        code = exit_status(viewer, 30)
        assert code == 0, code  # detached
        wait_until(lambda: ls(env)[0]["viewers"] == 0, 30, "the viewer to be gone")
        assert alive(tui)  # the run goes on
        done = memtui("stop", row["id"], env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "exit 130" in done.stderr and "shows the report until its operator quits" in done.stderr
        time.sleep(2)
        assert alive(tui)  # the in-process TUI keeps the report on screen, as after any end...
        os.write(tui_master, b"q")  # ...until its operator quits
        assert exit_status(tui, 60) == 130
    finally:
        if alive(tui):
            os.kill(tui, signal.SIGKILL)
            exit_status(tui, 10)
        os.close(tui_master)


# -- several runs: the chooser; the monitor attached --------------------------------------------


@pytest.fixture
def sleeper():
    """A process memtui did not start, for monitor runs to watch."""
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def detach_monitor(place, target: subprocess.Popen) -> tuple[str, int]:
    _runs, env, started = place
    done = memtui(
        "run", "--mode", "monitor", "--pid", str(target.pid), "--monitor-interval", "0.2", "--detach", env=env
    )
    assert done.returncode == 0, done.stderr
    match = DETACHED.match(done.stdout.strip())
    assert match, done.stdout
    started.append(int(match.group(2)))
    return match.group(1), int(match.group(2))


def read_terminal(master: int, until: bytes, timeout: float, seen: bytes = b"") -> bytes:
    """What the terminal showed, read until ``until`` appears in it."""
    import select

    deadline = time.monotonic() + timeout
    while until not in seen:
        assert time.monotonic() < deadline, f"timed out waiting for {until!r}; the terminal showed: {seen[-2000:]!r}"
        if select.select([master], [], [], 0.1)[0]:
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
    return seen


def test_attach_with_several_runs_asks_on_a_terminal_and_names_them_otherwise(place, sleeper):
    """Load-proof: every step waits on what the terminal shows or what ``ls`` says, with deadlines far
    above what it takes (a loaded machine starts Python and Textual slowly); every answer typed means the
    same whatever the random run ids are."""
    _runs, env, _ = place
    ids = [detach_monitor(place, sleeper)[0] for _ in range(2)]

    done = memtui("attach", env=env, timeout=180)  # no terminal: a usage error naming the runs
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("memtui: error:") and all(run_id in line for run_id in ids)
    assert done.stdout == ""

    viewer, master = spawn_on_a_terminal(["attach"], env)  # on a terminal: a numbered list and a prompt
    code = None
    try:
        shown = read_terminal(master, b"attach to which run?", 120)
        assert b"2 memtui runs are running" in shown
        for n, run_id in enumerate(ids, 1):
            assert re.search(rf" {n}\) {run_id} ".encode(), shown), shown
        # No such run: it says so and asks again. An answer that is not a number in range is read as an id
        # (or its prefix), and ids are random hex: a fixed "7" picked the run whose id began with 7 (1 run
        # in 8 with two runs), which is what made this test fail now and then.
        wrong = next(str(n) for n in range(3, 10) if not any(run_id.startswith(str(n)) for run_id in ids))
        os.write(master, wrong.encode() + b"\r")
        shown = read_terminal(master, b"attach to which run?", 120, read_terminal(master, b"no single run", 120))
        os.write(master, b"2\r")
        wait_until(lambda: [row["viewers"] for row in ls(env)] == [0, 1], 120, "the second run to be attached")
        shown = read_terminal(master, b"Detach", 120)  # the attached monitor's footer offers d
        os.write(master, b"d")
        read_terminal(master, f"detached from run {ids[1]}".encode(), 120)
        code = exit_status(viewer, 120)
        assert code == 0
    finally:
        if code is None:
            os.kill(viewer, signal.SIGKILL)
            exit_status(viewer, 60)
        os.close(master)

    viewer, master = spawn_on_a_terminal(["attach"], env)  # q at the prompt: nothing attached
    try:
        read_terminal(master, b"attach to which run?", 120)
        os.write(master, b"q\r")
        read_terminal(master, b"no run chosen", 120)
        assert exit_status(viewer, 120) == 0
    finally:
        os.close(master)
    # the run notices a viewer's leaving when it reads its end of the socket: waited for, not assumed
    wait_until(lambda: [row["viewers"] for row in ls(env)] == [0, 0], 120, "both runs to have no viewer")
    for run_id in ids:
        done = memtui("stop", run_id, env=env, timeout=180)
        assert done.returncode == 0 and "ending the watch" in done.stderr and "batch" not in done.stderr


async def test_attached_monitor_shows_the_watch_a_key_reaches_the_run_and_d_detaches(place, sleeper, monkeypatch):
    """A real `memtui run --mode monitor` process, watched through a RemoteEngine: its table shows the
    target, s (confirmed) stops the real process from the run, r resumes it, d detaches and the watch goes on."""
    from memtui.attach.client import RemoteEngine
    from memtui.attach.runs import find
    from memtui.tui.attached import AttachedMonitorApp

    runs, env, _ = place
    monkeypatch.setenv("MEMTUI_RUN_DIR", str(runs))
    run_id, pid = detach_monitor(place, sleeper)

    def state() -> str:
        with open(f"/proc/{sleeper.pid}/stat") as f:
            return f.read().split(") ", 1)[1].split()[0]

    engine = RemoteEngine(find(run_id).socket)
    app = AttachedMonitorApp(engine, poll_interval=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        deadline = time.monotonic() + 30
        while not (app.last and app.last.targets and len(app.last.targets[0].history) >= 3):
            assert time.monotonic() < deadline, "the attached monitor did not show its target"
            await pilot.pause(0.1)
        [target] = app.last.targets
        assert target.pid == sleeper.pid and app.table.row_count == 1
        history = target.history  # joined from deltas: in time order, no sample twice
        assert all(a[0] < b[0] for a, b in zip(history, history[1:]))
        assert "d" in app.active_bindings and app.active_bindings["d"].binding.action == "detach"

        await pilot.press("s")
        await pilot.pause()
        await pilot.press("y")  # the question: SIGSTOP pid ...?
        deadline = time.monotonic() + 20
        while state() != "T":
            assert time.monotonic() < deadline, "s did not reach the run"
            await pilot.pause(0.1)
        while app.last.targets[0].held_by != "operator":
            assert time.monotonic() < deadline, "the viewer did not hear that the run stopped it"
            await pilot.pause(0.1)
        await pilot.press("r")
        await pilot.pause()
        await pilot.press("y")
        while state() == "T":
            assert time.monotonic() < deadline, "r did not reach the run"
            await pilot.pause(0.1)

        await pilot.press("d")
        await pilot.pause()
    assert app.detached and app.return_value is None and not app.lost
    wait_until(lambda: [row["viewers"] for row in ls(env)] == [0], 60, "the viewer to be gone")
    assert alive(pid)  # the watch goes on
    [row] = ls(env)
    assert row["id"] == run_id and row["viewers"] == 0 and row["phase"] == "watching"
    assert memtui("stop", run_id, env=env, timeout=60).returncode == 0


def test_d_is_a_viewers_key_only():
    """A local run has nothing to detach from: no app or screen of it binds d (or detach)."""
    from memtui.tui.app import MemtuiApp
    from memtui.tui.attached import AttachedMemtuiApp, AttachedMonitorApp
    from memtui.tui.monitor_app import MonitorApp
    from memtui.tui.screens.dashboard import DashboardScreen

    def bound(cls) -> set[str]:
        return {b.key for c in cls.__mro__ for b in c.__dict__.get("BINDINGS", []) if b.action == "detach"}

    assert bound(MemtuiApp) == bound(MonitorApp) == bound(DashboardScreen) == set()
    assert bound(AttachedMemtuiApp) == bound(AttachedMonitorApp) == {"d"}


def test_the_chooser_reads_a_number_out_of_range_as_a_wrong_number_not_an_id_prefix(tmp_path, capsys):
    """With two runs, "7" must not attach to a run whose random id starts with 7; its full id or a hex prefix does."""
    from memtui.attach.commands import choose
    from memtui.attach.runs import RunEntry

    runs = [
        RunEntry(run_id, 1, 0.0, "cache", "in", "c", str(tmp_path / f"{run_id}.sock"))
        for run_id in ("7e8ef9", "a1b2c3")
    ]
    answers = iter(["7", "3", "7e", "q"])
    assert choose(runs, ask=lambda prompt: next(answers)) is runs[0]  # "7", "3" refused; the prefix "7e" picks it
    out = capsys.readouterr().out
    assert "no single run is '7'" in out and "no single run is '3'" in out
    answers = iter(["7e8ef9"])
    assert choose(runs, ask=lambda prompt: next(answers)) is runs[0]
    answers = iter(["2"])
    assert choose(runs, ask=lambda prompt: next(answers)) is runs[1]
