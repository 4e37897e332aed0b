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

from memtui.embed.agreement import AgreementSums
from memtui.embed.companions import SHM, SQLITE_SUFFIXES, WAL, companion, wal_path
from memtui.embed.lock import CacheLock
from memtui.embed.vector_check import SUM_TABLE, checksum, fault
from memtui.embed.wal_owner import STAMP_KEY, check_wal_owner
from memtui.errors import InputError, MemtuiError, RuntimeFailure, StoreError
from memtui.records import Response
from memtui.safefs import check_existing, create_exclusive, disk_full, is_disk_full, tighten

SCHEMA_VERSION = 1
SQLITE_MAGIC = b"SQLite format 3\x00"
IN_CHUNK = 500  # well under every SQLite build's host-parameter limit

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
                                            fingerprint BLOB, PRIMARY KEY (backend, domain));
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
    #: What the domain held when it was summarised (memtui.jobs.domains.Fingerprint); None: not known
    #: (an older memtui's summary), so the domain is checked again.
    fingerprint: bytes | None = None


#: Labels (model/prompt type) a summary's counts name; the rest are summed under OTHER_LABELS.
MAX_COUNT_LABELS = 1000
OTHER_LABELS = "(other labels)"
#: Rows read at a time when a domain is summarised from the cache.
SUMMARY_ROWS = 1024


class CountsTally:
    """Responses per model/prompt type, naming at most MAX_COUNT_LABELS of them (a summary stays small)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.total = 0

    def add(self, label: str, n: int = 1) -> None:
        self.total += n
        if label in self.counts or len(self.counts) < MAX_COUNT_LABELS:
            self.counts[label] = self.counts.get(label, 0) + n
        else:
            self.counts[OTHER_LABELS] = self.counts.get(OTHER_LABELS, 0) + n

    def sorted(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


def summarize_domain(
    domain: str,
    responses: Sequence[Response],
    vector_lookup: Callable[[Response], np.ndarray],
) -> DomainSummary:
    """Counts per model/prompt type and the cross-model agreement score.

    Agreement is the mean cosine similarity over every pair of responses to
    the same prompt type from different models, pooled across prompt types;
    None when no prompt type was answered by two models. Computed exactly
    from running sums (memtui.embed.agreement), never a pairwise matrix.
    """
    counts = CountsTally()
    sums = AgreementSums()
    for r in sorted(responses, key=lambda r: (r.prompt_type, r.model)):
        counts.add(f"{r.model}/{r.prompt_type}")
        sums.add(r.prompt_type, r.model, np.asarray(vector_lookup(r)))
    return DomainSummary(domain, len(responses), counts.sorted(), sums.score(), time.time())


def _domain_row(s: DomainSummary) -> tuple[Any, ...]:
    return (s.domain, s.responses, json.dumps(s.counts, sort_keys=True), s.agreement, s.done_at, s.fingerprint)


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
    wal = wal_path(path)
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
                cls._add_domain_fingerprints(conn, path)
            except BaseException:
                conn.close()
                raise
        except BaseException:
            if lock is not None:
                lock.release()  # first: its file sits in a folder that may go next
            for made in reversed(created):
                for victim in (made, *(companion(made, s) for s in SQLITE_SUFFIXES)):
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
    def _add_domain_fingerprints(conn: sqlite3.Connection, path: Path) -> None:
        """The migration for "done means done" (idempotent): a fingerprint column on the summaries, and the
        indexes a domain is forgotten and summarised by. An older summary has no fingerprint: its domain is
        checked again (its vectors are kept, only missing ones are embedded); an older memtui ignores both."""
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        statements = [
            f"ALTER TABLE {table} ADD COLUMN fingerprint BLOB"
            for table in ("domains", "backend_domains")
            if table in tables and "fingerprint" not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        ]
        statements.append("CREATE INDEX IF NOT EXISTS responses_group ON responses(domain, prompt_type, model)")
        if "backend_responses" in tables:
            statements.append(
                "CREATE INDEX IF NOT EXISTS backend_responses_group"
                " ON backend_responses(backend, domain, prompt_type, model)"
            )
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in statements:
                conn.execute(statement)
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if _is_full(path, exc):
                raise disk_full(path, "opening the cache") from None
            raise StoreError(f"cannot add domain fingerprints to cache {path} ({_reason(exc)}); {_FIX}") from None

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
            for side in (companion(path, suffix) for suffix in SQLITE_SUFFIXES)
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
        for suffix in (WAL, SHM):  # ours from the start: nobody can slip one in before SQLite
            side = companion(path, suffix)
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

    def fingerprints_for(self, domains: Iterable[str]) -> dict[str, bytes]:
        """The fingerprint each domain was summarised with by this store's backend (domains without one: absent)."""
        out: dict[str, bytes] = {}
        wanted = list(dict.fromkeys(domains))
        for i in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[i : i + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            if self.backend != TORCH_BACKEND:
                sql = f"SELECT domain, fingerprint FROM backend_domains WHERE backend = ? AND domain IN ({marks})"
                rows = self._query(sql, (self.backend, *chunk))
            else:
                rows = self._query(f"SELECT domain, fingerprint FROM domains WHERE domain IN ({marks})", chunk)
            out.update((domain, bytes(fp)) for domain, fp in rows if fp is not None)
        return out

    def forget_domain(self, domain: str) -> None:
        """Before a domain is (re)done: drop its summary and its response rows (this backend's), so what the
        cache says of it is rebuilt from what the input holds now. Its vectors stay (keyed by text)."""
        self._write(lambda conn: self._forget(conn, domain))

    def _forget(self, conn: sqlite3.Connection, domain: str) -> None:
        if self.backend == TORCH_BACKEND:
            conn.execute("DELETE FROM domains WHERE domain = ?", (domain,))
            conn.execute("DELETE FROM responses WHERE domain = ?", (domain,))
        else:
            conn.execute("DELETE FROM backend_domains WHERE backend = ? AND domain = ?", (self.backend, domain))
            conn.execute("DELETE FROM backend_responses WHERE backend = ? AND domain = ?", (self.backend, domain))

    def _summary_rows(self, conn: sqlite3.Connection, domain: str) -> sqlite3.Cursor:
        """A domain's (prompt type, model, vector) rows as the cache holds them, grouped for AgreementSums."""
        if self.backend == TORCH_BACKEND:
            return conn.execute(
                "SELECT r.prompt_type, r.model, e.vector, r.id FROM responses r LEFT JOIN embeddings e"
                " ON e.key = r.key WHERE r.domain = ? ORDER BY r.domain, r.prompt_type, r.model",
                (domain,),
            )
        return conn.execute(
            "SELECT r.prompt_type, r.model, e.vector, r.id FROM backend_responses r LEFT JOIN embeddings e"
            " ON e.key = r.key WHERE r.backend = ? AND r.domain = ?"
            " ORDER BY r.backend, r.domain, r.prompt_type, r.model",
            (self.backend, domain),
        )

    def _summarize_stored(self, conn: sqlite3.Connection, domain: str, fingerprint: bytes | None) -> DomainSummary:
        """A domain's summary from its rows in the cache, read SUMMARY_ROWS at a time (memory: a few vectors,
        whatever the domain's size). Raises StoreError if a row has no vector (it cannot be done)."""
        counts, sums = CountsTally(), AgreementSums()
        cursor = self._summary_rows(conn, domain)
        while rows := cursor.fetchmany(SUMMARY_ROWS):
            start = 0
            for end in range(1, len(rows) + 1):
                if end < len(rows) and rows[end][:2] == rows[start][:2]:
                    continue
                prompt_type, model = rows[start][0], rows[start][1]
                blobs = [row[2] for row in rows[start:end]]
                if any(blob is None for blob in blobs):
                    rid = next(row[3] for row in rows[start:end] if row[2] is None)
                    raise StoreError(f"no vector for response {rid} of domain {domain}; rerun to embed it")
                counts.add(f"{model}/{prompt_type}", end - start)
                sums.add(prompt_type, model, np.frombuffer(b"".join(blobs), dtype="<f4").reshape(end - start, -1))
                start = end
        return DomainSummary(domain, counts.total, counts.sorted(), sums.score(), time.time(), fingerprint)

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
        domain_rows = [_domain_row(s) for s in completed_domains]
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
                domain_rows += [_domain_row(s) for s in made]
                if self.backend == TORCH_BACKEND:
                    conn.executemany(
                        "INSERT OR REPLACE INTO domains(domain, responses, counts, agreement, done_at, fingerprint)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        domain_rows,
                    )
                else:  # see _BACKEND_SCHEMA
                    tag = (self.backend,)
                    conn.executemany(
                        "INSERT OR IGNORE INTO backend_vectors(key, backend) VALUES (?, ?)",
                        [(key, self.backend) for key, _ in rows],
                    )
                    conn.executemany(
                        "INSERT OR REPLACE INTO backend_domains(backend, domain, responses, counts, agreement, done_at,"
                        " fingerprint) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [tag + row for row in domain_rows],
                    )
                conn.execute("COMMIT")
            except BaseException as exc:
                self._failed_write(conn, exc)
        return made

    def _insert_responses(self, conn: sqlite3.Connection, response_rows: list[tuple[Any, ...]]) -> None:
        """Response rows, keyed by id (the scan refuses an input that repeats one: memtui.jobs.ids)."""
        if self.backend == TORCH_BACKEND:
            conn.executemany(
                "INSERT OR REPLACE INTO responses(id, domain, model, prompt_type, key) VALUES (?, ?, ?, ?, ?)",
                response_rows,
            )
        else:  # see _BACKEND_SCHEMA
            conn.executemany(
                "INSERT OR REPLACE INTO backend_responses(backend, id, domain, model, prompt_type, key)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(self.backend, *row) for row in response_rows],
            )

    def _refuse_taken_ids(self, conn: sqlite3.Connection, responses: Sequence[Response]) -> None:
        """An id the cache holds for another domain (another input sharing the cache) is never replaced:
        InputError (exit 2), the batch rolled back. A domain's own old rows were dropped when it began."""
        by_id = {r.id: r for r in responses}
        ids = list(by_id)
        for i in range(0, len(ids), IN_CHUNK):
            chunk = ids[i : i + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            if self.backend == TORCH_BACKEND:
                sql, args = f"SELECT id, domain FROM responses WHERE id IN ({marks})", chunk
            else:
                sql = f"SELECT id, domain FROM backend_responses WHERE backend = ? AND id IN ({marks})"
                args = [self.backend, *chunk]
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
        if isinstance(exc, sqlite3.Error) and _is_full(self.path, exc):
            raise disk_full(self.path, "writing the cache") from None
        if isinstance(exc, sqlite3.Error):  # an I/O error: a runtime failure, not bad input
            raise RuntimeFailure(f"writing cache {self.path} failed ({_reason(exc)}); {self._write_fix(exc)}") from None
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
