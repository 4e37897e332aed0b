"""Which response ids the input has used so far, on disk rather than in RAM.

Two uses, both over the whole input: the scan refuses an id that appears on
two lines (the cache keeps one row per id: a second would replace the first),
and a response without an id gets a content hash made unique by its
occurrence. A Python set would grow with the input (about 100 bytes an id);
this is a private temporary SQLite database (SQLite makes it O_EXCL, 0600 and
unlinked at once, in its temporary folder) with a bounded page cache.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from memtui.errors import RuntimeFailure

#: SQLite's page cache for the index, in KiB (negative: a size, not a page count).
CACHE_KIB = 4096


T = TypeVar("T")


def _failing_as_runtime(method: Callable[..., T]) -> Callable[..., T]:
    """An SQLite failure here (its temporary folder full or unwritable) is a one-line runtime failure."""

    @functools.wraps(method)
    def wrapped(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            raise RuntimeFailure(
                f"the temporary index of response ids failed ({exc}); free space in the temporary folder "
                "(SQLITE_TMPDIR or TMPDIR, else /var/tmp or /tmp) or point SQLITE_TMPDIR at a roomier one"
            ) from None

    return wrapped


class IdIndex:
    """Ids seen so far: explicit ids with their first line, content-hash ids with their count."""

    @_failing_as_runtime
    def __init__(self) -> None:
        self._conn = sqlite3.connect("", isolation_level=None)  # "": a private temporary database on disk
        self._conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        self._conn.execute("PRAGMA journal_mode = OFF")
        self._conn.execute("PRAGMA synchronous = OFF")
        self._conn.execute("CREATE TABLE given (id TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID")
        self._conn.execute("CREATE TABLE hashed (id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
        self._conn.execute("BEGIN")  # one transaction: nothing here outlives the process

    @_failing_as_runtime
    def first_line(self, rid: str, line: int) -> int | None:
        """Record ``rid`` seen on ``line``; the line it was first seen on if it was seen before."""
        row = self._conn.execute("SELECT line FROM given WHERE id = ?", (rid,)).fetchone()
        if row is not None:
            return int(row[0])
        self._conn.execute("INSERT INTO given(id, line) VALUES (?, ?)", (rid, line))
        return None

    # The mapping interface memtui.jobs.input._response counts content-hash ids with.
    @_failing_as_runtime
    def get(self, rid: str, default: int = 0) -> int:
        row = self._conn.execute("SELECT n FROM hashed WHERE id = ?", (rid,)).fetchone()
        return int(row[0]) if row is not None else default

    @_failing_as_runtime
    def __setitem__(self, rid: str, n: int) -> None:
        self._conn.execute("INSERT OR REPLACE INTO hashed(id, n) VALUES (?, ?)", (rid, n))

    def close(self) -> None:
        self._conn.close()
