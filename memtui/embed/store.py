"""The resumable embedding cache: one SQLite file in WAL mode, written by one run at a time.

Vectors are keyed by sha256(model_id, text), so identical texts are embedded
once and a cache can never mix two models' vectors. Everything a batch
produces is committed in one transaction: a kill loses at most that batch and
a rerun, skipping the domains recorded as done, duplicates nothing.

Its parts, one job each: ``cache_file`` (opening the file safely), ``schema`` (the tables and their
migrations), ``backend_tables`` (where each backend's rows live), ``summary`` (a domain's summary),
``cache_info`` (the read-only counts), ``sqlite_errors`` (what a failure means to the user).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from memtui.embed import cache_file, schema
from memtui.embed.backend_tables import TORCH_BACKEND, Tables, key_for
from memtui.embed.cache_info import cache_info
from memtui.embed.lock import CacheLock
from memtui.embed.sqlite_errors import FIX, is_full, reason, write_fix
from memtui.embed.summary import DomainSummary, summarize_domain, summarize_rows
from memtui.embed.vector_check import checksum, fault
from memtui.embed.wal_owner import STAMP_KEY
from memtui.errors import InputError, RuntimeFailure, StoreError
from memtui.records import Response
from memtui.safefs import disk_full

__all__ = ["TORCH_BACKEND", "CacheStore", "DomainSummary", "cache_info", "key_for", "summarize_domain", "to_blob"]

IN_CHUNK = 500  # well under every SQLite build's host-parameter limit
log = logging.getLogger("memtui")


def to_blob(vector: np.ndarray) -> bytes:
    """float32 little-endian bytes: portable, and loading them runs no code (unlike pickle)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def _chunks(items: Sequence[Any], size: int = IN_CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class _InfoAccessor:
    """Makes ``store.info()`` and ``CacheStore.info(path)`` the same read-only query."""

    def __get__(self, obj: CacheStore | None, owner: type) -> Callable[..., dict[str, Any]]:
        if obj is None:
            return cache_info
        return lambda: cache_info(obj.path)


class CacheStore:
    """Writer handle on a cache file; the connection is shared behind a lock."""

    info = _InfoAccessor()

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: Path,
        model_id: str,
        dim: int | None,
        lock: CacheLock | None = None,
        backend: str = TORCH_BACKEND,
    ) -> None:
        self._conn = conn
        self.backend = backend
        self._tables = Tables(backend)
        self._cache_lock = lock
        self._lock = threading.Lock()
        self.path = path
        self.model_id = model_id
        self.dim = dim

    # -- opening -----------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        model_id: str,
        dim: int | None = None,
        *,
        lock: CacheLock | None = None,
        backend: str = TORCH_BACKEND,
    ) -> CacheStore:
        """Open or create a cache for ``model_id`` and hold its lock (``lock`` if the caller took it already).

        On failure a new file leaves no trace and the lock is released.
        """
        path = Path(path)
        created: list[Path] = []
        try:
            cache_file.make_folders(path, created)
            if lock is None:
                lock = CacheLock.acquire(path)
            existed = cache_file.prepare(path, created)
            conn = cache_file.connect(path, existed)
            try:
                stored_dim = schema.init_or_check(conn, path, model_id, dim)
                schema.migrate(conn, path, backends=backend != TORCH_BACKEND)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()  # first: its file sits in a folder that may go next
            cache_file.remove_created(created)
            raise
        return cls(conn, path, model_id, stored_dim, lock, backend)

    # -- queries -----------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"reading cache {self.path} failed ({reason(exc)}); {FIX}") from None

    def missing(self, keys: Iterable[bytes]) -> set[bytes]:
        """Keys with no vector yet, or with one that fails its check (it is embedded again and replaced)."""
        wanted = list(dict.fromkeys(keys))
        found: set[bytes] = set()
        bad: list[str] = []
        for key, blob, crc in self._stored(wanted):
            why = fault(key, blob, crc, self.dim)
            if why is None:
                found.add(key)
            else:
                bad.append(why)
        if bad:
            log.warning(
                "cache %s: %d stored vector(s) damaged (e.g. one %s); embedding them again", self.path, len(bad), bad[0]
            )
        return set(wanted) - found

    def _stored(self, keys: Sequence[bytes]) -> Iterable[tuple[bytes, bytes, int | None]]:
        """(key, vector blob, checksum or None) of the keys that have a vector."""
        for chunk in _chunks(keys):
            marks = ",".join("?" * len(chunk))
            yield from self._query(
                "SELECT e.key, e.vector, s.crc FROM embeddings e LEFT JOIN vector_sums s ON s.key = e.key"
                f" WHERE e.key IN ({marks})",
                chunk,
            )

    def vectors_for(self, keys: Iterable[bytes]) -> dict[bytes, np.ndarray]:
        """Stored vectors (read-only float32 views) for the keys that have one."""
        out: dict[bytes, np.ndarray] = {}
        for key, blob, crc in self._stored(list(dict.fromkeys(keys))):
            why = fault(key, blob, crc, self.dim)
            if why is not None:
                raise StoreError(f"cache {self.path} has a damaged vector (it {why}); rerun to embed it again")
            vec = np.frombuffer(blob, dtype="<f4")
            if self.dim is not None and vec.size != self.dim:
                raise StoreError(f"cache {self.path} has a {vec.size}-dim vector where {self.dim} were expected; {FIX}")
            out[key] = vec
        return out

    def key(self, text: str) -> bytes:
        """This store's key for ``text``: its model and backend."""
        return key_for(self.model_id, text, self.backend)

    def done_domains(self) -> set[str]:
        """Domains finished by this store's backend (another backend's summaries do not count)."""
        where, params = self._tables.where()
        return {row[0] for row in self._query(f"SELECT domain FROM {self._tables.domains}{where}", params)}

    def fingerprints_for(self, domains: Iterable[str]) -> dict[str, bytes]:
        """The fingerprint each domain was summarised with by this store's backend (domains without one: absent)."""
        out: dict[str, bytes] = {}
        for chunk in _chunks(list(dict.fromkeys(domains))):
            where, params = self._tables.where(f"domain IN ({','.join('?' * len(chunk))})")
            rows = self._query(f"SELECT domain, fingerprint FROM {self._tables.domains}{where}", (*params, *chunk))
            out.update((domain, bytes(fp)) for domain, fp in rows if fp is not None)
        return out

    def forget_domain(self, domain: str) -> None:
        """Before a domain is (re)done: drop its summary and its response rows (this backend's), so what the
        cache says of it is rebuilt from what the input holds now. Its vectors stay (keyed by text)."""
        where, params = self._tables.where("domain = ?")

        def forget(conn: sqlite3.Connection) -> None:
            for table in (self._tables.domains, self._tables.responses):
                conn.execute(f"DELETE FROM {table}{where}", (*params, domain))

        self._write(forget)

    def _summarize_stored(self, conn: sqlite3.Connection, domain: str, fingerprint: bytes | None) -> DomainSummary:
        """A domain's summary from its rows in the cache (``summary.summarize_rows``: a few vectors at a time)."""
        where, params = self._tables.where("r.domain = ?", alias="r")
        order = self._tables.order("r.domain, r.prompt_type, r.model", alias="r")
        cursor = conn.execute(
            f"SELECT r.prompt_type, r.model, e.vector, r.id FROM {self._tables.responses} r LEFT JOIN embeddings e"
            f" ON e.key = r.key{where} ORDER BY {order}",
            (*params, domain),
        )
        return summarize_rows(cursor, domain, fingerprint)

    def summarize(self, domain: str, responses: Sequence[Response], fresh: Mapping[bytes, np.ndarray]) -> DomainSummary:
        """summarize_domain with vectors from ``fresh`` first, then from the cache."""
        keys = {r.id: self.key(r.text) for r in responses}
        known = self.vectors_for(k for k in set(keys.values()) if k not in fresh)

        def lookup(r: Response) -> np.ndarray:
            key = keys[r.id]
            if key in fresh:
                return fresh[key]
            if key not in known:
                raise StoreError(f"no vector for response {r.id} of domain {domain} (line {r.line}); rerun to embed it")
            return known[key]

        return summarize_domain(domain, responses, lookup)

    # -- writing -----------------------------------------------------------

    def commit_batch(
        self,
        vectors: Mapping[bytes, np.ndarray],
        responses: Sequence[Response] = (),
        completed_domains: Sequence[DomainSummary] = (),
        finish: Sequence[tuple[str, bytes | None]] = (),
    ) -> list[DomainSummary]:
        """Write a batch in ONE transaction: vectors, response rows, domain summaries.

        Vectors of a half-done domain may be committed without its summary;
        the domain is redone on resume, finding its vectors already cached.
        ``finish``: (domain, fingerprint) of domains whose last rows this batch brings; each is summarised
        from the cache's rows inside the same transaction (``_summarize_stored``). Returns those summaries.
        """
        rows = [(key, self._blob(vec)) for key, vec in vectors.items()]
        response_rows = [(r.id, r.domain, r.model, r.prompt_type, self.key(r.text)) for r in responses]
        domain_rows = [s.row() for s in completed_domains]
        made: list[DomainSummary] = []
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                if self.dim is not None:
                    conn.execute("UPDATE meta SET value = ? WHERE key = 'dim' AND value = ''", (str(self.dim),))
                # REPLACE: a damaged vector (embed.vector_check) is overwritten by its new one
                conn.executemany("INSERT OR REPLACE INTO embeddings(key, vector) VALUES (?, ?)", rows)
                conn.executemany(
                    "INSERT OR REPLACE INTO vector_sums(key, crc) VALUES (?, ?)", [(k, checksum(k, b)) for k, b in rows]
                )
                conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (STAMP_KEY, repr(time.time())))
                self._refuse_taken_ids(conn, responses)
                self._insert_responses(conn, response_rows)
                made = [self._summarize_stored(conn, domain, fp) for domain, fp in finish]
                domain_rows += [s.row() for s in made]
                tables = self._tables
                conn.executemany(
                    tables.insert(tables.domains, "domain, responses, counts, agreement, done_at, fingerprint"),
                    [tables.row(row) for row in domain_rows],
                )
                if not tables.torch:  # see memtui.embed.backend_tables
                    conn.executemany(
                        "INSERT OR IGNORE INTO backend_vectors(key, backend) VALUES (?, ?)",
                        [(key, self.backend) for key, _ in rows],
                    )
                conn.execute("COMMIT")
            except BaseException as exc:
                self._failed_write(conn, exc)
        return made

    def _insert_responses(self, conn: sqlite3.Connection, response_rows: list[tuple[Any, ...]]) -> None:
        """Response rows, keyed by id (the scan refuses an input that repeats one: memtui.jobs.ids)."""
        sql = self._tables.insert(self._tables.responses, "id, domain, model, prompt_type, key")
        conn.executemany(sql, [self._tables.row(row) for row in response_rows])

    def _refuse_taken_ids(self, conn: sqlite3.Connection, responses: Sequence[Response]) -> None:
        """An id the cache holds for another domain (another input sharing the cache) is never replaced:
        InputError (exit 2), the batch rolled back. A domain's own old rows were dropped when it began."""
        by_id = {r.id: r for r in responses}
        for chunk in _chunks(list(by_id)):
            where, params = self._tables.where(f"id IN ({','.join('?' * len(chunk))})")
            sql, args = f"SELECT id, domain FROM {self._tables.responses}{where}", (*params, *chunk)
            for rid, domain in conn.execute(sql, args):
                r = by_id[rid]
                if domain != r.domain:
                    raise InputError(
                        f"line {r.line}: id {rid!r} (domain {r.domain!r}) is already in cache {self.path} for domain "
                        f"{domain!r}, from another input; give responses ids unique across the inputs that share "
                        "a cache, or pass --cache NEW_PATH"
                    )

    def _write(self, work: Callable[[sqlite3.Connection], None]) -> None:
        """``work`` in one write transaction, failures as commit_batch's."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                work(conn)
                conn.execute("COMMIT")
            except BaseException as exc:
                self._failed_write(conn, exc)

    def _failed_write(self, conn: sqlite3.Connection, exc: BaseException) -> None:
        """Roll back and raise what a write failure means to the user (a full disk, a runtime failure)."""
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error) and is_full(self.path, exc):
            raise disk_full(self.path, "writing the cache") from None
        if isinstance(exc, sqlite3.Error):  # an I/O error: a runtime failure, not bad input
            raise RuntimeFailure(f"writing cache {self.path} failed ({reason(exc)}); {write_fix(exc)}") from None
        raise exc

    def _blob(self, vector: np.ndarray) -> bytes:
        vec = np.asarray(vector)
        if vec.ndim != 1:
            raise StoreError(f"cannot store a vector of shape {vec.shape} in {self.path}; expected a 1-d vector")
        if self.dim is None:
            self.dim = int(vec.size)
        elif vec.size != self.dim:
            raise StoreError(
                f"cannot store a {vec.size}-dim vector in {self.path}, which holds {self.dim}-dim vectors; "
                "use --cache OTHER"
            )
        return to_blob(vec)

    # -- lifecycle ---------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()
            if self._cache_lock is not None:
                self._cache_lock.release()
                self._cache_lock = None

    def __enter__(self) -> CacheStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
