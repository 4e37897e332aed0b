from __future__ import annotations

import json
import math
import os
import sqlite3
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from memtui.embed import schema
from memtui.embed.store import CacheStore, DomainSummary, key_for, summarize_domain
from memtui.errors import RuntimeFailure, StoreError, UsageError
from memtui.records import Response

MODEL = "test/model"
DIM = 8


def responses(domain: str, n: int = 6) -> list[Response]:
    models, prompts = ("claude", "gpt", "gemini"), ("trust", "risk")
    return [
        Response(f"{domain}-{i}", domain, models[i % 3], prompts[i // 3 % 2], f"{domain} text {i}", i + 1)
        for i in range(n)
    ]


def vectors_for(rs: list[Response], seed: int = 0) -> dict[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {}
    for r in rs:
        v = rng.normal(size=DIM)
        out[key_for(MODEL, r.text)] = v / np.linalg.norm(v)
    return out


def counts(path: Path) -> tuple[int, int, int]:
    info = CacheStore.info(path)
    return info["vectors"], info["responses"], info["domains_done"]


@pytest.fixture
def cache(tmp_path) -> Path:
    return tmp_path / "state" / "cache" / "cache.sqlite"


def test_new_cache_is_private_file_in_private_folders(cache):
    rs = responses("a")
    with CacheStore.open(cache, MODEL, DIM) as store:
        store.commit_batch(vectors_for(rs), rs, [])
        for f in (cache, cache.with_name(cache.name + "-wal"), cache.with_name(cache.name + "-shm")):
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert stat.S_IMODE(cache.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.parent.parent.stat().st_mode) == 0o700


def test_float32_round_trip_and_no_pickle(cache):
    rs = responses("a", 3)
    vecs = vectors_for(rs)
    with CacheStore.open(cache, MODEL) as store:
        store.commit_batch(vecs, rs, [])
        back = store.vectors_for(vecs)
        assert store.dim == DIM
    for key, vec in vecs.items():
        assert back[key].dtype == np.float32
        np.testing.assert_array_equal(back[key], vec.astype(np.float32))
    conn = sqlite3.connect(cache)
    blobs = [b for (b,) in conn.execute("SELECT vector FROM embeddings")]
    conn.close()
    assert all(len(b) == 4 * DIM and not b.startswith(b"\x80") for b in blobs)  # \x80 opens every pickle
    assert blobs[0] in {np.asarray(v, dtype="<f4").tobytes() for v in vecs.values()}
    assert CacheStore.info(cache)["dim"] == DIM


def test_commit_twice_duplicates_nothing_and_resume_point_is_the_domain_row(cache):
    rs_a, rs_b = responses("a"), responses("b")
    vecs = vectors_for(rs_a + rs_b)
    with CacheStore.open(cache, MODEL, DIM) as store:
        summary = store.summarize("a", rs_a, vecs)
        store.commit_batch(vecs, rs_a + rs_b, [summary])
        store.commit_batch(vecs, rs_a + rs_b, [summary])
        assert store.done_domains() == {"a"}  # b's vectors are in, but b is not complete
        assert store.missing(vecs) == set()
    assert counts(cache) == (12, 12, 1)
    with CacheStore.open(cache, MODEL) as store:  # reopen: same state, dim remembered
        assert store.dim == DIM and store.done_domains() == {"a"}


def test_missing_chunks_large_key_sets(cache):
    rs = [Response(str(i), "a", "m", "p", f"t{i}", i) for i in range(1300)]
    vecs = vectors_for(rs)
    present = dict(list(vecs.items())[::2])
    with CacheStore.open(cache, MODEL, DIM) as store:
        store.commit_batch(present, [], [])
        assert store.missing(vecs) == set(vecs) - set(present)
        assert len(store.vectors_for(vecs)) == len(present)


def test_failure_inside_the_transaction_leaves_nothing_partial(cache):
    rs = responses("a")
    vecs = vectors_for(rs)
    broken = DomainSummary("a", None, {}, None, 0.0)  # type: ignore[arg-type]  # NOT NULL fails last
    with CacheStore.open(cache, MODEL, DIM) as store:
        with pytest.raises(RuntimeFailure, match=r"writing cache .* failed \(NOT NULL constraint") as err:
            store.commit_batch(vecs, rs, [broken])
        assert err.value.exit_code == 1  # a failed write is a runtime failure, not bad input
        assert store.missing(vecs) == set(vecs)
        store.commit_batch(vecs, rs, [])  # the connection is usable afterwards
    assert counts(cache) == (6, 6, 0)


def test_kill_9_mid_transaction_loses_only_that_batch(cache):
    """SIGKILL after the vectors and responses of batch 2 hit the file, before COMMIT."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_store import responses, vectors_for, MODEL, DIM
        from memtui.embed.store import CacheStore
        store = CacheStore.open({str(cache)!r}, MODEL, DIM)
        first = responses("a")
        store.commit_batch(vectors_for(first), first, [store.summarize("a", first, vectors_for(first))])
        store._conn.execute("PRAGMA cache_size=1")  # spill uncommitted pages to the WAL
        def die(sql):
            if "INTO domains" in sql:
                os.kill(os.getpid(), signal.SIGKILL)
        store._conn.set_trace_callback(die)
        second = [r for d in range(40) for r in responses(f"b{{d}}", 30)]
        vecs = vectors_for(second, seed=1)
        store.commit_batch(vecs, second, [store.summarize("b0", second[:30], vecs)])
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parents[2], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    assert cache.with_name(cache.name + "-wal").stat().st_size > 100_000  # uncommitted frames were written
    assert counts(cache) == (6, 6, 1)
    with CacheStore.open(cache, MODEL, DIM) as store:
        assert store.done_domains() == {"a"}


def test_other_model_or_dim_is_refused_naming_both(cache):
    CacheStore.open(cache, MODEL, DIM).close()
    with pytest.raises(StoreError) as err:
        CacheStore.open(cache, "other/model", DIM)
    assert str(err.value) == (
        f"cache {cache} holds vectors of model {MODEL}, not other/model; use --cache OTHER or --model {MODEL}"
    )
    with pytest.raises(StoreError, match="holds 8-dim vectors, the model makes 384"):
        CacheStore.open(cache, MODEL, 384)


def test_not_a_database_is_refused_and_left_untouched(tmp_path):
    path = tmp_path / "cache.sqlite"
    path.write_text("hello, I am a text file\n" * 100)
    before = path.read_bytes()
    for attempt in (lambda: CacheStore.open(path, MODEL), lambda: CacheStore.info(path)):
        with pytest.raises(
            StoreError,
            match=r"cache\.sqlite is not a memtui cache \(file is not a database\); "
            r"move it away or pass --cache NEW_PATH",
        ):
            attempt()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache.sqlite"]


def test_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError, match=r"is a SQLite database but not a memtui cache \(tables: notes\)"):
        CacheStore.open(path, MODEL)


def test_truncated_cache_is_reported_as_corrupt(cache):
    rs = [Response(str(i), "a", "m", "p", f"t{i}", i) for i in range(2000)]
    with CacheStore.open(cache, MODEL, DIM) as store:
        store.commit_batch(vectors_for(rs), rs, [])
    size = cache.stat().st_size
    with open(cache, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(StoreError, match="corrupt"):
        CacheStore.open(cache, MODEL, DIM)


def test_read_only_file_is_refused_for_writing_but_info_works(cache):
    CacheStore.open(cache, MODEL, DIM).close()
    cache.chmod(0o444)
    with pytest.raises(StoreError, match=r"is read-only; chmod u\+w"):
        CacheStore.open(cache, MODEL, DIM)
    assert CacheStore.info(cache)["model_id"] == MODEL


def test_unwritable_location_fails_cleanly_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create cache .*; pass --cache in a writable folder"):
        CacheStore.open(blocker / "sub" / "cache.sqlite", MODEL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_failed_open_of_a_new_path_removes_what_it_created(tmp_path, monkeypatch):
    def boom(*_args):
        raise StoreError("injected")

    monkeypatch.setattr(schema, "init_or_check", boom)  # after the folders, the lock and the file are made
    with pytest.raises(StoreError, match="injected"):
        CacheStore.open(tmp_path / "new" / "deeper" / "cache.sqlite", MODEL)
    assert list(tmp_path.iterdir()) == []


def test_info_on_a_missing_path_creates_nothing(tmp_path):
    with pytest.raises(StoreError, match=r"no cache at .*; run memtui run --mode cache first"):
        CacheStore.info(tmp_path / "none" / "cache.sqlite")
    assert list(tmp_path.iterdir()) == []


def test_info_reads_while_a_writer_holds_the_cache(cache):
    rs = responses("a")
    with CacheStore.open(cache, MODEL, DIM) as store:
        store.commit_batch(vectors_for(rs), rs, [store.summarize("a", rs, vectors_for(rs))])
        info = store.info()
        assert info == CacheStore.info(cache)
    assert {k: info[k] for k in ("vectors", "responses", "domains_done", "model_id", "dim", "schema_version")} == {
        "vectors": 6,
        "responses": 6,
        "domains_done": 1,
        "model_id": MODEL,
        "dim": DIM,
        "schema_version": 1,
    }
    assert info["size_bytes"] >= cache.stat().st_size and info["path"] == str(cache)


def test_summary_row_is_stored_as_json_counts(cache):
    rs = responses("a")
    with CacheStore.open(cache, MODEL, DIM) as store:
        store.commit_batch(vectors_for(rs), rs, [store.summarize("a", rs, vectors_for(rs))])
    conn = sqlite3.connect(cache)
    ((n, raw_counts, agreement),) = conn.execute("SELECT responses, counts, agreement FROM domains").fetchall()
    conn.close()
    assert n == 6 and -1.0 <= agreement <= 1.0
    assert json.loads(raw_counts) == {f"{m}/{p}": 1 for m in ("claude", "gpt", "gemini") for p in ("trust", "risk")}


def test_agreement_matches_a_hand_computed_value():
    s = 1 / math.sqrt(2)
    a, b, c = np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([s, s])

    def r(i: int, model: str, prompt: str, vec: np.ndarray) -> tuple[Response, np.ndarray]:
        return Response(str(i), "d", model, prompt, f"t{i}", i), vec

    pairs = [
        r(1, "claude", "t", a),
        r(2, "gpt", "t", b),
        r(3, "gemini", "t", c),  # a.b=0, a.c=s, b.c=s
        r(4, "claude", "u", a),
        r(5, "claude", "u", b),
        r(6, "gpt", "u", a * 3),  # a.a=1, b.a=0; not 4-5
        r(7, "claude", "v", a),  # no other model: no pair
    ]
    lookup = {resp.id: vec for resp, vec in pairs}
    summary = summarize_domain("d", [p for p, _ in pairs], lambda resp: lookup[resp.id])
    assert summary.agreement == pytest.approx((0 + s + s + 1 + 0) / 5)
    assert summary.counts == {"claude/t": 1, "claude/u": 2, "claude/v": 1, "gemini/t": 1, "gpt/t": 1, "gpt/u": 1}
    assert summary.responses == 7
    alone = summarize_domain("d", [pairs[3][0], pairs[4][0]], lambda resp: lookup[resp.id])
    assert alone.agreement is None


def test_vectors_of_a_wrong_size_are_refused(cache):
    rs = responses("a", 1)
    with CacheStore.open(cache, MODEL, DIM) as store:
        with pytest.raises(StoreError, match="cannot store a 3-dim vector"):
            store.commit_batch({key_for(MODEL, "x"): np.ones(3)}, rs, [])


def test_stores_import_no_torch():
    code = "import sys, memtui.embed.store, memtui.jobs.input; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[2]).returncode == 0


def test_key_depends_on_model_and_text():
    assert key_for("m", "t") != key_for("n", "t") != key_for("m", "u")
    assert len(key_for("m", "t")) == 32 and key_for("m", "t") == key_for("m", "t")


def test_open_refuses_a_directory(tmp_path):
    with pytest.raises(UsageError, match="is not a file"):
        CacheStore.open(tmp_path, MODEL)
    os.rmdir(tmp_path)  # still an empty directory: nothing was created inside it
