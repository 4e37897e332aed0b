"""The Dask connection under hostile or unlucky conditions: addresses memtui cannot use, ports that do
not answer as a Dask scheduler, signals during the connect, and a cluster TUI whose terminal goes away.

Real sockets on 127.0.0.1, real ``memtui run`` subprocesses, real signals; deadlines are generous (these
are hang tests, not timing tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from memtui.cluster.address import PROBE_S
from memtui.embed.lock import CacheLock
from tests.support.cli import memtui, memtui_env, memtui_in_process
from tests.support.hostile import Watched, controlling_tty_preexec, drain, error_lines, killing, open_pty
from tests.support.inputs import write_input

BIN = Path(sys.executable).parent
#: Far above any bound memtui sets (probe 15 s, workers 60 s): a run still there then hangs.
HANG_S = 150


@contextlib.contextmanager
def listener(says: bytes | None, accepted: threading.Event | None = None) -> Iterator[int]:
    """A TCP listener on 127.0.0.1 that accepts every connection and sends ``says`` (None: nothing), then
    holds the connection open (``accepted`` is set at the first); its port."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    done = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            if says:
                conn.sendall(says)
            held.append(conn)
            if accepted is not None:
                accepted.set()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        for conn in held:
            conn.close()
        server.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_args(tmp_path: Path, scheduler: str, *more: str) -> list[str]:
    source = write_input(tmp_path / "in.jsonl", domains=2, per_domain=2)
    return ["run", "--input", str(source), "--cache", str(tmp_path / "cache.sqlite"), "--scheduler", scheduler, *more]


def one_line_failure(done: subprocess.CompletedProcess[str] | Watched, needle: str) -> None:
    err = done.stderr
    assert "Traceback" not in err and "Exception" not in err, err
    assert needle in err, err


@pytest.mark.parametrize(
    ("address", "says"),
    [
        ("garbage::://%%", "not garbage::://"),
        ("inproc://x", "not inproc://"),
        ("ucx://127.0.0.1:8786", "not ucx://"),
        ("tls://", "no port"),
        ("tcp://127.0.0.1", "no port"),
        ("tcp://127.0.0.1:0", "from 1 to 65535"),
        ("tcp://bad host:8786", "not an address"),
        ("tls://127.0.0.1:8786", "needs this client's certificate"),
    ],
)
def test_an_address_memtui_cannot_use_is_a_usage_error_before_any_work(tmp_path, address, says):
    # The CLI's main in this process; the first case also through python -m memtui (the real entry point).
    done = memtui_in_process(*run_args(tmp_path, address, "--headless"))
    check_unusable_address(done, tmp_path, address, says)
    if address == "garbage::://%%":
        check_unusable_address(memtui(*run_args(tmp_path, address, "--headless"), timeout=60), tmp_path, address, says)


def check_unusable_address(done: subprocess.CompletedProcess[str], tmp_path: Path, address: str, says: str) -> None:
    assert done.returncode == 2, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and says in lines[0] and repr(address) in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "cache.sqlite").exists()  # nothing started: not even the cache


@pytest.mark.parametrize(
    ("says", "needle"),
    [
        (None, "no Dask handshake"),  # the dashboard's port, a typo: accepts and says nothing
        (b"\xff" * 8 + b"HTTP/1.1 400 Bad Request\r\n\r\n", "not as a Dask scheduler"),  # a huge frame claimed
        (b"SSH-2.0-OpenSSH_9.6\r\n" * 4, "not as a Dask scheduler"),
    ],
)
def test_a_listener_that_is_not_a_dask_scheduler_ends_in_one_line(tmp_path, says, needle):
    # A silent listener never speaks: the probe's wait for its handshake, shortened (15 s by default), changes
    # nothing but time. One that speaks keeps the default, so how soon it is heard never matters.
    env = memtui_env(MEMTUI_PROBE_WAIT="3") if says is None else None
    with listener(says) as port:
        done = memtui(*run_args(tmp_path, f"tcp://127.0.0.1:{port}", "--headless"), timeout=HANG_S, env=env)
    assert done.returncode == 1, done.stderr
    one_line_failure(done, f"scheduler tcp://127.0.0.1:{port}: ")
    assert needle in done.stderr


def test_a_closed_port_ends_in_one_line_at_once(tmp_path):
    port = closed_port()
    started = time.monotonic()
    done = memtui(*run_args(tmp_path, f"127.0.0.1:{port}", "--headless"), timeout=HANG_S)
    assert done.returncode == 1, done.stderr
    one_line_failure(done, f"scheduler tcp://127.0.0.1:{port}: cannot connect (Connection refused)")
    assert time.monotonic() - started < PROBE_S + 60  # no 30 s of Dask retries on top


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_the_connect_ends_the_run_at_once(tmp_path, sig):
    with listener(None) as port:
        run = Watched(run_args(tmp_path, f"tcp://127.0.0.1:{port}", "--headless"))
        with killing(run):
            run.wait_for("starting cluster", timeout=HANG_S)
            run.proc.send_signal(sig)
            code = run.wait(timeout=60)
    assert code == 130, run.stderr
    assert "Traceback" not in run.stderr
    assert "interrupted" in run.stderr


@pytest.fixture
def lonely_scheduler(tmp_path) -> Iterator[str]:
    """A real ``dask scheduler`` with no worker, on a free port of 127.0.0.1."""
    port = closed_port()
    log = (tmp_path / "scheduler.log").open("w")
    proc = subprocess.Popen(
        [BIN / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=memtui_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "scheduler.log").read_text()
            time.sleep(0.2)
        yield f"tcp://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)
        log.close()


@pytest.mark.slow
def test_a_scheduler_without_workers_ends_in_one_line_and_a_signal_ends_its_wait(tmp_path, lonely_scheduler):
    # The wait for a first worker, shortened: no worker ever comes, so its length changes nothing but the
    # test's time (60 s by default).
    short = memtui_env(MEMTUI_WORKER_WAIT="3")
    done = memtui(*run_args(tmp_path, lonely_scheduler, "--headless"), timeout=HANG_S, env=short)
    assert done.returncode == 1, done.stderr
    one_line_failure(done, f"scheduler {lonely_scheduler} has no workers after 3 s; start some with 'dask worker")
    run = Watched(run_args(tmp_path, lonely_scheduler, "--headless"))  # the default wait: the signal ends it
    with killing(run):
        run.wait_for("starting cluster", timeout=HANG_S)
        run.proc.send_signal(signal.SIGTERM)
        assert run.wait(timeout=60) == 130, run.stderr


# -- a cluster TUI whose terminal goes away --------------------------------------------------------------


def _descendants(pid: int) -> set[tuple[int, str]]:
    """Every process below ``pid`` (with its start time, so a reused pid is not mistaken for it)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[tuple[int, str]] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            start = _started(child)
            if start:
                found.add((child, start))
                todo.append(child)
    return found


def _started(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(processes: set[tuple[int, str]]) -> set[tuple[int, str]]:
    return {(pid, start) for pid, start in processes if _started(pid) == start}


def _committed(cache: Path) -> int:
    import sqlite3

    if not cache.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=5)
        try:
            return int(con.execute("SELECT COUNT(*) FROM domains").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.mark.model
@pytest.mark.slow
def test_a_cluster_tui_whose_terminal_goes_away_ends_and_leaves_nothing_behind(tmp_path):
    source = write_input(tmp_path / "in.jsonl", domains=60, per_domain=12)
    cache = tmp_path / "cache.sqlite"
    master, slave = open_pty()
    seen: list[bytes] = []
    stop = threading.Event()
    reader = drain(master, stop, seen)
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtui", "run", "--input", source, "--cache", cache, "--workers", "2", "--tui"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=memtui_env(TERM="xterm-256color", COLUMNS="100", LINES="30"),
        preexec_fn=controlling_tty_preexec(slave),
    )
    os.close(slave)
    below: set[tuple[int, str]] = set()
    try:
        deadline = time.monotonic() + 300
        while _committed(cache) < 1:  # mid-run: the workers are up and a domain is committed
            assert proc.poll() is None, b"".join(seen).decode(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no domain committed in 300 s"
            time.sleep(0.5)
        below = _descendants(proc.pid)
        assert len(below) >= 2, below  # the local cluster's processes
        stop.set()
        reader.join(5)
        # the terminal goes away as tmux's kill-session does it: SIGHUP to the whole process group (the
        # local cluster's workers die with it), and the pty closes
        os.killpg(proc.pid, signal.SIGHUP)
        os.close(master)
        code = proc.wait(HANG_S)
        deadline = time.monotonic() + 60
        while _alive(below) and time.monotonic() < deadline:  # no orphan outlives the run
            time.sleep(0.5)
        orphans = _alive(below)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid, _ in _alive(below):  # never leave the test's own orphans on a shared machine
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    assert code == 130
    ends = [json.loads(line) for line in Path(f"{cache}.trace").read_text().splitlines() if '"end"' in line]
    assert ends and ends[-1]["status"] == "interrupted", ends  # the run stopped itself: no watchdog's exit
    assert not orphans, orphans
    lock = CacheLock.acquire(cache)  # released: a rerun is not refused
    lock.release()
    assert 1 <= _committed(cache) < 60


@pytest.mark.model
@pytest.mark.slow
def test_a_run_whose_workers_all_die_ends_instead_of_waiting_for_ever(tmp_path, lonely_scheduler):
    env = memtui_env(DASK_DISTRIBUTED__WORKER__MEMORY__TARGET="False", DASK_DISTRIBUTED__WORKER__MEMORY__SPILL="False")
    # The wait with no live worker, shortened (30 s by default): the killed worker never comes back.
    run_env = dict(env, MEMTUI_NO_WORKERS_WAIT="3")
    log = (tmp_path / "worker.log").open("w")
    worker = subprocess.Popen(
        [BIN / "dask", "worker", lonely_scheduler, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard"]
        + ["--memory-limit", "3.75GB"],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # its nanny and worker in one process group: killed together
    )
    source = write_input(tmp_path / "in.jsonl", domains=40, per_domain=12)
    run = Watched(
        ["run", "--input", source, "--cache", tmp_path / "cache.sqlite", "--scheduler", lonely_scheduler]
        + ["--headless", "--max-memory", "3", "--warning-memory", "2"],
        env=run_env,
    )
    try:
        with killing(run):
            run.wait_for("🖥️", timeout=300)  # a domain done: the worker is mid-run
            os.killpg(worker.pid, signal.SIGKILL)  # nanny and worker gone, as with a machine lost
            code = run.wait(timeout=HANG_S)
    finally:
        with contextlib.suppress(OSError):
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(30)
        log.close()
    assert code == 1, run.stderr
    assert "no worker left on" in run.stderr and "for 3 s" in run.stderr and "Traceback" not in run.stderr, run.stderr
    assert "(rerun to resume)" in run.stderr  # the domains in flight and the rest are named as left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_while_the_tui_connects_ends_the_run(tmp_path, sig):
    accepted = threading.Event()
    with listener(None, accepted) as port:
        master, slave = open_pty()
        seen: list[bytes] = []
        stop = threading.Event()
        reader = drain(master, stop, seen)
        proc = subprocess.Popen(
            [sys.executable, "-m", "memtui", *run_args(tmp_path, f"tcp://127.0.0.1:{port}", "--tui")],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=memtui_env(TERM="xterm-256color"),
            preexec_fn=controlling_tty_preexec(slave),
        )
        os.close(slave)
        try:
            assert accepted.wait(HANG_S), b"".join(seen).decode(errors="replace")[-2000:]  # memtui is connecting
            proc.send_signal(sig)
            code = proc.wait(60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stop.set()
            reader.join(5)
            os.close(master)
    assert code == 130, b"".join(seen).decode(errors="replace")[-2000:]
