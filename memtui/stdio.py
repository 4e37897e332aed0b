"""Writing to a terminal or pipe that may go away, one whole line at a time.

Log lines come from several threads (the job, the memory sampler, the face):
each goes out in one write under one lock, so two never run together on a line.
A terminal that hung up (EIO) or a pipe whose reader left (EPIPE) loses lines,
never the exit path: the descriptor is pointed at /dev/null.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any, TextIO

#: Held for every line written to stdout/stderr by memtui, the logging handler's included.
LINE_LOCK = threading.RLock()


def write_line(stream: TextIO, text: str) -> None:
    """``text`` and its newline in one write, under LINE_LOCK; a dead end loses the line, nothing more."""
    with LINE_LOCK:
        try:
            stream.write(text + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


#: Errors of a write to a terminal that hung up (EIO) or a pipe whose reader left (EPIPE).
DEAD_END = (errno.EIO, errno.EPIPE)


def fill_closed_std_fds() -> None:
    """Put /dev/null on any of fds 0-2 that was closed when memtui started (``memtui run >&-``).

    Called first thing in main, before any file is opened: otherwise the next
    open (the cache's lock, the cache) gets that number, and log lines, the
    report or Python's last words are written into it. The matching sys stream
    (None when Python started without the fd) is rebuilt on it, so a closed
    stdout loses the output and nothing else: the work is done, the exit code
    is the normal one.
    """
    for fd, name in ((0, "stdin"), (1, "stdout"), (2, "stderr")):
        try:
            os.fstat(fd)
            continue
        except OSError as exc:
            if exc.errno != errno.EBADF:
                continue
        devnull = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if devnull != fd:
            os.dup2(devnull, fd)  # the lowest free number is ``fd`` unless a lower one is closed too
            os.close(devnull)
        os.set_inheritable(fd, True)
        if getattr(sys, name) is None:
            raw = io.FileIO(fd, "r" if fd == 0 else "w", closefd=False)
            stream = io.TextIOWrapper(raw, encoding="utf-8", errors="backslashreplace", line_buffering=fd != 0)
            setattr(sys, name, stream)
            setattr(sys, f"__{name}__", stream)


def to_devnull(fd: int) -> None:
    """Point ``fd`` at /dev/null: later writes to it succeed and go nowhere."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class DeadEndSafe:
    """Wraps sys.stdout or sys.stderr: a write that fails with EIO/EPIPE is dropped, and the descriptor
    goes to /dev/null so the interpreter's own final flush cannot fail either."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.dead = False

    def _guard(self, call, *args):
        if self.dead:
            return None
        try:
            return call(*args)
        except OSError as exc:
            if exc.errno not in DEAD_END:
                raise
            self.dead = True
            with contextlib.suppress(OSError, ValueError):
                to_devnull(self._stream.fileno())
            return None

    def write(self, text: str) -> int:
        self._guard(self._stream.write, text)
        return len(text)

    def flush(self) -> None:
        self._guard(self._stream.flush)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def dead_end_safe_stdio() -> Iterator[None]:
    """sys.stdout and sys.stderr wrapped in DeadEndSafe for the block (the face, its summary, its report)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = DeadEndSafe(sys.stdout), DeadEndSafe(sys.stderr)
    try:
        yield
    finally:
        for wrapper in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                wrapper.flush()
        sys.stdout, sys.stderr = saved


def detach_dead_terminal(ttys: tuple[int, ...]) -> None:
    """After a hangup: point those of ``ttys`` (descriptors that were terminals) that are a terminal no
    more (a hung-up tty fails isatty with EIO) at /dev/null. Files and pipes are never touched."""
    for fd in ttys:
        if not os.isatty(fd):
            with contextlib.suppress(OSError):
                to_devnull(fd)
