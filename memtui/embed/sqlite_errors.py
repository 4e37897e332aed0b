"""What an SQLite error on the cache means to the user, worded once for the store, its schema and its readers.

A full disk (SQLite often says only "disk I/O error" when a -wal cannot grow), a foreign file, a read-only
or locked cache: each becomes one line saying what, where and how to fix it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from memtui.errors import MemtuiError, StoreError
from memtui.safefs import disk_full

#: The fix for a cache memtui cannot use as it is.
FIX = "move it away or pass --cache NEW_PATH"
#: Free space below which an SQLite I/O error is taken for a full disk.
FULL_BELOW = 1 << 20
#: SQLite's primary result code for I/O errors (extended codes keep it in their low byte).
SQLITE_IOERR = 10


def reason(exc: BaseException) -> str:
    """The first line of an error (SQLite's messages can run long)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def is_full(path: Path, exc: sqlite3.Error) -> bool:
    """SQLITE_FULL, or an I/O error on a disk with no room left: SQLite reports a -wal or -shm it cannot
    grow (ENOSPC) as a plain "disk I/O error"."""
    if "full" in reason(exc):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    io_error = (code & 0xFF) == SQLITE_IOERR if code is not None else "I/O error" in reason(exc)
    if not io_error:
        return False
    try:
        fs = os.statvfs(path.absolute().parent)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < FULL_BELOW


def open_error(path: Path, exc: sqlite3.Error) -> MemtuiError:
    """An error met opening a cache, as the user should read it."""
    text = reason(exc)
    if is_full(path, exc):
        return disk_full(path, "opening the cache")
    if "not a database" in text:
        return StoreError(f"{path} is not a memtui cache (file is not a database); {FIX}")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"cache {path} is read-only ({text}); make it and its folder writable")
    if "locked" in text:
        return StoreError(f"cache {path} is locked by another process; wait for it or pass --cache NEW_PATH")
    return StoreError(f"cache {path} is corrupt or unreadable ({text}); {FIX}")


def write_fix(exc: sqlite3.Error) -> str:
    """How to get past a failed write."""
    text = reason(exc)
    if "full" in text:
        return "free disk space and rerun (completed batches are kept)"
    if "locked" in text or "busy" in text:
        return "another process holds the cache; stop it or pass --cache NEW_PATH"
    if "readonly" in text:
        return "make the cache and its folder writable"
    return "rerun (completed batches are kept) or pass --cache NEW_PATH"
