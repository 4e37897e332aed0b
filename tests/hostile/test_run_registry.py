"""The run registry and the attach sockets against another user and an unlucky one.

The run folder may be one another user controls (a 0777 ``MEMTUI_RUN_DIR``, an
``XDG_RUNTIME_DIR`` kept by ``su``/``sudo -E``): every verb checks it as ``run``
does, an entry is untrusted data, and memtui removes only what it verifies it
created. A run that does not answer (SIGSTOPped, a socket that streams bytes with
no newline) never hangs a client. Real files, real processes, real signals.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from memtui.attach.runs import process_start
from tests.support.cli import memtui, memtui_env
from tests.support.hostile import (
    NOBODY,
    error_lines,
    fingerprint,
    make_victim,
    mode_of,
    plant_file,
    plant_link,
    require_root,
)

#: What a client is allowed before the test calls it hung (far above the client's own 15 s bounds).
CLIENT_S = 120


@pytest.fixture
def place():
    """A short run folder of ours (a socket path has a 108-byte limit), its env, and the pids to kill after."""
    top = Path(tempfile.mkdtemp(prefix="mth", dir="/tmp"))
    runs = top / "runs"
    runs.mkdir(mode=0o700)
    started: list[int] = []
    yield runs, memtui_env(MEMTUI_RUN_DIR=str(runs)), started
    for pid in started:
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture
def sleeper():
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def entry(runs: Path, run_id: str, **fields) -> dict:
    data = {
        "id": run_id,
        "pid": dead_pid(),
        "start_time": 1.0,
        "mode": "cache",
        "input": "in.jsonl",
        "cache": "c.sqlite",
        "socket": str(runs / f"{run_id}.sock"),
        "started_at": 1.0,
    }
    data.update(fields)
    return data


def plant_entry(path: Path, data, owner: int = 0) -> Path:
    return plant_file(path, json.dumps(data).encode(), owner=owner, mode=0o600)


def detach_monitor(place, target: subprocess.Popen) -> tuple[str, int]:
    """A real run (the monitor: no model to load), detached; its id and pid."""
    _runs, env, started = place
    done = memtui("run", "--mode", "monitor", "--pid", target.pid, "--monitor-interval", "0.2", "--detach", env=env)
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    run_id, pid = words[2], int(words[5].rstrip(","))
    started.append(pid)
    return run_id, pid


def ls(env) -> tuple[list[dict], str]:
    done = memtui("ls", "--json", env=env, timeout=CLIENT_S)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return json.loads(done.stdout), done.stderr


def verbs(env, *extra: str) -> list[subprocess.CompletedProcess[str]]:
    """ls, attach and stop, as a user would type them."""
    return [memtui(*verb, *extra, env=env, timeout=CLIENT_S) for verb in (("ls",), ("attach", "--json"), ("stop",))]


# -- the folder ---------------------------------------------------------------------------------------


def test_an_existing_0755_run_folder_is_tightened_to_0700_by_run_and_by_ls(place, monkeypatch):
    from memtui.attach.runs import ensure_runs_dir

    runs, env, _ = place
    os.chmod(runs, 0o755)
    monkeypatch.setenv("MEMTUI_RUN_DIR", str(runs))
    assert ensure_runs_dir() == runs
    assert mode_of(runs) == 0o700  # what run (and --detach) does before it serves
    os.chmod(runs, 0o755)
    assert ls(env)[0] == []
    assert mode_of(runs) == 0o700  # and every other verb


def test_a_run_folder_of_another_user_is_refused_by_every_verb_and_nothing_in_it_is_touched(place, tmp_path):
    """An XDG_RUNTIME_DIR kept by sudo -E: the folder is the other user's; nothing of it is read or removed."""
    require_root()
    runs, env, _ = place
    victim = make_victim(tmp_path / "victim")
    before = fingerprint(victim)
    planted = plant_entry(runs / "abc123.json", entry(runs, "abc123", socket=str(victim)), owner=NOBODY)
    os.chown(runs, NOBODY, NOBODY)
    for done in verbs(env):
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("memtui: error: the run folder") and "belongs to another user" in line
    assert fingerprint(victim) == before and planted.exists()
    assert mode_of(runs) == 0o700  # not changed either: it is not ours


def test_a_run_folder_that_is_a_link_is_refused_by_every_verb(place, tmp_path):
    runs, env, _ = place
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    plant_entry(elsewhere / "abc123.json", entry(elsewhere, "abc123"))
    link = runs.parent / "link"
    link.symlink_to(elsewhere)
    env = dict(env, MEMTUI_RUN_DIR=str(link))
    for done in verbs(env):
        assert done.returncode == 2, done.stderr
        assert error_lines(done.stderr) == done.stderr.strip().splitlines()
        assert "is not a folder" in done.stderr
    assert (elsewhere / "abc123.json").exists()


@pytest.mark.parametrize("parent_mode, parent_owner", [(0o777, 0), (0o755, NOBODY)])
def test_a_run_folder_of_ours_inside_a_folder_others_control_is_refused(place, parent_mode, parent_owner):
    """Whoever can write the folder above can swap ours for theirs between a check and a use."""
    require_root()
    runs, env, _ = place
    plant_entry(runs / "aaa111.json", entry(runs, "aaa111"))
    os.chown(runs.parent, parent_owner, parent_owner)
    os.chmod(runs.parent, parent_mode)
    for done in verbs(env):
        assert done.returncode == 2, done.stderr
        [line] = done.stderr.strip().splitlines()
        assert line.startswith("memtui: error: the run folder") and str(runs.parent) in line, line
    assert (runs / "aaa111.json").exists()


def test_an_xdg_runtime_dir_of_another_user_is_not_used(place, tmp_path):
    """``sudo -E`` keeps the user's XDG_RUNTIME_DIR: memtui, as root, does not put its runs there."""
    require_root()
    _runs, env, _ = place
    theirs = tmp_path / "run-user-1000"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, NOBODY, NOBODY)
    mine = tmp_path / "cache"
    env = {k: v for k, v in env.items() if k != "MEMTUI_RUN_DIR"}
    env.update(XDG_RUNTIME_DIR=str(theirs), XDG_CACHE_HOME=str(mine))
    assert ls(env)[0] == []
    from memtui.attach import runs as registry

    with pytest.MonkeyPatch.context() as mp:
        for key in ("MEMTUI_RUN_DIR", "XDG_RUNTIME_DIR", "XDG_CACHE_HOME"):
            mp.delenv(key, raising=False)
        mp.setenv("XDG_RUNTIME_DIR", str(theirs))
        mp.setenv("XDG_CACHE_HOME", str(mine))
        assert registry.ensure_runs_dir() == mine / "memtui" / "runs"
    assert list(theirs.iterdir()) == []


# -- planted entries: the severe case ----------------------------------------------------------------


def test_as_root_a_planted_entry_never_makes_ls_attach_or_stop_delete_a_file_it_names(place, tmp_path):
    """A 0777 run folder: entries of dead runs naming files outside it (as root, the old code unlinked
    the entry's socket and the ``ID.json`` beside it). Each file survives every verb, and so do the
    planted entries of another user; the folder is tightened; a planted link is never followed."""
    require_root()
    runs, env, _ = place
    os.chmod(runs, 0o777)
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = [
        make_victim(outside / "precious"),
        make_victim(outside / "aaa111.json"),  # beside the socket it names: the old ``entry.path``
        make_victim(outside / "bbb222.json"),
        make_victim(outside / "ccc333.json"),
        make_victim(outside / "target-of-a-link"),
    ]
    before = [fingerprint(v) for v in victims]
    planted = [
        # ours (a stale entry root itself wrote, or copied in): its socket names a file outside the folder
        plant_entry(runs / "aaa111.json", entry(runs, "aaa111", socket=str(outside / "precious"))),
        # another user's, in the folder they could write
        plant_entry(runs / "bbb222.json", entry(runs, "bbb222", socket=str(outside / "bbb222.sock")), owner=NOBODY),
        # another user's, naming the run's own socket path, which is a link they planted
        plant_entry(runs / "ccc333.json", entry(runs, "ccc333", socket=str(outside / "ccc333.sock")), owner=NOBODY),
        plant_link(runs / "ccc333.sock", outside / "target-of-a-link"),
        plant_link(runs / "ddd444.json", outside / "precious"),  # an entry that is a link
    ]
    for done in verbs(env):
        assert "Traceback" not in done.stderr, done.stderr
        assert done.returncode in (0, 2), done.stderr  # ls lists nothing; attach/stop: no run is running
    for victim, was in zip(victims, before):
        assert fingerprint(victim) == was, victim
    for path in planted:
        assert path.is_symlink() or path.exists(), path
    assert mode_of(runs) == 0o700
    done = memtui("ls", env=env, timeout=CLIENT_S)
    warnings = [line for line in done.stderr.splitlines() if "warning: skipped the run entry" in line]
    assert len(warnings) == 4 and len(done.stderr.strip().splitlines()) == 4, done.stderr  # one line each


def test_memtui_removes_a_dead_runs_own_files_and_nothing_else_it_is_named(place, tmp_path):
    """A dead run's entry of ours is cleaned up; its socket name is removed only if it is our socket."""
    runs, env, _ = place
    plant_entry(runs / "aaa111.json", entry(runs, "aaa111"))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(runs / "aaa111.sock"))
    listener.close()
    plant_entry(runs / "bbb222.json", entry(runs, "bbb222"))
    (runs / "bbb222.sock").write_text("a file, not a socket\n")
    assert ls(env)[0] == []
    assert not (runs / "aaa111.json").exists() and not (runs / "aaa111.sock").exists()
    assert not (runs / "bbb222.json").exists()
    assert (runs / "bbb222.sock").read_text() == "a file, not a socket\n"


# -- malformed entries ---------------------------------------------------------------------------------


def test_malformed_entries_are_skipped_with_one_warning_each_and_the_live_run_stays_usable(place, sleeper):
    runs, env, _ = place
    run_id, _pid = detach_monitor(place, sleeper)
    deadline = time.monotonic() + 60  # the run is listed and watching before anything is planted beside it
    while [(row["id"], row["phase"]) for row in ls(env)[0]] != [(run_id, "watching")]:
        assert time.monotonic() < deadline, ls(env)
        time.sleep(0.2)
    bad = {
        "b00001": entry(runs, "b00001", pid="abc"),
        "b00002": entry(runs, "b00002", pid=-5),
        "b00003": entry(runs, "b00003", start_time="yesterday"),
        "b00004": [1, 2, 3],
        "b00005": entry(runs, "b00005", pid=True),
        "b00006": entry(runs, "b00006", socket=["not", "a", "path"]),
        "b00007": entry(runs, "b00007", id="../b00007"),
        "b00008": entry(runs, "b00008", pid=10**40),
    }
    for run, data in bad.items():
        plant_entry(runs / f"{run}.json", data)
    (runs / "b00009.json").write_bytes(b"\xff{ not json")

    rows, stderr = ls(env)
    assert [row["id"] for row in rows] == [run_id]
    assert rows[0]["phase"] == "watching"
    lines = stderr.strip().splitlines()
    assert len(lines) == 9 and all(line.startswith("memtui: warning: skipped the run entry") for line in lines), stderr
    for run in [*bad, "b00009"]:
        assert sum(f"{run}.json" in line for line in lines) == 1, (run, stderr)
        assert (runs / f"{run}.json").exists()  # not ours to judge: kept for its owner to look at

    table = memtui("ls", env=env, timeout=CLIENT_S)
    assert table.returncode == 0 and run_id in table.stdout and "Traceback" not in table.stderr
    done = memtui("stop", env=env, timeout=CLIENT_S)  # the only run: found despite the rest
    assert done.returncode == 0, done.stderr
    assert "ending the watch" in done.stderr and "Traceback" not in done.stderr


# -- a run that does not answer ------------------------------------------------------------------------


def wait_stopped(pid: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, f"pid {pid} never stopped"
        time.sleep(0.05)


def test_a_sigstopped_run_is_listed_as_not_responding_and_attach_and_stop_give_up_in_one_line(place, sleeper):
    _runs, env, _ = place
    run_id, pid = detach_monitor(place, sleeper)
    os.kill(pid, signal.SIGSTOP)
    wait_stopped(pid)
    try:
        rows, _ = ls(env)
        assert [(row["id"], row["phase"]) for row in rows] == [(run_id, "not responding")]
        table = memtui("ls", env=env, timeout=CLIENT_S)
        assert "not responding" in table.stdout
        for verb in (("attach", "--json", run_id), ("stop", run_id)):
            done = memtui(*verb, env=env, timeout=CLIENT_S)
            assert done.returncode == 1, done.stderr
            [line] = done.stderr.strip().splitlines()[-1:]
            assert line.startswith("memtui: error:") and "not responding" in line, done.stderr
            assert "Traceback" not in done.stderr
    finally:
        os.kill(pid, signal.SIGCONT)
    done = memtui("stop", run_id, env=env, timeout=CLIENT_S)  # once it runs again, it answers
    assert done.returncode == 0, done.stderr


class FakeRun:
    """A socket of ours in the run folder that streams bytes with no newline to every client, forever."""

    def __init__(self, runs: Path, run_id: str) -> None:
        self.path = runs / f"{run_id}.sock"
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(self.path))
        self.listener.listen(8)
        self.sent = 0
        self.stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        self.listener.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                continue
            threading.Thread(target=self._stream, args=(conn,), daemon=True).start()

    def _stream(self, conn: socket.socket) -> None:
        chunk = b"x" * 65536
        try:
            while not self.stop.is_set():
                conn.sendall(chunk)
                self.sent += len(chunk)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.listener.close()


def test_a_socket_streaming_bytes_with_no_newline_is_not_responding_and_ls_stays_small(place):
    runs, env, _ = place
    me = os.getpid()
    plant_entry(runs / "fab001.json", entry(runs, "fab001", pid=me, start_time=process_start(me)))
    fake = FakeRun(runs, "fab001")
    try:
        probe = subprocess.Popen(
            [sys.executable, "-m", "memtui", "ls", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        peak = 0
        deadline = time.monotonic() + CLIENT_S
        while probe.poll() is None:
            assert time.monotonic() < deadline, "ls hung on a socket with no newline"
            try:
                rss = int(Path(f"/proc/{probe.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
                peak = max(peak, rss)
            except (OSError, IndexError):
                pass
            time.sleep(0.05)
        out, err = probe.communicate()
        assert probe.returncode == 0, err
        [row] = json.loads(out)
        assert row["id"] == "fab001" and row["phase"] == "not responding"
        assert fake.sent > 0  # it did stream to ls
        assert peak < 300 * 1024 * 1024, peak  # bounded: a line is capped, never grown without end
        done = memtui("attach", "--json", "fab001", env=env, timeout=CLIENT_S)
        assert done.returncode == 1 and "not responding" in done.stderr and "Traceback" not in done.stderr
    finally:
        fake.close()


def test_a_socket_served_by_another_user_is_never_taken_for_a_run(place, tmp_path):
    """Another user's process serving the run's socket name: ls lists it as not responding, attach refuses."""
    require_root()
    runs, env, _ = place
    theirs = Path(tempfile.mkdtemp(prefix="mto", dir="/tmp"))
    os.chown(theirs, NOBODY, NOBODY)
    server_code = (
        "import socket,sys,time\n"
        "s=socket.socket(socket.AF_UNIX)\n"
        f"s.bind({str(theirs / 's')!r}); s.listen(4); print('ready', flush=True)\n"
        "while True:\n"
        "    c,_=s.accept()\n"
        "    try: c.sendall(b'{}\\n')\n"
        "    except OSError: pass\n"
        "    c.close()\n"
    )
    proc = subprocess.Popen(
        ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups"]
        + [sys.executable, "-c", server_code],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        os.rename(theirs / "s", runs / "eee555.sock")  # a bound socket keeps working under its new name
        plant_entry(runs / "eee555.json", entry(runs, "eee555", pid=proc.pid, start_time=process_start(proc.pid)))
        rows, _ = ls(env)
        assert [(row["id"], row["phase"]) for row in rows] == [("eee555", "not responding")]
        done = memtui("attach", "--json", "eee555", env=env, timeout=CLIENT_S)
        assert done.returncode == 2 and f"served by uid {NOBODY}" in done.stderr, done.stderr
        assert stat.S_ISSOCK(os.lstat(runs / "eee555.sock").st_mode)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(theirs, ignore_errors=True)


# -- detach: every setting checked before anything starts ---------------------------------------------


@pytest.mark.parametrize("value", ["abc", "-1", "0", "nan", "inf"])
def test_a_bad_detach_timeout_is_one_line_before_anything_starts(place, sleeper, value):
    runs, env, _ = place
    env = dict(env, MEMTUI_DETACH_TIMEOUT=value)
    done = memtui("run", "--mode", "monitor", "--pid", sleeper.pid, "--detach", env=env, timeout=CLIENT_S)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("memtui: error: MEMTUI_DETACH_TIMEOUT=")
    assert list(runs.iterdir()) == []  # no log, no entry: no run was started


def test_detach_with_an_unusable_run_folder_is_one_line(place, sleeper, tmp_path):
    _runs, env, _ = place
    afile = make_victim(tmp_path / "a-file")
    env = dict(env, MEMTUI_RUN_DIR=str(afile / "runs"))
    done = memtui("run", "--mode", "monitor", "--pid", sleeper.pid, "--detach", env=env, timeout=CLIENT_S)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("memtui: error: cannot use the run folder") and "MEMTUI_RUN_DIR" in line


def test_detach_on_a_terminal_stdin_with_input_dash_is_one_line(place):
    """``--input -`` with a terminal for standard input: refused before anything starts."""
    import pty

    runs, env, _ = place
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "memtui", "run", "--input", "-", "--detach"],
            stdin=slave,
            capture_output=True,
            text=True,
            env=env,
            timeout=CLIENT_S,
        )
    finally:
        os.close(slave)
        os.close(master)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "standard input, which is a terminal" in line
    assert list(runs.iterdir()) == []
