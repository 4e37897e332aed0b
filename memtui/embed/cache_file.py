"""Opening the cache file for writing without trusting what is at its path.

Folders are made 0700; the file and its companions must pass safefs's rule (no link, a regular file,
ours, one name) and are tightened to 0600, or the file is created with O_EXCL. An existing file is
classified read-only before SQLite may write a byte: a database memtui did not make keeps every byte.
A non-empty ``-wal`` must be the cache's own (``wal_owner``) before any connection could apply it.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from memtui.embed.companions import SHM, SQLITE_SUFFIXES, WAL, companion, wal_path
from memtui.embed.schema import check_header, read_meta
from memtui.embed.sqlite_errors import FIX, open_error, reason
from memtui.embed.wal_owner import check_wal_owner
from memtui.errors import MemtuiError, StoreError
from memtui.safefs import check_existing, create_exclusive, disk_full, is_disk_full, tighten


def make_folders(path: Path, created: list[Path], *, noun: str = "cache", flag: str = "--cache") -> None:
    """Create the file's missing folders, 0700; each one made is appended to ``created``. ``noun`` and ``flag``
    word the errors: the cache's (``--cache``) or a job's results file's (``--output``, memtui.jobs.user)."""
    folder = path.parent.absolute()
    missing = [p for p in reversed(folder.parents) if not p.exists()]
    if not folder.exists():
        missing.append(folder)
    try:
        for made in missing:
            made.mkdir(mode=0o700)
            created.append(made)
            made.chmod(0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise _cannot_create(path, exc, made, noun=noun, flag=flag) from None


def remove_created(created: list[Path]) -> None:
    """Undo a failed open: what ``make_folders`` and ``prepare`` made (and SQLite's companions), newest first."""
    for made in reversed(created):
        for victim in (made, *(companion(made, s) for s in SQLITE_SUFFIXES)):
            try:
                victim.rmdir() if victim.is_dir() else victim.unlink(missing_ok=True)
            except OSError:
                pass


def _cannot_create(
    path: Path, exc: OSError, folder: Path | None = None, *, noun: str = "cache", flag: str = "--cache"
) -> MemtuiError:
    """A failed mkdir or create: a full disk said so, else what failed and where to put the file instead."""
    if is_disk_full(exc):
        return disk_full(folder or path, f"creating the {noun} folder" if folder else f"creating the {noun}")
    where = f"folder {folder}: " if folder else ""
    return StoreError(f"cannot create {noun} {path}: {where}{exc.strerror or exc}; pass {flag} in a writable folder")


def prepare(
    path: Path,
    created: list[Path],
    *,
    noun: str = "cache",
    flag: str = "--cache",
    classify_file: Callable[[Path, os.stat_result], None] | None = None,
) -> bool:
    """Check the file and its companions are ours and private, or create it (0600); return whether it existed.

    Nothing is opened through a link, and a database memtui did not make is
    refused before SQLite may write to it (``classify_file``: the cache's ``classify`` unless given).
    """
    sides = [
        (side, check_existing(side, f"{noun} companion"))
        for side in (companion(path, suffix) for suffix in SQLITE_SUFFIXES)
    ]
    st = check_existing(path, noun)
    if st is None:
        try:
            create_exclusive(path)  # SQLite gives the -wal and -shm files the database file's mode
        except FileExistsError:
            raise StoreError(f"{noun} {path} appeared while memtui was creating it; rerun") from None
        except OSError as exc:
            raise _cannot_create(path, exc, noun=noun, flag=flag) from None
        created.append(path)
        existed = False
    else:
        if not (st.st_mode & stat.S_IWUSR) or not os.access(path, os.W_OK):
            raise StoreError(f"{noun} {path} is read-only; chmod u+w {path} or pass {flag} NEW_PATH")
        (classify_file or classify)(path, st)  # first: another application's database keeps its mode too
        tighten(path, st)
        existed = True
    for side, side_st in sides:
        if side_st is not None:
            tighten(side, side_st)
    for suffix in (WAL, SHM):  # ours from the start: nobody can slip one in before SQLite
        side = companion(path, suffix)
        try:
            if create_exclusive(side) and not existed:
                created.append(side)
        except OSError:
            pass  # SQLite makes it itself (never through a link)
    return existed


def classify(path: Path, st: os.stat_result) -> None:
    """Refuse, without writing a byte, an existing file that is not a memtui cache.

    Read through a read-only connection (immutable when there is no WAL to
    replay, so not even a -shm file is made). An empty file, or an empty WAL
    database (a cache whose creation was cut short), is ours to initialise.
    """
    if st.st_size == 0:
        return
    check_header(path)
    wal = wal_path(path)
    replay = wal.exists() and wal.stat().st_size > 0
    if replay:
        check_wal_owner(path, wal)  # before any connection could apply another database's WAL
    uri = f"file:{quote(str(path.absolute()))}?mode=ro" + ("" if replay else "&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise open_error(path, exc) from None
    try:
        if read_meta(conn, path) is None and _journal_version(path) != 2 and not replay:
            raise StoreError(f"{path} is an empty SQLite database that memtui did not create; {FIX}")
    except sqlite3.DatabaseError as exc:
        raise open_error(path, exc) from None
    finally:
        conn.close()


def _journal_version(path: Path) -> int:
    """Byte 18 of the SQLite header: 1 rollback journal, 2 WAL (every memtui cache)."""
    with open(path, "rb") as fh:
        head = fh.read(19)
    return head[18] if len(head) > 18 else 0


def connect(path: Path, existed: bool) -> sqlite3.Connection:
    """The writer's connection: WAL, ``synchronous=FULL`` (a returned commit is on disk), an existing file
    checked (``quick_check``)."""
    try:
        conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open cache {path} ({reason(exc)}); {FIX}") from None
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns (WAL fsync per commit)
        if existed:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise StoreError(f"cache {path} is corrupt ({check}); {FIX}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise open_error(path, exc) from None
    except BaseException:
        conn.close()
        raise
    if mode.lower() != "wal":
        conn.close()
        raise StoreError(f"cache {path} cannot use WAL journaling (got {mode}); put it on a local disk")
    return conn
