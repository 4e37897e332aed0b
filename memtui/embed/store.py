"""The resumable embedding cache: one SQLite file in WAL mode.

Vectors are keyed by sha256(model_id, text), so identical texts are embedded
once and a cache can never mix two models' vectors. Everything a batch
produces is committed in one transaction: a kill loses at most that batch and
a rerun, skipping the domains recorded as done, duplicates nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

import numpy as np

from memtui.embed.lock import CacheLock
from memtui.embed.vector_check import SUM_TABLE, checksum, fault
from memtui.embed.wal_owner import STAMP_KEY, check_wal_owner
from memtui.errors import MemtuiError, RuntimeFailure, StoreError
from memtui.records import Response
from memtui.safefs import check_existing, create_exclusive, disk_full, is_disk_full, tighten

SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
IN_CHUNK = 500  # well under every SQLite build's host-parameter limit
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

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
_FIX = "move it away or pass --cache NEW_PATH"
log = logging.getLogger("memtui")


TORCH_BACKEND = "torch"

# Backends (memtui.embed.backends) share one cache without a migration: the key
# of a torch fp32 vector is what it always was, so every older cache stays valid
# as it is; another backend's vectors get keys of their own (its name is hashed
# in) and are listed in backend_vectors, their domains and responses in
# backend_domains and backend_responses. Whatever those tables do not list is
# torch fp32, the only backend before them. An older memtui ignores the extra
# tables and still reads the torch vectors.
_BACKEND_SCHEMA = """
CREATE TABLE IF NOT EXISTS backend_vectors (key BLOB PRIMARY KEY, backend TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS backend_domains (backend TEXT NOT NULL, domain TEXT NOT NULL, responses INTEGER NOT NULL,
                                            counts TEXT NOT NULL, agreement REAL, done_at REAL NOT NULL,
                                            PRIMARY KEY (backend, domain));
CREATE TABLE IF NOT EXISTS backend_responses (backend TEXT NOT NULL, id TEXT NOT NULL, domain TEXT NOT NULL,
                                              model TEXT NOT NULL, prompt_type TEXT NOT NULL, key BLOB NOT NULL,
                                              PRIMARY KEY (backend, id));
"""


def key_for(model_id: str, text: str, backend: str = TORCH_BACKEND) -> bytes:
    """Cache key: the model and the backend are part of it, so vectors of two models or backends never collide.

    A torch fp32 vector's key leaves the backend out (it is the key every cache had before backends).
    """
    if backend == TORCH_BACKEND:
        return hashlib.sha256(model_id.encode("utf-8") + b"\0" + text.encode("utf-8")).digest()
    return hashlib.sha256(
        model_id.encode("utf-8") + b"\1" + backend.encode("utf-8") + b"\0" + text.encode("utf-8")
    ).digest()


def to_blob(vector: np.ndarray) -> bytes:
    """float32 little-endian bytes: portable, and loading them runs no code (unlike pickle)."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


@dataclass(frozen=True)
class DomainSummary:
    domain: str
    responses: int
    counts: dict[str, int]
    agreement: float | None
    done_at: float


def summarize_domain(
    domain: str,
    responses: Sequence[Response],
    vector_lookup: Callable[[Response], np.ndarray],
) -> DomainSummary:
    """Counts per model/prompt type and the cross-model agreement score.

    Agreement is the mean cosine similarity over every pair of responses to
    the same prompt type from different models, pooled across prompt types;
    None when no prompt type was answered by two models.
    """
    counts: dict[str, int] = {}
    by_prompt: dict[str, list[Response]] = {}
    for r in responses:
        label = f"{r.model}/{r.prompt_type}"
        counts[label] = counts.get(label, 0) + 1
        by_prompt.setdefault(r.prompt_type, []).append(r)
    total, pairs = 0.0, 0
    for group in by_prompt.values():
        models = np.array([r.model for r in group])
        cross = models[:, None] != models[None, :]
        n_cross = int(cross.sum())
        if n_cross == 0:
            continue
        vecs = np.stack([np.asarray(vector_lookup(r), dtype=np.float64) for r in group])
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = vecs / np.where(norms == 0.0, 1.0, norms)
        sims = vecs @ vecs.T
        total += float(sims[cross].sum()) / 2.0  # the mask counts each pair twice
        pairs += n_cross // 2
    agreement = total / pairs if pairs else None
    return DomainSummary(domain, len(responses), dict(sorted(counts.items())), agreement, time.time())


def _chunks(items: Sequence[bytes], size: int = IN_CHUNK) -> Iterable[Sequence[bytes]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


#: Free space below which an SQLite I/O error is taken for a full disk.
FULL_BELOW = 1 << 20
#: SQLite's primary result code for I/O errors (extended codes keep it in their low byte).
SQLITE_IOERR = 10


def _is_full(path: Path, exc: sqlite3.Error) -> bool:
    """SQLITE_FULL, or an I/O error on a disk with no room left: SQLite reports a -wal or -shm it cannot
    grow (ENOSPC) as a plain "disk I/O error"."""
    if "full" in _reason(exc):
        return True
    code = getattr(exc, "sqlite_errorcode", None)
    io_error = (code & 0xFF) == SQLITE_IOERR if code is not None else "I/O error" in _reason(exc)
    if not io_error:
        return False
    try:
        fs = os.statvfs(path.absolute().parent)
    except OSError:
        return False
    return fs.f_bavail * fs.f_frsize < FULL_BELOW


def _check_header(path: Path) -> None:
    """Reject non-SQLite files before sqlite3 gets a chance to misread them."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(SQLITE_MAGIC))
    except PermissionError:
        raise StoreError(
            f"cannot read cache {path}: permission denied; chmod u+rw it or pass --cache NEW_PATH"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot read cache {path}: {exc.strerror or exc}; {_FIX}") from None
    if head and head != SQLITE_MAGIC:
        raise StoreError(f"{path} is not a memtui cache (file is not a database); {_FIX}")


def _read_meta(conn: sqlite3.Connection, path: Path) -> dict[str, str] | None:
    """The meta table as a dict; None for an empty database; StoreError for a foreign one."""
    objects = conn.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchall()
    if not objects:
        return None
    tables = {name for kind, name in objects if kind == "table"}
    if "meta" not in tables:
        kinds: dict[str, list[str]] = {}
        for kind, name in sorted(objects):
            kinds.setdefault(kind, []).append(name)
        listed = "; ".join(f"{kind}s: {', '.join(names[:5])}" for kind, names in kinds.items())
        raise StoreError(f"{path} is a SQLite database but not a memtui cache ({listed}); {_FIX}")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    version = int(meta.get("schema_version", "0")) if str(meta.get("schema_version", "0")).isdigit() else 0
    if version != SCHEMA_VERSION or not tables >= _TABLES:
        raise StoreError(
            f"cache {path} has schema version {version}, this memtui reads version {SCHEMA_VERSION}; {_FIX}"
        )
    return meta


def _classify(path: Path, st: os.stat_result) -> None:
    """Refuse, without writing a byte, an existing file that is not a memtui cache.

    Read through a read-only connection (immutable when there is no WAL to
    replay, so not even a -shm file is made). An empty file, or an empty WAL
    database (a cache whose creation was cut short), is ours to initialise.
    """
    if st.st_size == 0:
        return
    _check_header(path)
    wal = path.with_name(path.name + "-wal")
    replay = wal.exists() and wal.stat().st_size > 0
    if replay:
        check_wal_owner(path, wal)  # before any connection could apply another database's WAL
    uri = f"file:{quote(str(path.absolute()))}?mode=ro" + ("" if replay else "&immutable=1")
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise _open_error(path, exc) from None
    try:
        if _read_meta(conn, path) is None and _journal_version(path) != 2 and not replay:
            raise StoreError(f"{path} is an empty SQLite database that memtui did not create; {_FIX}")
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc) from None
    finally:
        conn.close()


def _journal_version(path: Path) -> int:
    """Byte 18 of the SQLite header: 1 rollback journal, 2 WAL (every memtui cache)."""
    with open(path, "rb") as fh:
        head = fh.read(19)
    return head[18] if len(head) > 18 else 0


def _open_error(path: Path, exc: sqlite3.Error) -> MemtuiError:
    text = _reason(exc)
    if _is_full(path, exc):
        return disk_full(path, "opening the cache")
    if "not a database" in text:
        return StoreError(f"{path} is not a memtui cache (file is not a database); {_FIX}")
    if "readonly" in text or "read-only" in text:
        return StoreError(f"cache {path} is read-only ({text}); make it and its folder writable")
    if "locked" in text:
        return StoreError(f"cache {path} is locked by another process; wait for it or pass --cache NEW_PATH")
    return StoreError(f"cache {path} is corrupt or unreadable ({text}); {_FIX}")


def cache_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Counts and identity of a cache, read-only: never creates or changes the file."""
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise StoreError(f"{path} is not a file; pass --cache with a cache file")
        raise StoreError(f"no cache at {path}; run memtui run --mode cache first")
    _check_header(path)
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open cache {path} read-only ({_reason(exc)}); check its permissions") from None
    try:
        meta = _read_meta(conn, path)
        if meta is None:
            raise StoreError(f"{path} is an empty SQLite file, not a memtui cache; {_FIX}")
        vectors, responses, domains = (
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("embeddings", "responses", "domains")
        )
        backends = _backend_counts(conn, vectors, domains)
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cache {path} is corrupt or unreadable ({_reason(exc)}); {_FIX}") from None
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
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


def _backend_counts(conn: sqlite3.Connection, vectors: int, domains: int) -> dict[str, dict[str, int]]:
    """Vectors and finished domains per backend; what backend_vectors does not list is torch fp32."""
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    out: dict[str, dict[str, int]] = {}
    if "backend_vectors" in tables:
        for backend, count in conn.execute("SELECT backend, count(*) FROM backend_vectors GROUP BY backend"):
            out.setdefault(backend, {"vectors": 0, "domains_done": 0})["vectors"] = count
    if "backend_domains" in tables:
        for backend, count in conn.execute("SELECT backend, count(*) FROM backend_domains GROUP BY backend"):
            out.setdefault(backend, {"vectors": 0, "domains_done": 0})["domains_done"] = count
    torch = {"vectors": vectors - sum(v["vectors"] for v in out.values()), "domains_done": domains}
    return (
        {TORCH_BACKEND: torch, **dict(sorted(out.items()))}
        if torch["vectors"] or domains or not out
        else dict(sorted(out.items()))
    )


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
            cls._make_folders(path, created)
            if lock is None:
                lock = CacheLock.acquire(path)
            existed = cls._prepare(path, created)
            conn = cls._connect(path, existed)
            try:
                stored_dim = cls._init_or_check(conn, path, model_id, dim)
                cls._add_sum_table(conn, path)
                if backend != TORCH_BACKEND:
                    cls._add_backend_tables(conn, path)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()  # first: its file sits in a folder that may go next
            for made in reversed(created):
                for victim in (made, *(made.with_name(made.name + s) for s in SIDE_SUFFIXES)):
                    try:
                        victim.rmdir() if victim.is_dir() else victim.unlink(missing_ok=True)
                    except OSError:
                        pass
            raise
        return cls(conn, path, model_id, stored_dim, lock, backend)

    @staticmethod
    def _add_backend_tables(conn: sqlite3.Connection, path: Path) -> None:
        """The tables of non-torch backends (idempotent; a torch-only cache never gets them)."""
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _BACKEND_SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _is_full(path, exc):
                raise disk_full(path, "opening the cache") from None
            raise StoreError(f"cannot prepare cache {path} for other backends ({_reason(exc)}); {_FIX}") from None

    @staticmethod
    def _add_sum_table(conn: sqlite3.Connection, path: Path) -> None:
        """Each vector's checksum (memtui.embed.vector_check); idempotent, older caches get it empty."""
        try:
            conn.execute(SUM_TABLE)
        except sqlite3.DatabaseError as exc:
            if _is_full(path, exc):
                raise disk_full(path, "opening the cache") from None
            raise StoreError(f"cannot prepare cache {path} for vector checksums ({_reason(exc)}); {_FIX}") from None

    @staticmethod
    def _make_folders(path: Path, created: list[Path]) -> None:
        """Create missing folders, 0700."""
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
            if is_disk_full(exc):
                raise disk_full(made, "creating the cache folder") from None
            raise StoreError(
                f"cannot create cache {path}: folder {made}: {exc.strerror or exc}; pass --cache in a writable folder"
            ) from None

    @staticmethod
    def _prepare(path: Path, created: list[Path]) -> bool:
        """Check the file and its companions are ours and private, or create it (0600); return whether it existed.

        Nothing is opened through a link, and a database memtui did not make is
        refused before SQLite may write to it.
        """
        sides = [
            (side, check_existing(side, "cache companion"))
            for side in (path.with_name(path.name + companion) for companion in SIDE_SUFFIXES)
        ]
        st = check_existing(path, "cache")
        if st is None:
            try:
                create_exclusive(path)  # SQLite gives the -wal and -shm files the database file's mode
            except FileExistsError:
                raise StoreError(f"cache {path} appeared while memtui was creating it; rerun") from None
            except OSError as exc:
                if is_disk_full(exc):
                    raise disk_full(path, "creating the cache") from None
                raise StoreError(
                    f"cannot create cache {path}: {exc.strerror or exc}; pass --cache in a writable folder"
                ) from None
            created.append(path)
            existed = False
        else:
            if not (st.st_mode & stat.S_IWUSR) or not os.access(path, os.W_OK):
                raise StoreError(f"cache {path} is read-only; chmod u+w {path} or pass --cache NEW_PATH")
            _classify(path, st)  # first: another application's database keeps its mode too
            tighten(path, st)
            existed = True
        for side, side_st in sides:
            if side_st is not None:
                tighten(side, side_st)
        for companion in ("-wal", "-shm"):  # ours from the start: nobody can slip one in before SQLite
            side = path.with_name(path.name + companion)
            try:
                if create_exclusive(side) and not existed:
                    created.append(side)
            except OSError:
                pass  # SQLite makes it itself (never through a link)
        return existed

    @staticmethod
    def _connect(path: Path, existed: bool) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(str(path), timeout=10, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open cache {path} ({_reason(exc)}); {_FIX}") from None
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous=FULL")  # a commit is on disk when it returns (WAL fsync per commit)
            if existed:
                check = conn.execute("PRAGMA quick_check").fetchone()[0]
                if check != "ok":
                    raise StoreError(f"cache {path} is corrupt ({check}); {_FIX}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _open_error(path, exc) from None
        except BaseException:
            conn.close()
            raise
        if mode.lower() != "wal":
            conn.close()
            raise StoreError(f"cache {path} cannot use WAL journaling (got {mode}); put it on a local disk")
        return conn

    @staticmethod
    def _init_or_check(conn: sqlite3.Connection, path: Path, model_id: str, dim: int | None) -> int | None:
        """Write the schema into a new file, or check an existing cache matches."""
        try:
            meta = _read_meta(conn, path)
            if meta is None:
                conn.execute("BEGIN IMMEDIATE")
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta(key, value) VALUES (?, ?)",
                    [
                        ("schema_version", str(SCHEMA_VERSION)),
                        ("model_id", model_id),
                        ("dim", "" if dim is None else str(dim)),
                        ("created_at", repr(time.time())),
                    ],
                )
                conn.execute("COMMIT")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the file itself holds meta: wal_owner's proof
                return dim
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _is_full(path, exc):
                raise disk_full(path, "creating the cache") from None
            raise StoreError(f"cannot initialise cache {path} ({_reason(exc)}); {_FIX}") from None
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

    # -- queries -----------------------------------------------------------

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"reading cache {self.path} failed ({_reason(exc)}); {_FIX}") from None

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
                raise StoreError(
                    f"cache {self.path} has a {vec.size}-dim vector where {self.dim} were expected; {_FIX}"
                )
            out[key] = vec
        return out

    def key(self, text: str) -> bytes:
        """This store's key for ``text``: its model and backend."""
        return key_for(self.model_id, text, self.backend)

    def done_domains(self) -> set[str]:
        """Domains finished by this store's backend (another backend's summaries do not count)."""
        if self.backend != TORCH_BACKEND:
            return {
                row[0] for row in self._query("SELECT domain FROM backend_domains WHERE backend = ?", (self.backend,))
            }
        return {row[0] for row in self._query("SELECT domain FROM domains")}

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
    ) -> None:
        """Write a batch in ONE transaction: vectors, response rows, domain summaries.

        Vectors of a half-done domain may be committed without its summary;
        the domain is redone on resume, finding its vectors already cached.
        """
        rows = [(key, self._blob(vec)) for key, vec in vectors.items()]
        response_rows = [(r.id, r.domain, r.model, r.prompt_type, self.key(r.text)) for r in responses]
        domain_rows = [
            (s.domain, s.responses, json.dumps(s.counts, sort_keys=True), s.agreement, s.done_at)
            for s in completed_domains
        ]
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
                if self.backend == TORCH_BACKEND:
                    conn.executemany(
                        "INSERT OR REPLACE INTO responses(id, domain, model, prompt_type, key) VALUES (?, ?, ?, ?, ?)",
                        response_rows,
                    )
                    conn.executemany(
                        "INSERT OR REPLACE INTO domains(domain, responses, counts, agreement, done_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        domain_rows,
                    )
                else:  # see _BACKEND_SCHEMA
                    tag = (self.backend,)
                    conn.executemany(
                        "INSERT OR IGNORE INTO backend_vectors(key, backend) VALUES (?, ?)",
                        [(key, self.backend) for key, _ in rows],
                    )
                    conn.executemany(
                        "INSERT OR REPLACE INTO backend_responses(backend, id, domain, model, prompt_type, key)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        [tag + row for row in response_rows],
                    )
                    conn.executemany(
                        "INSERT OR REPLACE INTO backend_domains(backend, domain, responses, counts, agreement, done_at)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        [tag + row for row in domain_rows],
                    )
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error) and _is_full(self.path, exc):
                    raise disk_full(self.path, "writing the cache") from None
                if isinstance(exc, sqlite3.Error):  # an I/O error: a runtime failure, not bad input
                    raise RuntimeFailure(
                        f"writing cache {self.path} failed ({_reason(exc)}); {self._write_fix(exc)}"
                    ) from None
                raise

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

    @staticmethod
    def _write_fix(exc: sqlite3.Error) -> str:
        text = _reason(exc)
        if "full" in text:
            return "free disk space and rerun (completed batches are kept)"
        if "locked" in text or "busy" in text:
            return "another process holds the cache; stop it or pass --cache NEW_PATH"
        if "readonly" in text:
            return "make the cache and its folder writable"
        return "rerun (completed batches are kept) or pass --cache NEW_PATH"

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
