"""The cache's contents are trusted only when they prove themselves: real runs, real files, real SQLite.

- a ``-wal`` of another memtui cache or of another database beside the cache is refused
  (exit 2, one line naming it) and never applied: the cache and the WAL keep every byte;
  the cache's own WAL (a crash) is still applied;
- a stored vector with flipped bytes is found (its checksum, or for an older cache its
  length) and embedded again, with a warning;
- the cache's folder removed (or the cache moved) mid-run ends the run as a runtime
  failure (exit 1) that says where the committed work went;
- commits are durable: the cache runs with ``synchronous=FULL``.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.store import CacheStore
from memtui.embed.vector_check import checksum
from tests.hostile.test_input_changes import finish, paused_after_first_batch, runs_dir  # noqa: F401 - a fixture
from tests.support.cli import memtui
from tests.support.hostile import error_lines, fingerprint, killing
from tests.support.inputs import write_input

pytestmark = [pytest.mark.model, pytest.mark.slow]

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def run(inp: Path, cache: Path):
    return memtui("run", "--headless", "--input", inp, "--cache", cache, timeout=300)


@pytest.fixture
def made(tmp_path) -> tuple[Path, Path]:
    """A finished cache of 3 domains (a real run) and its input."""
    inp = write_input(tmp_path / "in.jsonl", 3, 3)
    cache = tmp_path / "cache" / "a.sqlite"
    done = run(inp, cache)
    assert done.returncode == 0, done.stderr
    assert not cache.with_name("a.sqlite-wal").exists() or cache.with_name("a.sqlite-wal").stat().st_size == 0
    return inp, cache


def unit_vectors(n: int, seed: int) -> dict[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(n):
        v = rng.standard_normal(384).astype(np.float32)
        out[bytes([seed, i]) * 16] = v / np.linalg.norm(v)
    return out


def wal_left_open(folder: Path, write) -> bytes:
    """The -wal of a database as a crash would leave it: copied while its connection is still open."""
    db = folder / "db.sqlite"
    conn = write(db)
    try:
        return db.with_name("db.sqlite-wal").read_bytes()
    finally:
        conn()


def memtui_wal(db: Path):
    store = CacheStore.open(db, MODEL)
    store.commit_batch(unit_vectors(20, 7))
    return store.close


def other_db_wal(db: Path):
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.executemany("INSERT INTO invoices(total) VALUES (?)", [(i * 1.5,) for i in range(500)])
    return conn.close


@pytest.mark.parametrize(("maker", "whose"), [(memtui_wal, "another memtui cache"), (other_db_wal, "another database")])
def test_a_wal_that_is_not_the_caches_is_refused_and_never_applied(tmp_path, made, maker, whose):
    inp, cache = made
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    wal = cache.with_name(cache.name + "-wal")
    wal.write_bytes(wal_left_open(foreign, maker))
    wal.chmod(0o600)
    before = fingerprint(cache), fingerprint(wal)
    done = run(inp, cache)
    assert done.returncode == 2, done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1, done.stderr
    assert f"{wal} beside cache {cache} is not this cache's" in errors[0] and whose in errors[0], errors[0]
    assert "not a memtui cache" not in errors[0]
    assert (fingerprint(cache), fingerprint(wal)) == before  # never applied: every byte kept
    wal.unlink()
    again = run(inp, cache)  # the cache itself was good all along
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["domains_done"] == 3


def test_the_caches_own_wal_after_a_crash_is_applied(tmp_path, made):
    """What a kill leaves (the file and its own WAL, copied while the writer is open) opens with every commit."""
    _inp, cache = made
    crashed = tmp_path / "crashed"
    crashed.mkdir(mode=0o700)
    store = CacheStore.open(cache, MODEL)
    try:
        store.commit_batch(unit_vectors(5, 9))
        shutil.copy(cache, crashed / "c.sqlite")
        shutil.copy(cache.with_name(cache.name + "-wal"), crashed / "c.sqlite-wal")
    finally:
        store.close()
    assert (crashed / "c.sqlite-wal").stat().st_size > 0
    reopened = CacheStore.open(crashed / "c.sqlite", MODEL)
    try:
        assert not reopened.missing(unit_vectors(5, 9))
    finally:
        reopened.close()


def damage(cache: Path, *, forget_sums: bool) -> bytes:
    """Flip a byte of one stored vector (and of the domain holding it: not done, so its vectors are reused)."""
    conn = sqlite3.connect(cache, isolation_level=None)
    try:
        key, blob = conn.execute("SELECT key, vector FROM embeddings ORDER BY key LIMIT 1").fetchone()
        domain = conn.execute("SELECT domain FROM responses WHERE key = ?", (key,)).fetchone()[0]
        flipped = bytearray(blob)
        flipped[7] ^= 0x40  # the exponent byte of the second float: a vector no longer of unit length
        conn.execute("UPDATE embeddings SET vector = ? WHERE key = ?", (bytes(flipped), key))
        conn.execute("DELETE FROM domains WHERE domain = ?", (domain,))
        if forget_sums:  # a cache made before checksums
            conn.execute("DELETE FROM vector_sums")
        return key
    finally:
        conn.close()


@pytest.mark.parametrize("forget_sums", [False, True], ids=["checksum", "older-cache"])
def test_a_damaged_vector_is_found_and_embedded_again(made, forget_sums):
    inp, cache = made
    key = damage(cache, forget_sums=forget_sums)
    done = run(inp, cache)
    assert done.returncode == 0, done.stderr
    assert "1 stored vector(s) damaged" in done.stderr, done.stderr
    report = json.loads(done.stdout)
    assert report["items_embedded"] == 1  # only the damaged one; its domain's others are reused
    conn = sqlite3.connect(cache)
    try:
        blob = conn.execute("SELECT vector FROM embeddings WHERE key = ?", (key,)).fetchone()[0]
        crc = conn.execute("SELECT crc FROM vector_sums WHERE key = ?", (key,)).fetchone()[0]
    finally:
        conn.close()
    assert crc == checksum(key, blob)
    assert abs(float(np.linalg.norm(np.frombuffer(blob, dtype="<f4"))) - 1.0) < 1e-3


@pytest.mark.parametrize("how", ["removed", "moved"])
def test_the_caches_folder_gone_mid_run_is_a_runtime_failure(tmp_path, runs_dir, how):  # noqa: F811
    inp = write_input(tmp_path / "in.jsonl", 40, 3)
    folder = tmp_path / "cachedir"
    cache = folder / "c.sqlite"
    watched, engine = paused_after_first_batch(inp, cache, runs_dir)
    with killing(watched):
        if how == "removed":
            shutil.rmtree(folder)
        else:
            folder.rename(tmp_path / "moved")
        code, report, errors = finish(watched, engine)
    assert code == 1, watched.stderr
    assert report["status"] == "failed" and report["exit_code"] == 1
    assert len(errors) == 1, watched.stderr
    if how == "removed":
        assert f"cache {cache} was deleted during the run" in errors[0] and "lost" in errors[0], errors[0]
    else:
        assert f"cache {cache} was moved or replaced during the run" in errors[0], errors[0]
        assert (tmp_path / "moved" / "c.sqlite").exists()
    assert "Run success" not in watched.stderr


def test_commits_are_durable(tmp_path):
    store = CacheStore.open(tmp_path / "c.sqlite", MODEL)
    try:
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: the WAL is synced per commit
    finally:
        store.close()
