"""The results file of a user's job: one SQLite file (WAL), by the cache's file-safety rules.

Each item's result is stored under its key with the fingerprint of the item it came from, so a changed
item under the same key is computed again; a batch's results go in one transaction (a kill -9 loses at
most the batch in flight). Items the function failed on are kept apart, with their error, and tried
again by the next run. The file is opened by the cache's rules, the same code (memtui.embed.cache_file):
folders made 0700, the file and its SQLite companions created O_EXCL 0600 or checked to be ours, never
through a link, a foreign database refused before SQLite writes to it, a ``-wal`` applied only when it is
this file's own (memtui.embed.wal_owner: every commit rewrites meta's stamp), one run at a time
(memtui.embed.lock on ``<file>.lock``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from memtui.embed import cache_file
from memtui.embed.companions import SHM, WAL, companion
from memtui.embed.lock import CacheLock
from memtui.embed.wal_owner import STAMP_KEY, check_wal_owner
from memtui.errors import StoreError
from memtui.safefs import disk_full, is_disk_full

KIND = "memtui-results"
#: 2: a key is its id's JSON text (``1`` and ``"1"`` apart), or HASH_KEY + hex. 1 (the first release) keyed
#: ``str(id)``, so 1 and "1" were one key: such a file is still read (``memtui results``), never run into.
SCHEMA_VERSION = 2
OLD_KEYING = "1"
#: The key of an item without an id (never JSON text: JSON starts with a quote, a digit, -, [, {, t or f).
HASH_KEY = "sha256:"
OLD_KIND = "memtui-results, keyed by str(id)"
IN_CHUNK = 500
_FIX = "move it away or pass --output NEW_PATH"
NOUN = "results file"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE results (key TEXT PRIMARY KEY, fingerprint BLOB NOT NULL, line INTEGER NOT NULL, result TEXT NOT NULL);
CREATE INDEX results_line ON results(line);
CREATE TABLE failures (key TEXT PRIMARY KEY, fingerprint BLOB NOT NULL, line INTEGER NOT NULL, error TEXT NOT NULL)
"""

#: (key, fingerprint, line, result as JSON text)
Row = tuple[str, bytes, int, str]


class ResultsStore:
    """The writer's handle: one connection, the run's lock."""

    def __init__(self, conn: sqlite3.Connection, path: Path, lock: CacheLock) -> None:
        self._conn = conn
        self.path = path
        self._lock = lock

    @classmethod
    def open(cls, path: str | os.PathLike[str], job: str, *, lock: CacheLock | None = None) -> ResultsStore:
        path = Path(path)
        created: list[Path] = []
        try:
            cache_file.make_folders(path, created, noun=NOUN, flag="--output")
            if lock is None:
                lock = CacheLock.acquire(path, noun=NOUN, flag="--output")
            existed = cache_file.prepare(path, created, noun=NOUN, flag="--output", classify_file=_classify)
            conn = _connect(path)
            try:
                _init_or_check(conn, path, job, existed)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()
            cache_file.remove_created(created)
            raise
        return cls(conn, path, lock)

    def done(self, pairs: Sequence[tuple[str, bytes]]) -> set[str]:
        """The keys among ``pairs`` whose stored result is of an item with this fingerprint."""
        out: set[str] = set()
        wanted = dict(pairs)
        keys = list(wanted)
        for i in range(0, len(keys), IN_CHUNK):
            part = keys[i : i + IN_CHUNK]
            marks = ",".join("?" * len(part))
            for key, fp in self._query(f"SELECT key, fingerprint FROM results WHERE key IN ({marks})", part):
                if wanted.get(key) == fp:
                    out.add(key)
        return out

    def commit(self, rows: Iterable[Row], failures: Iterable[Row]) -> None:
        """One transaction: the batch's results (their old failures go) and its failed items."""
        rows, failures = list(rows), list(failures)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?)", rows)
            self._conn.executemany("DELETE FROM failures WHERE key = ?", [(r[0],) for r in rows])
            self._conn.executemany("DELETE FROM results WHERE key = ?", [(f[0],) for f in failures])
            self._conn.executemany("INSERT OR REPLACE INTO failures VALUES (?, ?, ?, ?)", failures)
            # the meta page in every WAL: its created_at proves the WAL is this file's (embed.wal_owner)
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (STAMP_KEY, repr(time.time())))
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if is_disk_full(exc) or "full" in str(exc).lower():
                raise disk_full(self.path, "committing results") from None
            raise StoreError(f"cannot write results to {self.path} ({exc}); {_FIX}") from None

    def _query(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"cannot read results file {self.path} ({exc}); {_FIX}") from None

    def close(self) -> None:
        try:
            self._conn.close()
        finally:
            self._lock.release()


def _classify(path: Path, st: os.stat_result) -> None:
    """An existing file must be a memtui results file (or empty): read-only, before SQLite writes to it."""
    if st.st_size == 0:
        return
    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise StoreError(f"{path} is not a memtui results file (not a database); {_FIX}")
    wal = companion(path, WAL)
    if wal.exists() and wal.stat().st_size > 0:
        check_wal_owner(path, wal, noun=NOUN)  # before any connection could apply another file's WAL
    conn = _read_only(path)
    try:
        kind = _kind(conn)
    finally:
        conn.close()
    if kind == OLD_KIND:
        raise StoreError(
            f'results file {path} was written by an older memtui whose keys lose the id\'s JSON type (1 and "1" '
            "were one key); `memtui results` still reads it; pass a new --output (or delete it) to run again"
        )
    if kind not in (None, KIND):
        raise StoreError(f"{path} is a SQLite database but not a memtui results file; {_FIX}")


def key_value(key: str) -> Any:
    """A stored key as the operator wrote it: the id's JSON value (``1`` or ``"1"``), or the hash key."""
    return key if key.startswith(HASH_KEY) else json.loads(key)


def _schema_is_ours(entries: list[tuple[Any, ...]]) -> bool:
    """The file holds exactly the tables and indexes memtui creates: no view (a recursive one never ends a
    read), no trigger (run on a write), no other column. SQLite keeps each CREATE statement's text as given."""
    ours = {statement.strip() for statement in _SCHEMA.split(";") if statement.strip()}
    made = set()
    for kind, name, sql in entries:
        if sql is None and kind == "index" and str(name).startswith("sqlite_autoindex_"):
            continue  # a PRIMARY KEY's own index
        made.add(sql)
    return made == ours


def _kind(conn: sqlite3.Connection) -> str | None:
    try:
        entries = conn.execute("SELECT type, name, sql FROM sqlite_master").fetchall()  # reads no table
        if not entries:
            return None
        if not _schema_is_ours(entries):
            return "foreign"
        meta = dict(conn.execute("SELECT key, value FROM meta LIMIT 16").fetchall())
    except sqlite3.DatabaseError:
        return "foreign"
    if meta.get("kind") != KIND:
        return "foreign"
    version = meta.get("schema_version")
    return KIND if version == str(SCHEMA_VERSION) else OLD_KIND if version == OLD_KEYING else "foreign"


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot open results file {path} ({exc}); {_FIX}") from None
    return conn


def _init_or_check(conn: sqlite3.Connection, path: Path, job: str, existed: bool) -> None:
    try:
        if _kind(conn) is None:
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            meta = [
                ("kind", KIND),
                ("schema_version", str(SCHEMA_VERSION)),
                ("job", job),
                ("created_at", repr(time.time())),
            ]
            conn.executemany("INSERT INTO meta VALUES (?, ?)", meta)
            conn.execute("COMMIT")
        elif existed and conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise StoreError(f"results file {path} is corrupt; {_FIX}")
        else:  # another function's results are not this one's: never reused as if they were
            row = conn.execute("SELECT value FROM meta WHERE key = 'job'").fetchone()
            if row is not None and row[0] != job:
                raise StoreError(
                    f"results file {path} holds the results of job {row[0]}, not {job}; pass another --output "
                    "(or delete it to start over)"
                )
    except sqlite3.DatabaseError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StoreError(f"cannot prepare results file {path} ({exc}); {_FIX}") from None


def _read_only(path: Path) -> sqlite3.Connection:
    wal = companion(path, WAL)
    replay = wal.exists() and wal.stat().st_size > 0
    uri = f"file:{quote(str(path.absolute()))}?mode=ro" + ("" if replay else "&immutable=1")
    try:
        return sqlite3.connect(uri, uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open results file {path} read-only ({exc}); check its permissions") from None


def check_results_file(path: Path) -> None:
    """A reader's rule: no link, a regular file (and its companions), a memtui results file inside."""
    for file, what in [(path, "results file")] + [(companion(path, s), "results companion") for s in (WAL, SHM)]:
        try:
            st = os.lstat(file)
        except FileNotFoundError:
            if file is path:
                raise StoreError(f"no results file at {path}; run memtui run --job ... --output {path} first") from None
            continue
        if stat.S_ISLNK(st.st_mode):
            raise StoreError(f"{what} {file} is a symbolic link; memtui never reads through links: pass the real path")
        if not stat.S_ISREG(st.st_mode):
            raise StoreError(f"{what} {file} is not a file ({stat.filemode(st.st_mode)}); pass a results file")
    wal = companion(path, WAL)
    if wal.exists() and wal.stat().st_size > 0:
        check_wal_owner(path, wal, noun=NOUN)  # a reader applies a WAL too: only the file's own


#: How much of a stored result the export holds at once (it is copied from the file in pieces of this size).
READ_CHUNK = 1 << 20


def read_rows(path: str | os.PathLike[str], *, failures: bool = False) -> Iterator[tuple[Any, Iterator[bytes]]]:
    """Each stored (key, its result's JSON text in pieces) in input order (``failures``: the error text).

    Streams without parsing a result: the order is read first (rowids only, never a row's text), then each
    row is checked by SQLite (JSON text: ``json_valid``, in C, depth-bounded) and read from the file in
    READ_CHUNK pieces (incremental blob I/O), so a 200 MB result is never held whole. Consume a row's pieces
    before the next row. A row that is not as memtui writes it (not JSON, not on one line, a bad key) is a
    one-line StoreError naming the file and the row's key."""
    path = Path(path)
    check_results_file(path)
    conn = _read_only(path)
    try:
        kind = _kind(conn)
        if kind not in (KIND, OLD_KIND):
            raise StoreError(f"{path} is not a memtui results file; pass the --output of a memtui job")
        conn.text_factory = bytes
        show = key_value if kind == KIND else str  # an old file's keys are str(id): shown as stored
        table, column = ("failures", "error") if failures else ("results", "result")
        check = "1" if failures else f"json_valid({column})"
        order = conn.execute(f"SELECT rowid FROM {table} ORDER BY line, key")  # one read snapshot for all
        for (rowid,) in order:
            row = conn.execute(
                f"SELECT key, typeof(key), typeof({column}), {check} FROM {table} WHERE rowid = ?", (rowid,)
            ).fetchone()
            if row is None:
                continue
            key, key_type, value_type, valid = row
            shown = _key_shown(path, key, key_type, show)
            if value_type not in (b"text", "text") or not valid:
                raise _damaged(path, column, shown)
            yield shown, _pieces(conn, path, (table, column, rowid), shown, one_line=not failures)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read results file {path} ({exc}); check the file") from None
    finally:
        conn.close()


def _pieces(
    conn: sqlite3.Connection, path: Path, where: tuple[str, str, int], key: Any, *, one_line: bool
) -> Iterator[bytes]:
    table, column, rowid = where
    with conn.blobopen(table, column, rowid, readonly=True) as blob:
        while piece := blob.read(READ_CHUNK):
            if one_line and (b"\n" in piece or b"\r" in piece):  # JSON Lines framing: never a second line
                raise _damaged(path, column, key)
            yield piece


def _damaged(path: Path, column: str, key: Any) -> StoreError:
    what = "not JSON text on one line" if column == "result" else "not text"
    return StoreError(
        f"results file {path}: the {column} of key {key!r} is not as memtui writes it ({what}); "
        "the file is damaged: rerun the job into a new --output"
    )


def _key_shown(path: Path, key: Any, key_type: Any, show: Callable[[str], Any]) -> Any:
    try:
        if key_type not in (b"text", "text"):
            raise ValueError(f"a key of type {key_type!r}")
        return show(key.decode())
    except (ValueError, RecursionError, AttributeError) as exc:  # UnicodeDecodeError, JSONDecodeError: ValueError
        shown = key[:80].decode("utf-8", "replace") if isinstance(key, bytes) else key
        raise StoreError(
            f"results file {path}: the key {shown!r} is not as memtui writes it ({type(exc).__name__}); "
            "the file is damaged: rerun the job into a new --output"
        ) from None


def read_results(path: str | os.PathLike[str], *, failures: bool = False) -> Iterator[dict[str, Any]]:
    """Each stored ``{"key", "result"}`` in input order (``failures``: each ``{"key", "error"}`` instead).

    Streams (one row at a time): a results file of any size reads in bounded memory. A damaged row is a
    StoreError naming the file and the row's key, never a traceback of the JSON parser."""
    column = "error" if failures else "result"
    for key, pieces in read_rows(path, failures=failures):
        value = b"".join(pieces)
        if failures:
            yield {"key": key, column: value.decode("utf-8", "replace")}
            continue
        try:
            parsed = json.loads(value)
        except (ValueError, RecursionError) as exc:
            raise StoreError(
                f"results file {path}: the result of key {key!r} cannot be read ({type(exc).__name__}: "
                f"{str(exc)[:200] or 'nested too deeply'}); the file is damaged: rerun the job into a new --output"
            ) from None
        yield {"key": key, column: parsed}
