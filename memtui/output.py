"""Writing a file the user named on the command line (``--report``; later any export or results file).

The one rule for a user-named output, written once so every output flag reuses
it (``check_output`` before any work, ``write_output`` after it):

- ``-``, ``/dev/stdout``, ``/dev/fd/1`` (and the same for stderr) name memtui's
  own stream: written there, nothing on disk is touched;
- it never names the input, the cache, the cache's companions or the config
  (the caller passes those as ``protected``): refused before any work, exit 2;
- an existing file that is not a regular file is *written into, never
  replaced*: a character device (``/dev/null``, ``/dev/full``, a terminal) or
  a FIFO keeps its node; a FIFO waits for a reader and a slow reader for at
  most ``WAIT_S``; a block device, a socket and another user's FIFO are refused
  (exit 2), so a typo cannot write a report over a disk;
- anything else (missing, a regular file, a link) is replaced all at once
  (``safefs.write_atomic``: a random temp file in its folder, renamed over it),
  so a reader never sees half and a link is replaced, never followed;
- ``open_output`` is the same rule for data streamed as it is made (an export): written into a
  stream, device or FIFO as it comes, else into a private temp file renamed over the path on success;
- a write that fails after the work is the caller's exit 1 (the report also
  went to stdout), worded from the OSError this raises.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import select
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from memtui.errors import UsageError
from memtui.safefs import owner_name, same_file, write_atomic
from memtui.stdio import write_line

#: Names of memtui's own standard streams: fd 1 or 2, never a file on disk.
STREAM_NAMES = {
    "-": 1,
    "/dev/stdout": 1,
    "/dev/fd/1": 1,
    "/proc/self/fd/1": 1,
    "/dev/stderr": 2,
    "/dev/fd/2": 2,
    "/proc/self/fd/2": 2,
}
#: The longest a FIFO may take to get a reader and to take the data.
WAIT_S = 30.0

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def stream_fd(path: Path | str) -> int | None:
    """1 or 2 when ``path`` names memtui's stdout or stderr, else None."""
    return STREAM_NAMES.get(str(path))


def check_output(path: Path, flag: str, *, protected: dict[str, Path]) -> None:
    """Before any work: ``path`` can be written and destroys nothing memtui depends on; UsageError (exit 2) if not."""
    if stream_fd(path) is not None:
        return
    for what, other in protected.items():
        if same_file(path, other):
            raise UsageError(
                f"{flag} {path} is the {what} ({other}); writing there would destroy it: pass another {flag} path"
            )
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # under a file: the folder check words it
        st = None
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot look at it ({exc.strerror}); pass another path") from None
    if path.is_dir():  # also a link to a folder
        raise UsageError(f"{flag} {path} is a directory; pass a file path such as {path / 'report.json'}")
    if st is not None and not stat.S_ISREG(st.st_mode) and not stat.S_ISLNK(st.st_mode):
        _check_node(path, st, flag)
        return
    folder = path.parent if str(path.parent) else Path(".")
    existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: cannot write in {existing}; pass a {flag} path in a writable folder")


def _check_node(path: Path, st: os.stat_result, flag: str) -> None:
    """An existing device, FIFO or socket: only a character device or a FIFO of ours or root's, writable."""
    kind = stat.filemode(st.st_mode)
    if stat.S_ISBLK(st.st_mode):
        raise UsageError(f"{flag} {path} is a block device ({kind}); memtui never writes into a disk: pass a file path")
    if not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        raise UsageError(f"{flag} {path} is not a file, a FIFO or a character device ({kind}); pass a file path")
    if st.st_uid not in (os.geteuid(), 0):
        raise UsageError(
            f"{flag} {path} belongs to another user ({owner_name(st.st_uid)}, {kind}); memtui writes only "
            "into its own or root's devices and FIFOs: pass a path of your own"
        )
    if not os.access(path, os.W_OK):
        raise UsageError(f"{flag} {path} ({kind}) is not writable; pass another {flag} path")


def write_output(path: Path, data: bytes, what: str, *, wait_s: float = WAIT_S) -> None:
    """Write ``data`` to the user-named ``path`` by the rule above; raises OSError for the caller to word."""
    fd = stream_fd(path)
    if fd is not None:
        write_line(sys.stdout if fd == 1 else sys.stderr, data.decode("utf-8", "replace").rstrip("\n"))
        return
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        if _write_into(path, st, data, what, wait_s):
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data, what)


@contextlib.contextmanager
def open_output(path: Path, what: str, *, wait_s: float = WAIT_S) -> Iterator[BinaryIO]:
    """``write_output`` for data made as it is written (an export): the same rule, a binary file to stream into.

    memtui's stdout or stderr, a character device or a FIFO (each write waits at most ``wait_s`` for the
    reader) is written into as the data comes; anything else gets a private temp file in its folder, renamed
    over ``path`` only when the block ends without an exception (so a failed export leaves no half file and
    the old one intact). Raises OSError for the caller to word.
    """
    fd = stream_fd(path)
    if fd is not None:
        (sys.stdout if fd == 1 else sys.stderr).flush()
        with io.BufferedWriter(_NodeWriter(os.dup(fd), wait_s), _BUFFER) as out:
            yield out
        return
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
        node = _open_node(path, st, what, time.monotonic() + wait_s, wait_s)
        if node is not None:
            with io.BufferedWriter(_NodeWriter(node, wait_s), _BUFFER) as out:
                yield out
            return
    path.parent.mkdir(parents=True, exist_ok=True)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{what} {path} is a directory; pass a file path")
    tmp_fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # O_EXCL, 0600
    try:
        with os.fdopen(tmp_fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


_BUFFER = 1 << 16


class _NodeWriter(io.RawIOBase):
    """An fd of a device, FIFO or standard stream; each write waits at most ``wait_s`` for room (poll)."""

    def __init__(self, fd: int, wait_s: float) -> None:
        self._fd, self._wait_s = fd, wait_s
        self._poller = select.poll()  # not select(): any fd number
        self._poller.register(fd, select.POLLOUT)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        deadline = time.monotonic() + self._wait_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(errno.ETIMEDOUT, f"the reader took no data within {self._wait_s:g}s")
            if not self._poller.poll(min(left, 1.0) * 1000):
                continue
            try:
                return os.write(self._fd, data)
            except BlockingIOError:
                continue

    def close(self) -> None:
        if not self.closed:
            os.close(self._fd)
        super().close()


def _open_node(path: Path, seen: os.stat_result, what: str, deadline: float, wait_s: float) -> int | None:
    """An fd on the device or FIFO at ``path`` (O_NONBLOCK); None if a regular file was swapped in."""
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC)  # no O_CREAT, no O_TRUNC
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: a FIFO with no reader yet
                raise
            if time.monotonic() >= deadline:
                raise TimeoutError(errno.ETIMEDOUT, f"no reader opened the FIFO within {wait_s:g}s") from None
            time.sleep(0.05)
    try:
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        if (st.st_dev, st.st_ino) != (seen.st_dev, seen.st_ino) or st.st_uid not in (os.geteuid(), 0):
            raise OSError(errno.EBUSY, f"the {what} path was swapped for another node while being written; rerun")
    except BaseException:
        with contextlib.suppress(OSError):
            os.close(fd)
        raise
    return fd


def _write_into(path: Path, seen: os.stat_result, data: bytes, what: str, wait_s: float) -> bool:
    """Write into the device or FIFO at ``path``; False if a regular file was swapped in (the caller replaces it)."""
    deadline = time.monotonic() + wait_s
    fd = _open_node(path, seen, what, deadline, wait_s)
    if fd is None:
        return False
    try:
        poller = select.poll()  # not select(): any fd number
        poller.register(fd, select.POLLOUT)
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(errno.ETIMEDOUT, f"the reader took no data within {wait_s:g}s")
            if not poller.poll(min(left, 1.0) * 1000):
                continue
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                continue
        return True
    finally:
        os.close(fd)
