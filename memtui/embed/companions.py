"""The files beside a cache, named once: SQLite's (``-wal``, ``-shm``, ``-journal``) and memtui's
(``.trace``, ``.lock``).

Every place that opens, creates, tightens, removes or protects one of them takes its name from
here: the store (its WAL check and the modes it sets), the cache lock, the run trace and the
``--report`` protection list (a report must never replace any of them). A companion added later
(an index, a checksum file) is added here and is protected at once.
"""

from __future__ import annotations

from pathlib import Path

#: SQLite's write-ahead log: it applies whatever it finds there (``wal_owner`` checks it is the cache's own).
WAL = "-wal"
#: SQLite's index of the WAL (rebuilt by the first connection).
SHM = "-shm"
#: SQLite's rollback journal (a cache in another journal mode, or one being converted).
JOURNAL = "-journal"
#: memtui's rolling run trace (``memtui.trace.RunTrace``).
TRACE = ".trace"
#: memtui's cache lock (``memtui.embed.lock.CacheLock``).
LOCK = ".lock"

#: SQLite's files, in the order they are made.
SQLITE_SUFFIXES = (WAL, SHM, JOURNAL)
#: Every companion, SQLite's then memtui's.
SUFFIXES = (*SQLITE_SUFFIXES, TRACE, LOCK)


def companion(cache: Path, suffix: str) -> Path:
    """``embeddings.sqlite`` with ``-wal`` -> ``embeddings.sqlite-wal``, in the cache's folder."""
    return cache.with_name(cache.name + suffix)


def wal_path(cache: Path) -> Path:
    return companion(cache, WAL)


def trace_path(cache: Path) -> Path:
    """The rolling trace lives beside the cache: ``embeddings.sqlite`` -> ``embeddings.sqlite.trace``."""
    return companion(cache, TRACE)


def lock_path(cache: Path) -> Path:
    return companion(cache, LOCK)


def protected(cache: Path, noun: str = "cache") -> dict[str, Path]:
    """Every companion, named for an error message ("cache's wal file"): what a --report must not replace."""
    return {f"{noun}'s {suffix.lstrip('.-')} file": companion(cache, suffix) for suffix in SUFFIXES}
