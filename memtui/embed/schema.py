"""The cache's schema: what a new cache is made of, how an existing one is recognised, how it is brought up
to date.

A migration only adds (a table, a column, an index), each idempotent and in one transaction, so every
older cache stays valid and an older memtui still reads it: ``SCHEMA_VERSION`` has never had to change.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

from memtui.embed.backend_tables import BACKEND_SCHEMA
from memtui.embed.sqlite_errors import FIX, is_full, reason
from memtui.embed.vector_check import SUM_TABLE
from memtui.errors import MemtuiError, StoreError
from memtui.safefs import disk_full

SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE embeddings (key BLOB PRIMARY KEY, vector BLOB NOT NULL);
CREATE TABLE responses (id TEXT PRIMARY KEY, domain TEXT NOT NULL, model TEXT NOT NULL,
                        prompt_type TEXT NOT NULL, key BLOB NOT NULL);
CREATE INDEX responses_domain ON responses(domain);
CREATE TABLE domains (domain TEXT PRIMARY KEY, responses INTEGER NOT NULL, counts TEXT NOT NULL,
                      agreement REAL, done_at REAL NOT NULL);
"""
_TABLES = {"meta", "embeddings", "responses", "domains"}


def statements(script: str) -> list[str]:
    return [s for s in script.split(";") if s.strip()]


def tables(conn: sqlite3.Connection) -> set[str]:
    return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def check_header(path: Path) -> None:
    """Reject non-SQLite files before sqlite3 gets a chance to misread them."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except PermissionError:
        raise StoreError(
            f"cannot read cache {path}: permission denied; chmod u+rw it or pass --cache NEW_PATH"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot read cache {path}: {exc.strerror or exc}; {FIX}") from None
    if head and head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not a memtui cache (file is not a database); {FIX}")


def read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str] | None:
    """The meta table as a dict; None for an empty database; StoreError for a foreign one."""
    objects = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    if not objects:
        return None
    found = {name for kind, name in objects if kind == "table"}
    if "meta" not in found:
        kinds: dict[str, list[str]] = {}
        for kind, name in sorted(objects):
            kinds.setdefault(kind, []).append(name)
        listed = "; ".join(f"{kind}s: {', '.join(names[:5])}" for kind, names in kinds.items())
        raise StoreError(f"{path} is a SQLite database but not a memtui cache ({listed}); {FIX}")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    version = int(meta.get("schema_version", "0")) if str(meta.get("schema_version", "0")).isdigit() else 0
    if version != SCHEMA_VERSION or not found >= _TABLES:
        raise StoreError(
            f"cache {path} has schema version {version}, this memtui reads version {SCHEMA_VERSION}; {FIX}"
        )
    return meta


def open_read_only(
    path: Path, seen: os.stat_result | None = None
) -> tuple[sqlite3.Connection, dict[str, str], set[str]]:
    """A read-only connection to a memtui cache (SQLite's ``mode=ro``: it never writes a page, and reads while
    a writer commits), its meta and its tables; StoreError in one line for what is not a cache, or (``seen``:
    the file as checked before) for a file replaced meanwhile. The caller closes the connection."""
    uri = f"file:{quote(str(path.absolute()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open cache {path} read-only ({reason(exc)}); check its permissions") from None
    try:
        meta = read_meta(conn, path)
        if meta is None:
            raise StoreError(f"{path} is an empty SQLite file, not a memtui cache; {FIX}")
        now = os.lstat(path) if seen is not None else None
        if seen is not None and now is not None and (now.st_dev, now.st_ino) != (seen.st_dev, seen.st_ino):
            raise StoreError(f"cache {path} was replaced while memtui opened it; rerun")
        found = tables(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"cache {path} is corrupt or unreadable ({reason(exc)}); {FIX}") from None
    except BaseException:
        conn.close()
        raise
    return conn, meta, found


def _run(
    conn: sqlite3.Connection,
    path: Path,
    work: Callable[[sqlite3.Connection], object],
    failed: str,
    doing: str = "opening the cache",
) -> None:
    """``work`` in one write transaction; a failure rolled back and worded: a full disk while ``doing``,
    or ``failed`` (with ``{path}`` in it) and SQLite's reason."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        work(conn)
        conn.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise _failure(path, exc, failed, doing) from None


def _failure(path: Path, exc: sqlite3.DatabaseError, failed: str, doing: str) -> MemtuiError:
    if is_full(path, exc):
        return disk_full(path, doing)
    return StoreError(f"{failed.format(path=path)} ({reason(exc)}); {FIX}")


def _each(sql: Sequence[str]) -> Callable[[sqlite3.Connection], None]:
    def run(conn: sqlite3.Connection) -> None:
        for statement in sql:
            conn.execute(statement)

    return run


def init_or_check(conn: sqlite3.Connection, path: Path, model_id: str, dim: int | None) -> int | None:
    """Write the schema into a new file, or check an existing cache holds ``model_id``'s vectors; the dim."""
    try:
        meta = read_meta(conn, path)
    except sqlite3.DatabaseError as exc:  # a full disk too: the first read makes the -wal and -shm
        raise _failure(path, exc, "cannot initialise cache {path}", "creating the cache") from None
    if meta is None:
        rows = [
            ("schema_version", str(SCHEMA_VERSION)),
            ("model_id", model_id),
            ("dim", "" if dim is None else str(dim)),
            ("created_at", repr(time.time())),
        ]

        def create(conn: sqlite3.Connection) -> None:
            _each(statements(_SCHEMA))(conn)
            conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?)", rows)

        _run(conn, path, create, "cannot initialise cache {path}", "creating the cache")
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file itself holds meta: wal_owner's proof
        except sqlite3.DatabaseError as exc:  # a full disk can stop it too
            raise _failure(path, exc, "cannot initialise cache {path}", "creating the cache") from None
        return dim
    stored_model = meta.get("model_id", "")
    if stored_model != model_id:
        raise StoreError(
            f"cache {path} holds vectors of model {stored_model}, not {model_id}; "
            f"use --cache OTHER or --model {stored_model}"
        )
    stored_dim = int(meta["dim"]) if meta.get("dim") else None
    if dim is not None and stored_dim is not None and dim != stored_dim:
        raise StoreError(f"cache {path} holds {stored_dim}-dim vectors, the model makes {dim}; use --cache OTHER")
    return stored_dim if stored_dim is not None else dim


def migrate(conn: sqlite3.Connection, path: Path, *, backends: bool) -> None:
    """Bring an opened cache up to date (idempotent; an older memtui ignores every addition).

    * ``vector_sums``: each vector's checksum (``embed.vector_check``); an older cache gets it empty.
    * the ``backend_*`` tables (``embed.backend_tables``), only once a non-torch backend writes (``backends``).
    * "done means done": a fingerprint column on the summaries and the indexes a domain is forgotten and
      summarised by. An older summary has no fingerprint: its domain is checked again (its vectors are kept).
    """
    _run(conn, path, _each([SUM_TABLE]), "cannot prepare cache {path} for vector checksums")
    if backends:
        _run(conn, path, _each(statements(BACKEND_SCHEMA)), "cannot prepare cache {path} for other backends")
    found = tables(conn)
    sql = [
        f"ALTER TABLE {table} ADD COLUMN fingerprint BLOB"
        for table in ("domains", "backend_domains")
        if table in found and "fingerprint" not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    ]
    sql.append("CREATE INDEX IF NOT EXISTS responses_group ON responses(domain, prompt_type, model)")
    if "backend_responses" in found:
        sql.append(
            "CREATE INDEX IF NOT EXISTS backend_responses_group"
            " ON backend_responses(backend, domain, prompt_type, model)"
        )
    _run(conn, path, _each(sql), "cannot add domain fingerprints to cache {path}")
