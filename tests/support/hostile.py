"""A hostile shared server for tests: sticky world-writable folders, planted links, tiny disks, ptys.

Everything here acts on real files and real processes. What needs root skips
with a reason that says so (pytest -ra prints it).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import pty
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import memtui_env

NOBODY = 65534


def require_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: memtui's promises here are about root writing in folders other users can write")


def sticky_folder(parent: Path, name: str = "shared", owner: int = NOBODY) -> Path:
    """A folder like a shared /tmp: mode 1777, owned by another user.

    Owned by that user so the kernel's own fs.protected_symlinks/protected_regular
    (which spare links and files of the folder's owner) cannot hide a bug in memtui.
    """
    folder = parent / name
    folder.mkdir()
    os.chown(folder, owner, owner)
    os.chmod(folder, 0o1777)
    return folder


def plant_link(link: Path, target: Path, owner: int = NOBODY) -> Path:
    """A symbolic link at ``link`` to ``target``, owned by ``owner`` (as another user would plant it)."""
    os.symlink(target, link)
    os.lchown(link, owner, owner)
    return link


def plant_file(path: Path, data: bytes = b"", owner: int = NOBODY, mode: int = 0o644) -> Path:
    path.write_bytes(data)
    os.chown(path, owner, owner)
    os.chmod(path, mode)
    return path


def make_victim(path: Path, data: bytes = b"root's precious file\n" * 4, mode: int = 0o640) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def fingerprint(path: Path) -> tuple[str, int, int, int]:
    """sha256, mode, owner and size: what a file must keep when memtui must not touch it."""
    st = os.lstat(path)
    return hashlib.sha256(path.read_bytes()).hexdigest(), stat.S_IMODE(st.st_mode), st.st_uid, st.st_size


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def cache_counts(cache: Path) -> dict[str, int]:
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=10)
    try:
        return {
            table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("embeddings", "responses", "domains")
        }
    finally:
        con.close()


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("memtui: error:")]


# -- processes --------------------------------------------------------------------------------------


class Watched:
    """A memtui subprocess whose stderr is read line by line as it comes (so a test can wait for a line)."""

    def __init__(
        self, args: list[str], *, stdin=subprocess.DEVNULL, env: dict[str, str] | None = None, **popen
    ) -> None:
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "memtui", *map(str, args)],
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or memtui_env(),
            **popen,
        )
        self.lines: list[str] = []
        self._new = threading.Condition()
        self.stdout = ""
        self._err = threading.Thread(target=self._read_err, daemon=True)
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._err.start()
        self._out.start()

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            with self._new:
                self.lines.append(line.rstrip("\n"))
                self._new.notify_all()
        with self._new:
            self._new.notify_all()

    def _read_out(self) -> None:
        self.stdout = self.proc.stdout.read()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_for(self, needle: str, timeout: float = 120) -> str:
        """The first stderr line containing ``needle``; fails if the process ends or time runs out first."""
        deadline = time.monotonic() + timeout
        with self._new:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if needle in line:
                        return line
                seen = len(self.lines)
                if self.proc.poll() is not None and not self._err.is_alive():
                    raise AssertionError(f"memtui ended ({self.proc.returncode}) before {needle!r}:\n" + self.stderr)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {needle!r} within {timeout}s:\n" + self.stderr)
                self._new.wait(min(left, 0.2))

    def count(self, needle: str) -> int:
        with self._new:
            return sum(needle in line for line in self.lines)

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self._err.join(10)
        self._out.join(10)
        return code

    @property
    def stderr(self) -> str:
        with self._new:
            return "\n".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@contextlib.contextmanager
def killing(*watched: Watched) -> Iterator[None]:
    """Whatever happens in the block, no memtui started by the test outlives it."""
    try:
        yield
    finally:
        for w in watched:
            w.kill()


def wchan(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/wchan").read_text().strip()
    except OSError:
        return ""


def wait_blocked_in_fifo_open(pid: int, timeout: float = 60) -> None:
    """Until the process sleeps in the kernel's FIFO open (waiting for a writer)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(word in wchan(pid) for word in ("fifo", "pipe", "partner")):
            return
        time.sleep(0.05)
    raise AssertionError(f"pid {pid} never blocked opening the FIFO (wchan {wchan(pid)!r})")


# -- a tiny disk --------------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder`` for the block; skips (with the reason) if mounting fails."""
    require_root()
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs to make a full disk: {done.stderr.strip() or done.returncode}")
    try:
        yield folder
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode == 0:
                break
            time.sleep(0.1)


def fill_up(folder: Path, name: str = "filler") -> Path:
    """Write zeros into ``folder`` until its disk says ENOSPC."""
    path = folder / name
    block = b"\0" * 4096
    with open(path, "ab", buffering=0) as fh:
        while True:
            try:
                fh.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break
    with contextlib.suppress(OSError), open(path, "ab", buffering=0) as fh:  # the last partial page
        while fh.write(b"\0"):
            pass
    return path


# -- a terminal ------------------------------------------------------------------------------------------


def controlling_tty_preexec(slave_fd: int):
    """For Popen(preexec_fn=...): a new session whose controlling terminal is the pty slave on fd 0."""
    import fcntl
    import termios

    def become_session_leader() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return become_session_leader


def open_pty() -> tuple[int, int]:
    return pty.openpty()


def drain(fd: int, stop: threading.Event, sink: list[bytes]) -> threading.Thread:
    """Read a pty master until it fails or ``stop`` is set (a pty whose buffer fills blocks its writer)."""
    import select

    def run() -> None:
        while not stop.is_set():
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
                if ready:
                    data = os.read(fd, 65536)
                    if not data:
                        return
                    sink.append(data)
            except OSError:
                return

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
