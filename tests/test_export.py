"""memtui cache export and memtui.open_cache on real caches: every vector bit-identical, every row right.

A real run (the real model, torch) makes the cache; a second backend's rows go in through the store's own
API (onnx-int8's one-time export is slow, and what is tested here is the reading). A synthetic 200,000-row
cache (the store's API, random vectors) shows the export's memory stays bounded.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import memtui
from memtui.embed.reader import CacheRow, open_cache
from memtui.embed.store import CacheStore, DomainSummary, key_for
from memtui.errors import StoreError, UsageError
from memtui.records import Response
from tests.support import large_cache as large
from tests.support.cli import memtui as run_memtui
from tests.support.cli import memtui_env, popen_memtui
from tests.support.inputs import write_input

DOMAINS, PER_DOMAIN = 4, 3
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
INT8 = "onnx-int8/r3/avx2"  # a stored backend name: the reader takes it as it is


def stored(cache: Path) -> dict[tuple[str, str], tuple[bytes, str, str, str, bytes]]:
    """(backend, id) -> (vector blob, domain, model, prompt_type, key), straight from SQLite."""
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        out = {
            ("torch", i): (v, d, m, p, k)
            for i, d, m, p, k, v in con.execute(
                "SELECT r.id, r.domain, r.model, r.prompt_type, r.key, e.vector FROM responses r "
                "JOIN embeddings e ON e.key = r.key"
            )
        }
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master")}
        if "backend_responses" in tables:
            for b, i, d, m, p, k, v in con.execute(
                "SELECT r.backend, r.id, r.domain, r.model, r.prompt_type, r.key, e.vector FROM backend_responses r "
                "JOIN embeddings e ON e.key = r.key"
            ):
                out[(b, i)] = (v, d, m, p, k)
        return out
    finally:
        con.close()


def add_backend_rows(cache: Path, inp: Path, backend: str, seed: int = 7) -> int:
    """The input's responses as ``backend``'s rows (random unit vectors), through CacheStore itself."""
    rng = np.random.default_rng(seed)
    responses = [
        Response(r["id"], r["domain"], r["model"], r["prompt_type"], r["response"], n)
        for n, r in enumerate(map(json.loads, inp.read_text().splitlines()), 1)
    ]
    with CacheStore.open(cache, MODEL_ID, backend=backend) as store:
        vectors = {}
        for r in responses:
            v = rng.standard_normal(384).astype(np.float32)
            vectors[store.key(r.text)] = v / np.linalg.norm(v)
        domains = sorted({r.domain for r in responses})
        summaries = [DomainSummary(d, PER_DOMAIN, {}, None, 0.0) for d in domains]
        store.commit_batch(vectors, responses, summaries)
    return len(responses)


@pytest.fixture(scope="module")
def two_backends(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("export")
    inp, cache = write_input(folder / "in.jsonl", DOMAINS, PER_DOMAIN), folder / "cache.sqlite"
    done = run_memtui("run", "--headless", "--input", inp, "--cache", cache, timeout=600)
    assert done.returncode == 0, done.stderr
    add_backend_rows(cache, inp, INT8)
    return cache, inp


def export(cache: Path, fmt: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    done = run_memtui("cache", "export", "--cache", cache, "--format", fmt, "--output", out, *extra, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


def check_rows(rows: list[dict], vectors: np.ndarray, cache: Path) -> None:
    """Each row's metadata and vector are the cache's, bit for bit."""
    truth = stored(cache)
    assert len(rows) == len(vectors) == len(truth)
    assert {(r["backend"], r["id"]) for r in rows} == set(truth)
    for row, vector in zip(rows, vectors):
        blob, domain, model, prompt, key = truth[(row["backend"], row["id"])]
        assert (row["domain"], row["model"], row["prompt_type"], row["key"]) == (domain, model, prompt, key.hex())
        assert np.asarray(vector, dtype="<f4").tobytes() == blob


def test_jsonl_export_holds_every_row_and_vector_bit_for_bit(two_backends, tmp_path):
    cache, _ = two_backends
    out = tmp_path / "rows.jsonl"
    done = export(cache, "jsonl", out)

    rows = [json.loads(line) for line in out.read_text().splitlines()]
    check_rows(rows, np.array([r["vector"] for r in rows], dtype=np.float64).astype(np.float32), cache)
    assert {k for r in rows for k in r} == {"id", "domain", "model", "prompt_type", "key", "vector", "backend"}
    counts = {b: sum(r["backend"] == b for r in rows) for b in ("torch", INT8)}
    assert counts == {"torch": DOMAINS * PER_DOMAIN, INT8: DOMAINS * PER_DOMAIN}
    assert f"exported {2 * DOMAINS * PER_DOMAIN} rows" in done.stderr
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_npy_export_is_one_float32_array_with_its_rows_in_the_same_order(two_backends, tmp_path):
    cache, _ = two_backends
    export(cache, "npy", tmp_path / "v.npy")

    matrix = np.load(tmp_path / "v.npy", allow_pickle=False)
    rows = [json.loads(line) for line in (tmp_path / "v.rows.jsonl").read_text().splitlines()]
    assert matrix.dtype == np.dtype("<f4") and matrix.shape == (2 * DOMAINS * PER_DOMAIN, 384)
    assert [r["row"] for r in rows] == list(range(len(rows)))
    check_rows(rows, matrix, cache)


def test_parquet_export_has_a_fixed_size_float32_list_per_row(two_backends, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    cache, _ = two_backends
    export(cache, "parquet", tmp_path / "v.parquet")

    table = pq.read_table(tmp_path / "v.parquet")
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 384)
    rows = table.drop_columns(["vector"]).to_pylist()
    vectors = table.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, 384)
    check_rows(rows, vectors, cache)


def test_backend_and_domain_select_rows(two_backends, tmp_path):
    cache, _ = two_backends
    export(cache, "jsonl", tmp_path / "a.jsonl", "--backend", "onnx-int8", "--domain", "site001.example")
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert len(rows) == PER_DOMAIN
    assert {(r["backend"], r["domain"]) for r in rows} == {(INT8, "site001.example")}

    export(cache, "jsonl", tmp_path / "b.jsonl", "--backend", "torch", "--domain", "site000.example", "--domain",
           "site002.example")  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert sorted({r["domain"] for r in rows}) == ["site000.example", "site002.example"]
    assert len(rows) == 2 * PER_DOMAIN and {r["backend"] for r in rows} == {"torch"}


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--format", "xml", "--output", "x"], ["--format", "jsonl, npy, parquet"]),
        (["--format", "jsonl", "--output", "x", "--backend", "onnx"], ["no onnx vectors", "torch"]),
        (["--format", "jsonl", "--output", "x", "--domain", "nowhere.example"], ["nowhere.example"]),
        (["--format", "npy", "--output", "-"], ["two files"]),
    ],
)
def test_bad_requests_are_one_line_and_exit_2(two_backends, tmp_path, extra, words):
    cache, _ = two_backends
    done = run_memtui("cache", "export", "--cache", cache, *[tmp_path / e if e == "x" else e for e in extra])
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memtui: error:"), done.stderr
    for word in words:
        assert word in lines[0]
    assert not (tmp_path / "x").exists()


def test_parquet_without_pyarrow_names_the_extra(two_backends, tmp_path, monkeypatch):
    import importlib.util

    from memtui.vectors import export as exporting

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(UsageError, match=r"pip install 'memtui\[export\]'"):
        exporting.check_request("parquet", tmp_path / "v.parquet", {})
    assert exporting.available_formats() == ["jsonl", "npy"]


def test_cache_info_names_the_export_formats(two_backends):
    cache, _ = two_backends
    done = run_memtui("cache", "info", "--cache", cache, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["export_formats"] == ["jsonl", "npy", "parquet"]


# -- the reader ---------------------------------------------------------------------------------------


def test_the_reader_gives_rows_backends_and_bounded_matrices(two_backends):
    cache, _ = two_backends
    truth = stored(cache)
    with memtui.open_cache(cache) as reader:
        assert len(reader) == len(truth)
        assert reader.backends() == {"torch": DOMAINS * PER_DOMAIN, INT8: DOMAINS * PER_DOMAIN}
        rows = list(reader)
        assert all(isinstance(r, CacheRow) for r in rows)
        with pytest.raises(AttributeError):
            rows[0].id = "changed"  # type: ignore[misc]
        for row in rows:
            assert row.vector.tobytes() == truth[(row.backend, row.id)][0]
        matrix = reader.vectors(domain="site002.example", backend="torch")
        assert matrix.dtype == np.float32 and matrix.shape == (PER_DOMAIN, 384)
        expected = [r.vector for r in rows if r.backend == "torch" and r.domain == "site002.example"]
        assert np.array_equal(matrix, np.stack(expected))
        with pytest.raises(StoreError, match=r"holds 24 vectors .*max_rows=10"):
            reader.vectors(max_rows=10)


def test_the_reader_refuses_a_link_and_a_foreign_file(two_backends, tmp_path):
    cache, _ = two_backends
    link = tmp_path / "link.sqlite"
    link.symlink_to(cache)
    with pytest.raises(StoreError, match="symbolic link"):
        open_cache(link)
    other = tmp_path / "notes.sqlite"
    other.write_bytes(b"not a database at all")
    with pytest.raises(StoreError, match="not a memtui cache"):
        open_cache(other)
    with pytest.raises(StoreError, match="no cache at"):
        open_cache(tmp_path / "missing.sqlite")


def test_the_reader_reads_while_a_real_run_writes(tmp_path):
    """A real `memtui run` commits batch after batch while the reader counts and reads: every read is a
    consistent snapshot (its count equals its rows), the run is not disturbed, and the end is complete."""
    domains = 40
    inp, cache = write_input(tmp_path / "in.jsonl", domains, 3, words=60), tmp_path / "cache.sqlite"
    proc = popen_memtui("run", "--headless", "--input", inp, "--cache", cache, "--batch-max", "1")
    reads, growing = 0, set()
    try:
        while proc.poll() is None:
            time.sleep(0.05)  # pacing only: the loop ends when the run does
            if not cache.exists() or os.path.getsize(cache) == 0:
                continue
            try:
                reader = open_cache(cache)
            except StoreError as exc:  # the schema may not be written yet
                assert "empty SQLite" in str(exc) or "not a memtui cache" in str(exc), exc
                continue
            with reader, reader.snapshot():
                n = reader.count()
                rows = list(reader.rows())
                assert len(rows) == n
                assert all(r.vector.shape == (384,) for r in rows)
                growing.add(n)
                reads += 1
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert reads > 0
    with open_cache(cache) as reader:
        assert len(reader) == domains * 3
    assert len(growing) > 1, f"the reader only ever saw {growing}: it never read during the run"


# -- a large cache -------------------------------------------------------------------------------------

LARGE = large.ROWS  # the session's large_cache fixture (tests/conftest.py)


PEAK = """
import re, sys
from memtui.cli import main
from memtui.vectors import export  # everything the export imports, before the baseline
import numpy, sqlite3{extra}
def status(field):  # kB; VmHWM, not ru_maxrss, which a child inherits from its parent across fork and exec
    return int(re.search(field + r":\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
base = status("VmRSS")
code = main(sys.argv[1:])
print(f"{{code}} {{(status('VmHWM') - base) * 1024}}", file=sys.stderr)
"""


@pytest.mark.slow  # builds a 200k-row cache
@pytest.mark.parametrize("fmt", ["npy", "parquet"])
def test_a_200k_row_export_stays_within_a_bounded_memory(large_cache, tmp_path, fmt):
    """The export streams: its peak RSS grows by far less than the 293 MiB of vectors it writes (and does not
    grow with the rows: a bound, not a fraction of the data)."""
    extra = ", pyarrow, pyarrow.parquet" if fmt == "parquet" else ""
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    out = tmp_path / f"v.{fmt}"
    done = subprocess.run(
        [sys.executable, "-c", PEAK.format(extra=extra), "cache", "export", "--cache", large_cache, "--format", fmt,
         "--output", out],
        capture_output=True, text=True, timeout=900, env=memtui_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    code, growth = done.stderr.strip().splitlines()[-1].split()
    assert code == "0", done.stderr
    data = LARGE * 384 * 4
    print(f"{fmt}: peak RSS growth {int(growth) / 2**20:.1f} MiB for {data / 2**20:.0f} MiB of vectors")
    # measured: npy 10 MiB (one 1.5 MiB chunk at a time), parquet 93-125 MiB (pyarrow's copies of a row group)
    bound = {"npy": 48, "parquet": 160}[fmt] * 2**20
    assert int(growth) < bound, f"peak RSS grew by {int(growth) / 2**20:.0f} MiB for {data / 2**20:.0f} MiB"
    if fmt == "npy":
        matrix = np.load(out, mmap_mode="r")
        assert matrix.shape == (LARGE, 384)
        with open_cache(large_cache) as reader:
            first = next(iter(reader))
            assert matrix[0].tobytes() == first.vector.tobytes()
            last = reader.vector(key_for(MODEL_ID, f"text {LARGE - 1}"))
            assert last is not None and matrix[-1].tobytes() == last[0].tobytes()
    else:
        import pyarrow.parquet as pq

        assert pq.ParquetFile(out).metadata.num_rows == LARGE
