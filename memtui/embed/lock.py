"""One run per cache: an flock on ``<cache>.lock``, which dies with the process that held it.

A second run on the same cache refuses at once, naming the pid that holds it;
a lock file left by a killed process is not a lock (the kernel dropped the
flock with the process). The holder removes the file as it ends, while still
holding the lock, and a taker checks the path still names the file it locked,
so two runs can never each hold a different inode.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from memtui.embed.companions import lock_path
from memtui.errors import StoreError, UsageError
from memtui.safefs import disk_full, is_disk_full, open_private


class CacheBusy(UsageError):
    """Another memtui run holds this cache (exit 2)."""


class CacheLock:
    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, cache: str | os.PathLike[str], *, noun: str = "cache", flag: str = "--cache") -> CacheLock:
        """Take the file's lock or raise CacheBusy; its folder must exist. ``noun``/``flag`` word the errors
        (the cache's, or a job's results file's: memtui.jobs.user)."""
        path = lock_path(Path(cache))
        for _ in range(10):
            try:
                fd = open_private(path, os.O_RDWR, "lock file")
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full(path, f"creating the {noun}'s lock file") from None
                raise StoreError(
                    f"cannot create {noun} {cache}: its lock file {path}: {exc.strerror or exc}; "
                    f"pass {flag} in a writable folder"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise CacheBusy(
                    f"{noun} {cache} is in use by another memtui run ({holder}); wait for it to end, "
                    f"stop it, or pass {flag} OTHER"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.path.samestat(os.fstat(fd), os.lstat(path))
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed it between our open and our lock: take the new one
                os.close(fd)
                continue
            lock = cls(path, fd)
            try:
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps({"pid": os.getpid(), "started_at": time.time()}).encode() + b"\n", 0)
            except OSError as exc:  # a full disk: no traceback, and no lock file left behind
                lock.release()
                if is_disk_full(exc):
                    raise disk_full(path, f"creating the {noun}'s lock file") from None
                raise StoreError(
                    f"cannot write the lock file {path} of {noun} {cache}: {exc.strerror or exc}; "
                    f"pass {flag} in a writable folder"
                ) from None
            except BaseException:
                lock.release()
                raise
            return lock
        raise CacheBusy(f"{noun} {cache}: could not take its lock {path} (it keeps changing); retry")

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.unlink(self.path)  # still locked: nobody can have taken this inode in between
        except OSError:
            pass
        os.close(self._fd)
        self._fd = None


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        pid = int(info["pid"])
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started_at"])))
    except (ValueError, KeyError, TypeError, OSError):
        return "pid unknown"
    return f"pid {pid}, started {since}"
