"""A ``-wal`` beside the cache must be this cache's own before SQLite may apply it.

SQLite applies whatever ``<cache>-wal`` it finds: a WAL left beside a cache
by another memtui cache (a copied or renamed file) silently replaced the
cache's content; one of another database made a good cache read as "not a
memtui cache". The WAL header names no database, so ownership is proven by
content: every commit rewrites the cache's meta page (``last_commit``), so a
WAL with any commit in it carries its cache's ``created_at``, which must be
the one the database file itself holds. The check reads only: the file
without its WAL (``immutable``), then with it (``mode=ro``, which never
checkpoints); nothing is written to the cache or its WAL.

A ``-shm`` is only SQLite's index of the WAL: the first connection rebuilds
it from the WAL (SQLite's dead-man switch), so a foreign one is never applied.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from memtui.errors import StoreError

#: The meta row every commit rewrites, so the meta page (and ``created_at``) is in every WAL.
STAMP_KEY = "last_commit"


def _meta(path: Path, query: str) -> dict[str, str] | None:
    """The meta table read through ``query``; None when the file has none."""
    conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?{query}", uri=True, timeout=10)
    try:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" not in tables:
            return None
        return {str(k): str(v) for k, v in conn.execute("SELECT key, value FROM meta")}
    finally:
        conn.close()


def check_wal_owner(path: Path, wal: Path, *, noun: str = "cache") -> None:
    """Refuse (StoreError, exit 2) a non-empty ``wal`` that is not ``path``'s own; never applies it. Any file
    whose every commit rewrites its meta's STAMP_KEY row can be checked (``noun``: the cache, a results file)."""
    try:
        alone = _meta(path, "mode=ro&immutable=1")
    except sqlite3.DatabaseError:
        return  # the file itself is unreadable: the caller words that
    if alone is None or "created_at" not in alone:
        return  # a cache never checkpointed (older memtui): nothing in the file to prove it by
    try:
        joined = _meta(path, "mode=ro")
    except sqlite3.DatabaseError as exc:
        whose = f"another database (with it the {noun} reads as: {str(exc).splitlines()[0] if str(exc) else exc})"
    else:
        if joined is not None and joined.get("created_at") == alone["created_at"]:
            return
        whose = (
            f"another memtui {noun}'s changes (created_at {joined['created_at']})"
            if joined is not None and "created_at" in joined
            else "another database's changes"
        )
    raise StoreError(
        f"{wal} beside {noun} {path} is not this {noun}'s: it holds {whose}; memtui never applies it: "
        f"move {wal} away (the {noun} itself is intact) and rerun"
    )
