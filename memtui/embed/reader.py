"""The cache, read-only: its vectors handed over in bounded chunks (``memtui.open_cache``).

A run may be writing the cache meanwhile: the reader opens it through SQLite's
read-only URI (``mode=ro``), which reads a WAL-mode database while its writer
commits and never writes a page. Each query runs in one read transaction
(``snapshot``), so a count and the rows it counted agree. The file is checked
as the store checks an existing cache before SQLite may touch it: not a link,
a regular file of the user memtui runs as, a SQLite header, and the same for
its ``-wal`` and ``-shm`` companions. Nothing here holds more than one chunk of
rows (``CHUNK_ROWS``) or one bounded matrix (``MATRIX_MAX_ROWS``) at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from memtui.embed.backend_tables import TORCH_BACKEND
from memtui.embed.companions import SHM, WAL, companion
from memtui.embed.schema import check_header, open_read_only
from memtui.embed.sqlite_errors import reason
from memtui.errors import RuntimeFailure, StoreError
from memtui.safefs import check_private, lstat_or_none, owner_name

#: Rows fetched per query step: 1024 x 384 float32 is 1.5 MiB of vectors.
CHUNK_ROWS = 1024
#: The most rows ``CacheReader.vectors`` builds into one matrix (96 MiB at 384 dims); more: stream ``batches``.
MATRIX_MAX_ROWS = 65536
_COMPANIONS = (WAL, SHM)  # what a reader may find beside a cache (memtui.embed.companions)


@dataclass(frozen=True)
class CacheRow:
    """One response and its vector. ``key`` is the vector's cache key (sha256 of model, backend, text)."""

    id: str
    domain: str
    model: str
    prompt_type: str
    key: bytes
    backend: str
    vector: np.ndarray  # float32, read-only

    @property
    def key_hex(self) -> str:
        return self.key.hex()


@dataclass(frozen=True)
class RowBatch:
    """Up to ``CHUNK_ROWS`` rows: their fields, and their vectors as one read-only float32 matrix."""

    ids: list[str]
    domains: list[str]
    models: list[str]
    prompt_types: list[str]
    keys: list[bytes]
    backend: str
    blob: bytes  # the matrix's bytes: float32 little-endian, row after row, exactly as the cache holds them
    dim: int

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def matrix(self) -> np.ndarray:
        return np.frombuffer(self.blob, dtype="<f4").reshape(len(self.ids), self.dim)

    def rows(self) -> Iterator[CacheRow]:
        matrix = self.matrix
        for i in range(len(self.ids)):
            yield CacheRow(
                self.ids[i],
                self.domains[i],
                self.models[i],
                self.prompt_types[i],
                self.keys[i],
                self.backend,
                matrix[i],
            )


def check_cache_file(path: Path) -> os.stat_result:
    """The store's rule for an existing cache, for a reader: no link, a regular file of ours, SQLite inside.

    Its ``-wal`` and ``-shm`` companions, where they exist, must be regular files of ours too (SQLite
    opens them by name). StoreError (exit 2) in one line otherwise.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise StoreError(f"no cache at {path}; run memtui run --mode cache first or pass --cache PATH") from None
    except OSError as exc:
        raise StoreError(f"cannot look at cache {path} ({exc.strerror or exc}); pass --cache PATH") from None
    me = owner_name(os.geteuid())
    fix = f"memtui reads only caches of {me}, never through a link: pass the real path, or copy it and pass the copy"
    check_private(path, st, "cache", sole_name=False, error=StoreError, fix=fix)
    for suffix in _COMPANIONS:
        side = companion(path, suffix)
        if (side_st := lstat_or_none(side)) is not None:
            check_private(side, side_st, "cache companion", sole_name=False, error=StoreError, fix=fix)
    check_header(path)
    return st


def open_cache(path: str | os.PathLike[str]) -> CacheReader:
    """Open a memtui cache read-only (safe while a run writes it); use it as a context manager."""
    path = Path(path)
    seen = check_cache_file(path)
    conn, meta, tables = open_read_only(path, seen)
    dim = int(meta["dim"]) if meta.get("dim") else None
    return CacheReader(conn, path, meta.get("model_id", ""), dim, has_backends="backend_responses" in tables)


class CacheReader:
    """Read-only rows and vectors of one cache; every result streamed or bounded."""

    def __init__(
        self, conn: sqlite3.Connection, path: Path, model_id: str, dim: int | None, *, has_backends: bool
    ) -> None:
        self._conn = conn
        self._depth = 0
        self._has_backends = has_backends
        self.path = path
        self.model_id = model_id
        self.dim = dim

    # -- what is there ----------------------------------------------------------

    def backends(self) -> dict[str, int]:
        """Rows (responses with a vector) per backend, torch first."""
        with self.snapshot():
            counts = {TORCH_BACKEND: self._count_one(TORCH_BACKEND, None)}
            if self._has_backends:
                for (backend,) in self._query("SELECT DISTINCT backend FROM backend_responses ORDER BY backend"):
                    counts[backend] = self._count_one(backend, None)
        return {b: n for b, n in counts.items() if n or b != TORCH_BACKEND or len(counts) == 1}

    def __len__(self) -> int:
        return sum(self.backends().values())

    def count(self, backend: str | None = None, domains: Sequence[str] | None = None) -> int:
        """Rows of a selection (``backend`` None: all; ``domains`` None: all)."""
        with self.snapshot():
            return sum(self._count_one(b, domains) for b in self._selected(backend))

    def domains(self, backend: str | None = None) -> set[str]:
        """Every domain with at least one row (a set: the caller asked for it; bounded by the cache)."""
        out: set[str] = set()
        with self.snapshot():
            for b in self._selected(backend):
                table, where, params = self._source(b, None)
                out.update(row[0] for row in self._query(f"SELECT DISTINCT r.domain FROM {table} r {where}", params))
        return out

    def has_domain(self, domain: str, backend: str | None = None) -> bool:
        with self.snapshot():
            return any(self._count_one(b, [domain], limit=1) for b in self._selected(backend))

    def resolve_backend(self, name: str) -> str:
        """A backend as the cache names it: exact, or by its base name (``onnx-int8`` for ``onnx-int8/r3/avx2``)."""
        present = list(self.backends())
        if name in present:
            return name
        matches = [b for b in present if b.split("/")[0] == name]
        if len(matches) == 1:
            return matches[0]
        listed = ", ".join(present) or "none"
        if matches:
            raise StoreError(f"--backend {name} matches {', '.join(matches)} in cache {self.path}; pass one of them")
        raise StoreError(f"cache {self.path} holds no {name} vectors (it has: {listed}); pass --backend one of them")

    # -- rows ------------------------------------------------------------------

    def batches(
        self, backend: str | None = None, domains: Sequence[str] | None = None, size: int = CHUNK_ROWS
    ) -> Generator[RowBatch, None, None]:
        """The selection in batches of at most ``size`` rows, backend by backend, each ordered by id."""
        with self.snapshot():
            for b in self._selected(backend):
                table, where, params = self._source(b, domains)
                cursor = self._conn.execute(
                    f"SELECT r.id, r.domain, r.model, r.prompt_type, r.key, e.vector FROM {table} r "
                    f"JOIN embeddings e ON e.key = r.key {where} ORDER BY r.id",
                    params,
                )
                try:
                    while True:
                        try:
                            chunk = cursor.fetchmany(size)
                        except sqlite3.DatabaseError as exc:
                            raise self._read_error(exc) from None
                        if not chunk:
                            break
                        yield self._batch(b, chunk)
                finally:
                    with contextlib.suppress(sqlite3.Error):  # a generator dropped after close() ends here
                        cursor.close()

    def __iter__(self) -> Iterator[CacheRow]:
        for batch in self.batches():
            yield from batch.rows()

    def rows(self, backend: str | None = None, domains: Sequence[str] | None = None) -> Iterator[CacheRow]:
        for batch in self.batches(backend, domains):
            yield from batch.rows()

    def vectors(
        self, domain: str | Sequence[str] | None = None, backend: str | None = None, *, max_rows: int = MATRIX_MAX_ROWS
    ) -> np.ndarray:
        """The selection's vectors as one float32 matrix (rows in ``batches`` order).

        A selection above ``max_rows`` is refused, saying so: narrow it, raise ``max_rows``, or stream ``batches``.
        """
        domains = [domain] if isinstance(domain, str) else domain
        with self.snapshot():
            n = self.count(backend, domains)
            if n > max_rows:
                size = n * (self.dim or 0) * 4 / 2**20
                raise StoreError(
                    f"the selection holds {n} vectors ({size:.1f} MiB), more than vectors() builds at once "
                    f"(max_rows={max_rows}); pass domain= or backend=, raise max_rows, or stream batches()"
                )
            out = np.empty((n, self.dim or 0), dtype=np.float32)
            at = 0
            for batch in self.batches(backend, domains):
                if out.shape[1] != batch.dim:
                    out = np.empty((n, batch.dim), dtype=np.float32)
                out[at : at + len(batch)] = batch.matrix
                at += len(batch)
        out.flags.writeable = False
        return out

    def vector(self, key: bytes) -> tuple[np.ndarray, str] | None:
        """The vector stored under ``key`` and its backend, or None."""
        with self.snapshot():
            found = self._query("SELECT vector FROM embeddings WHERE key = ?", (key,))
            if not found:
                return None
            backend = TORCH_BACKEND
            if self._has_backends:
                listed = self._query("SELECT backend FROM backend_vectors WHERE key = ?", (key,))
                backend = listed[0][0] if listed else TORCH_BACKEND
        blob = found[0][0]
        self._check_blob(blob, key)
        return np.frombuffer(blob, dtype="<f4"), backend

    # -- the read transaction --------------------------------------------------

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """One read transaction: everything read inside sees the same committed state (a run may go on)."""
        if self._depth == 0:
            self._exec("BEGIN")
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("COMMIT")

    # -- internals --------------------------------------------------------------

    def _selected(self, backend: str | None) -> list[str]:
        if backend is not None:
            return [self.resolve_backend(backend)]
        return self._backend_names()

    def _backend_names(self) -> list[str]:
        """Backends with responses, torch first (indexes only: no count)."""
        names = [TORCH_BACKEND] if self._query("SELECT 1 FROM responses LIMIT 1") else []
        if self._has_backends:
            names += [row[0] for row in self._query("SELECT DISTINCT backend FROM backend_responses ORDER BY backend")]
        return names or [TORCH_BACKEND]

    def _source(self, backend: str, domains: Sequence[str] | None) -> tuple[str, str, list[Any]]:
        conditions: list[str] = []
        params: list[Any] = []
        if backend == TORCH_BACKEND:
            table = "responses"
        else:
            table = "backend_responses"
            conditions.append("r.backend = ?")
            params.append(backend)
        if domains is not None:
            conditions.append("r.domain IN (SELECT value FROM json_each(?))")
            params.append(_json_list(domains))
        where = ("WHERE " + " AND ".join(conditions)) if conditions else ""
        return table, where, params

    def _count_one(self, backend: str, domains: Sequence[str] | None, limit: int | None = None) -> int:
        if backend != TORCH_BACKEND and not self._has_backends:
            return 0
        table, where, params = self._source(backend, domains)
        inner = f"SELECT 1 FROM {table} r JOIN embeddings e ON e.key = r.key {where}"
        if limit is not None:
            inner += f" LIMIT {int(limit)}"
        return int(self._query(f"SELECT count(*) FROM ({inner})", params)[0][0])

    def _batch(self, backend: str, chunk: list[tuple[Any, ...]]) -> RowBatch:
        ids, domains, models, prompts, keys, blobs = (list(column) for column in zip(*chunk))
        dim = self.dim
        for key, blob in zip(keys, blobs):
            self._check_blob(blob, key)
            dim = dim or len(blob) // 4
        return RowBatch(ids, domains, models, prompts, keys, backend, b"".join(blobs), dim or 0)

    def _check_blob(self, blob: Any, key: bytes) -> None:
        if not isinstance(blob, bytes) or len(blob) % 4 or (self.dim is not None and len(blob) != 4 * self.dim):
            size = len(blob) if isinstance(blob, bytes) else type(blob).__name__
            raise RuntimeFailure(
                f"cache {self.path} has a damaged vector (key {bytes(key).hex()[:16]}..., {size} bytes where "
                f"{4 * (self.dim or 0)} were expected); rerun memtui run on it to embed it again"
            )

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.DatabaseError as exc:
            raise self._read_error(exc) from None

    def _exec(self, sql: str) -> None:
        try:
            self._conn.execute(sql)
        except sqlite3.DatabaseError as exc:
            raise self._read_error(exc) from None

    def _read_error(self, exc: sqlite3.Error) -> RuntimeFailure:
        return RuntimeFailure(f"reading cache {self.path} failed ({reason(exc)}); rerun, or check the disk")

    # -- lifecycle --------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CacheReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _json_list(items: Sequence[str]) -> str:
    return json.dumps(list(items))
