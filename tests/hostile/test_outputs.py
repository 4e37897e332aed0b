"""--report on a shared server: device nodes, FIFOs, memtui's own streams, another user's nodes.

An existing target that is not a regular file is written into, never replaced:
the node keeps its kind, its numbers, its owner and its mode. Device nodes are
made with mknod in a temp folder (/dev/null's 1,3, /dev/full's 1,7, a loop
block device's 7,0), so the real /dev is never at risk, even if memtui regressed
to renaming over the target. Real CLI subprocesses; monitor mode (no model) where
the report is the point, the real model where a cache's commits are.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from memtui.output import stream_fd, write_output
from tests.support.cli import memtui, memtui_env
from tests.support.hostile import NOBODY, cache_counts, error_lines, fingerprint, require_root, sticky_folder
from tests.support.inputs import write_input

DOMAINS, PER_DOMAIN = 3, 2
NULL, FULL, LOOP = (1, 3), (1, 7), (7, 0)


def node_identity(path: Path) -> tuple[int, int, int, int]:
    """What a device or FIFO must keep: its kind and mode bits, its device numbers, its owner, its inode."""
    st = os.lstat(path)
    return st.st_mode, st.st_rdev, st.st_uid, st.st_ino


def make_node(path: Path, kind: int, numbers: tuple[int, int] = (0, 0)) -> Path:
    require_root()
    os.mknod(path, kind | 0o666, os.makedev(*numbers))
    if stat.S_ISCHR(kind):
        try:
            os.close(os.open(path, os.O_WRONLY))
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                pytest.skip(f"device nodes cannot be opened in {path.parent} (a nodev mount?): {exc}")
            raise
    return path


@pytest.fixture
def sleeper() -> Iterator[int]:
    """A process of ours for monitor mode to watch: a run with a report that needs no model."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(30)


def watch(pid: int, *extra: str | os.PathLike[str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """A short monitor-mode run (no model): its report is on stdout."""
    args = ["run", "--mode", "monitor", "--headless", "--pid", str(pid), "--duration", "0.3"]
    args += ["--monitor-interval", "0.1"]
    if cwd is None:
        return memtui(*args, *extra, timeout=120)
    return subprocess.run(
        [sys.executable, "-m", "memtui", *args, *map(str, extra)],
        capture_output=True, text=True, timeout=120, env=memtui_env(), stdin=subprocess.DEVNULL, cwd=cwd,
    )  # fmt: skip


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


# -- devices and FIFOs are written into, never replaced ---------------------------------------------------


def test_a_report_onto_a_null_device_writes_into_it_and_keeps_the_node(tmp_path, sleeper):
    null = make_node(tmp_path / "null", stat.S_IFCHR, NULL)
    before = node_identity(null)

    done = watch(sleeper, "--report", null)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "success"
    assert node_identity(null) == before, "the device node was replaced"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"], "a temp file was left behind"


def test_a_report_onto_a_full_device_is_exit_1_with_the_report_on_stdout_and_the_work_committed(tmp_path):
    full = make_node(tmp_path / "full", stat.S_IFCHR, FULL)
    before = node_identity(full)
    inp, cache = write_input(tmp_path / "in.jsonl", DOMAINS, PER_DOMAIN), tmp_path / "cache.sqlite"

    done = memtui("run", "--headless", "--input", inp, "--cache", cache, "--report", full, timeout=300)

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "success" and report["domains_done"] == DOMAINS
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "report" in errors[0] and "stdout" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert node_identity(full) == before, "the device node was replaced"
    assert cache_counts(cache)["responses"] == DOMAINS * PER_DOMAIN


def test_a_report_into_a_fifo_reaches_its_reader_and_keeps_the_fifo(tmp_path, sleeper):
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo, 0o600)
    before = node_identity(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()  # blocks in open until memtui opens the FIFO to write

    done = watch(sleeper, "--report", fifo)

    assert done.returncode == 0, done.stderr
    reader.join(60)
    assert not reader.is_alive(), "the reader never got an end of file"
    assert json.loads(got[0]) == json.loads(done.stdout)
    assert node_identity(fifo) == before, "the FIFO was replaced"


def test_a_fifo_without_a_reader_fails_in_bounded_time_and_keeps_the_fifo(tmp_path):
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo, 0o600)
    before = node_identity(fifo)
    with pytest.raises(TimeoutError, match="no reader"):
        write_output(fifo, b"{}\n", "report", wait_s=0.5)
    assert node_identity(fifo) == before


def test_a_link_to_a_device_is_replaced_by_the_report_and_the_device_is_not_touched(tmp_path, sleeper):
    full = make_node(tmp_path / "full", stat.S_IFCHR, FULL)  # written into, it would fail the run (ENOSPC)
    before = node_identity(full)
    link = tmp_path / "report.json"
    link.symlink_to(full)

    done = watch(sleeper, "--report", link)

    assert done.returncode == 0, done.stderr
    assert not link.is_symlink() and link.is_file()
    assert json.loads(link.read_text()) == json.loads(done.stdout)
    assert node_identity(full) == before


# -- memtui's own streams -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["-", "/dev/fd/1", "/proc/self/fd/1"])
def test_a_report_to_stdout_is_printed_once_and_touches_no_file(tmp_path, sleeper, name):
    # /dev/stdout itself is not used here: if memtui regressed, the rename would go over the real /dev's link.
    # /dev/fd/1 and /proc/self/fd/1 resolve into /proc, where a rename fails instead.
    done = watch(sleeper, "--report", name, cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # exactly one JSON document: the headless report is not printed twice
    assert report["status"] == "success"
    assert list(tmp_path.iterdir()) == [], "a file was written for a stream name"


def test_the_stream_names_are_memtuis_own_streams():
    assert [stream_fd(n) for n in ("-", "/dev/stdout", "/dev/fd/1", "/dev/stderr", "/dev/fd/2")] == [1, 1, 1, 2, 2]
    assert stream_fd("./-") is None and stream_fd("/dev/null") is None


# -- refused before any work ---------------------------------------------------------------------------------


def test_a_report_onto_a_block_device_is_refused_before_any_work(tmp_path, sleeper):
    disk = make_node(tmp_path / "loop", stat.S_IFBLK, LOOP)
    before = node_identity(disk)

    done = watch(sleeper, "--report", disk)

    refused(done, "--report", "block device")
    assert done.stdout == ""
    assert node_identity(disk) == before


def test_a_report_onto_a_socket_is_refused_before_any_work(tmp_path, sleeper):
    path = tmp_path / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    try:
        refused(watch(sleeper, "--report", path), "--report", "not a file")
    finally:
        server.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


def test_another_users_fifo_is_refused_before_any_work(tmp_path, sleeper):
    require_root()
    shared = sticky_folder(tmp_path)
    fifo = shared / "report.json"
    os.mkfifo(fifo, 0o666)
    os.chown(fifo, NOBODY, NOBODY)
    before = node_identity(fifo)

    done = watch(sleeper, "--report", fifo)

    refused(done, "--report", "another user")
    assert node_identity(fifo) == before


def test_a_report_naming_the_config_file_is_refused_and_the_config_kept(tmp_path, sleeper):
    config = tmp_path / "memtui.toml"
    config.write_text('sample-interval = "0.5"\n')
    before = fingerprint(config)

    done = watch(sleeper, "--config", config, "--report", config)

    refused(done, "--report", "config file")
    assert fingerprint(config) == before
