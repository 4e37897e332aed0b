"""Where each backend's rows live in one cache, written once: the torch tables or the ``backend_*`` tables.

Backends (memtui.embed.backends) share one cache without a migration: the key of a torch fp32 vector is
what it always was, so every older cache stays valid as it is; another backend's vectors get keys of their
own (its name is hashed in) and are listed in ``backend_vectors``, their domains and responses in
``backend_domains`` and ``backend_responses``. Whatever those tables do not list is torch fp32, the only
backend before them. An older memtui ignores the extra tables and still reads the torch vectors.

``Tables`` gives the store the table names and the backend's part of each WHERE clause, so no query of
the store is written twice (once per family of tables).
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from typing import Any

TORCH_BACKEND = "torch"

BACKEND_SCHEMA = """
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


@dataclass(frozen=True)
class Tables:
    """One backend's tables: ``responses`` and ``domains`` (torch) or ``backend_*`` with a backend column.

    ``where(cond)`` is the WHERE clause restricted to this backend and its leading parameters;
    ``columns``/``row`` put the backend column in front of an inserted row when the table has one.
    """

    backend: str

    @property
    def torch(self) -> bool:
        return self.backend == TORCH_BACKEND

    @property
    def responses(self) -> str:
        return "responses" if self.torch else "backend_responses"

    @property
    def domains(self) -> str:
        return "domains" if self.torch else "backend_domains"

    def where(self, cond: str = "", alias: str = "") -> tuple[str, tuple[Any, ...]]:
        """`` WHERE`` this backend's rows (and ``cond``), and the parameters the backend's part takes first."""
        parts = ([] if self.torch else [self._column(alias)]) + ([cond] if cond else [])
        where = " WHERE " + " AND ".join(f"{p} = ?" if p == self._column(alias) else p for p in parts) if parts else ""
        return where, (() if self.torch else (self.backend,))

    def order(self, columns: str, alias: str = "") -> str:
        """``columns`` with the backend column first where there is one (the order of the tables' indexes)."""
        return columns if self.torch else f"{self._column(alias)}, {columns}"

    @staticmethod
    def _column(alias: str) -> str:
        return f"{alias}.backend" if alias else "backend"

    def insert(self, table: str, columns: str) -> str:
        """``INSERT OR REPLACE`` into ``table`` of ``columns`` (comma-separated), the backend column first."""
        names = columns if self.torch else f"backend, {columns}"
        return f"INSERT OR REPLACE INTO {table}({names}) VALUES ({', '.join('?' * len(names.split(',')))})"

    def row(self, values: tuple[Any, ...]) -> tuple[Any, ...]:
        return values if self.torch else (self.backend, *values)


def backend_counts(conn: sqlite3.Connection, vectors: int, domains: int) -> dict[str, dict[str, int]]:
    """Vectors and finished domains per backend; what backend_vectors does not list is torch fp32."""
    found = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    out: dict[str, dict[str, int]] = {}
    if "backend_vectors" in found:
        for backend, count in conn.execute("SELECT backend, count(*) FROM backend_vectors GROUP BY backend"):
            out.setdefault(backend, {"vectors": 0, "domains_done": 0})["vectors"] = count
    if "backend_domains" in found:
        for backend, count in conn.execute("SELECT backend, count(*) FROM backend_domains GROUP BY backend"):
            out.setdefault(backend, {"vectors": 0, "domains_done": 0})["domains_done"] = count
    torch = {"vectors": vectors - sum(v["vectors"] for v in out.values()), "domains_done": domains}
    return (
        {TORCH_BACKEND: torch, **dict(sorted(out.items()))}
        if torch["vectors"] or domains or not out
        else dict(sorted(out.items()))
    )
