"""``memtui cache info``: a cache's counts and identity, read-only (never creates or changes the file)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from memtui.embed.backend_tables import backend_counts
from memtui.embed.companions import wal_path
from memtui.embed.schema import check_header, open_read_only
from memtui.embed.sqlite_errors import FIX, reason
from memtui.errors import StoreError


def cache_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts and identity of a cache, read-only: never creates or changes the file."""
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise StoreError(f"{path} is not a file; pass --cache with a cache file")
        raise StoreError(f"no cache at {path}; run memtui run --mode cache first")
    check_header(path)
    conn, meta, _tables = open_read_only(path)
    try:
        vectors, responses, domains = (
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("embeddings", "responses", "domains")
        )
        backends = backend_counts(conn, vectors, domains)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cache {path} is corrupt or unreadable ({reason(exc)}); {FIX}") from None
    finally:
        conn.close()
    wal = wal_path(path)
    size = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return {
        "path": str(path),
        "model_id": meta.get("model_id"),
        "dim": int(meta["dim"]) if meta.get("dim") else None,
        "schema_version": int(meta["schema_version"]),
        "created_at": float(meta["created_at"]),
        "vectors": vectors,
        "responses": responses,
        "domains_done": domains,
        "backends": backends,
        "size_bytes": size,
    }
