"""Which response ids the input has used so far, on disk rather than in RAM.

Two uses, both over the whole input: the scan refuses an id that appears on
two lines (the cache keeps one row per id: a second would replace the first),
and a response without an id gets a content hash made unique by its
occurrence. A Python set would grow with the input (about 100 bytes an id);
this is a private temporary SQLite database (SQLite makes it O_EXCL, 0600 and
unlinked at once, in its temporary folder) with a bounded page cache.
"""

from __future__ import annotations

import sqlite3

#: SQLite's page cache for the index, in KiB (negative: a size, not a page count).
CACHE_KIB = 4096


class IdIndex:
    """Ids seen so far: explicit ids with their first line, content-hash ids with their count."""

    def __init__(self) -> None:
        self._conn = sqlite3.connect("", isolation_level=None)  # "": a private temporary database on disk
        self._conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        self._conn.execute("PRAGMA journal_mode = OFF")
        self._conn.execute("PRAGMA synchronous = OFF")
        self._conn.execute("CREATE TABLE given (id TEXT PRIMARY KEY, line INTEGER NOT NULL) WITHOUT ROWID")
        self._conn.execute("CREATE TABLE hashed (id TEXT PRIMARY KEY, n INTEGER NOT NULL) WITHOUT ROWID")
        self._conn.execute("BEGIN")  # one transaction: nothing here outlives the process

    def first_line(self, rid: str, line: int) -> int | None:
        """Record ``rid`` seen on ``line``; the line it was first seen on if it was seen before."""
        row = self._conn.execute("SELECT line FROM given WHERE id = ?", (rid,)).fetchone()
        if row is not None:
            return int(row[0])
        self._conn.execute("INSERT INTO given(id, line) VALUES (?, ?)", (rid, line))
        return None

    # The mapping interface memtui.jobs.input._response counts content-hash ids with.
    def get(self, rid: str, default: int = 0) -> int:
        row = self._conn.execute("SELECT n FROM hashed WHERE id = ?", (rid,)).fetchone()
        return int(row[0]) if row is not None else default

    def __setitem__(self, rid: str, n: int) -> None:
        self._conn.execute("INSERT OR REPLACE INTO hashed(id, n) VALUES (?, ?)", (rid, n))

    def close(self) -> None:
        self._conn.close()
