"""memtui cache export's output and the reader's open, on a shared server.

The output follows memtui/output.py's one rule (as --report does): never the cache or a file beside
it, a device or FIFO written into and never replaced, '-' is stdout, anything else a private temp
file renamed into place only when the export succeeded. The reader opens the cache read-only after
the store's checks: no link, a regular file of ours, its companions too. Device nodes are made with
mknod in a temp folder, so the real /dev is never at risk.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.store import CacheStore, DomainSummary, key_for
from memtui.records import Response
from tests.support.cli import memtui, memtui_env
from tests.support.hostile import NOBODY, error_lines, fingerprint, make_victim, plant_link, require_root

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
ROWS = 50
NULL, FULL, LOOP = (1, 3), (1, 7), (7, 0)


@pytest.fixture
def cache(tmp_path) -> Path:
    """A cache of ROWS rows made through the store's API (random unit vectors; no model needed)."""
    path = tmp_path / "cache.sqlite"
    rng = np.random.default_rng(11)
    responses = [Response(f"r{i:03d}", f"d{i % 5}.example", "claude", "trust", f"text {i}", i) for i in range(ROWS)]
    block = rng.standard_normal((ROWS, 384)).astype(np.float32)
    block /= np.linalg.norm(block, axis=1, keepdims=True)
    with CacheStore.open(path, MODEL_ID) as store:
        summaries = [DomainSummary(f"d{d}.example", ROWS // 5, {}, None, 0.0) for d in range(5)]
        store.commit_batch({key_for(MODEL_ID, r.text): v for r, v in zip(responses, block)}, responses, summaries)
    return path


def export(cache: Path, out: Path | str, fmt: str = "jsonl", **kw) -> subprocess.CompletedProcess[str]:
    return memtui("cache", "export", "--cache", cache, "--format", fmt, "--output", out, timeout=300, **kw)


def one_error(done: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert done.returncode == code, (done.returncode, done.stderr)
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


def node_identity(path: Path) -> tuple[int, int, int, int]:
    st = os.lstat(path)
    return st.st_mode, st.st_rdev, st.st_uid, st.st_ino


def make_node(path: Path, kind: int, numbers: tuple[int, int] = (0, 0)) -> Path:
    require_root()
    os.mknod(path, kind | 0o666, os.makedev(*numbers))
    if stat.S_ISCHR(kind):
        try:
            os.close(os.open(path, os.O_WRONLY))
        except OSError as exc:
            pytest.skip(f"device nodes cannot be opened in {path.parent} (a nodev mount?): {exc}")
    return path


def db_bytes(cache: Path) -> bytes:
    return cache.read_bytes()


# -- never over the cache or what is beside it ------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm", ".lock", ".trace"])
def test_an_export_over_the_cache_or_a_companion_is_refused_before_any_work(cache, suffix):
    target = cache.with_name(cache.name + suffix)
    if not target.exists():
        target.write_bytes(b"")
        target.chmod(0o600)
    before = fingerprint(target), db_bytes(cache)

    one_error(export(cache, target), 2, "--output", "destroy")

    assert (fingerprint(target), db_bytes(cache)) == before


def test_a_link_to_the_cache_as_the_output_is_refused(cache, tmp_path):
    link = tmp_path / "out.jsonl"
    link.symlink_to(cache)
    before = db_bytes(cache)
    one_error(export(cache, link), 2, "the cache")
    assert db_bytes(cache) == before and link.is_symlink()


# -- devices and FIFOs are written into, never replaced ---------------------------------------------------


def test_an_export_onto_a_null_device_writes_into_it_and_keeps_the_node(cache, tmp_path):
    null = make_node(tmp_path / "null", stat.S_IFCHR, NULL)
    before = node_identity(null)
    done = export(cache, null, "parquet")
    assert done.returncode == 0, done.stderr
    assert node_identity(null) == before, "the device node was replaced"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".null")], "a temp file was left behind"


def test_an_export_onto_a_full_device_is_exit_1_in_one_line_and_keeps_the_node(cache, tmp_path):
    full = make_node(tmp_path / "full", stat.S_IFCHR, FULL)
    before = node_identity(full)
    one_error(export(cache, full), 1, "No space left", str(full))
    assert node_identity(full) == before


def test_an_export_onto_a_block_device_is_refused(cache, tmp_path):
    block = make_node(tmp_path / "loop", stat.S_IFBLK, LOOP)
    before = node_identity(block)
    one_error(export(cache, block), 2, "block device")
    assert node_identity(block) == before


def test_a_parquet_export_into_a_fifo_reaches_its_reader_and_keeps_the_fifo(cache, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo, 0o600)
    before = node_identity(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()

    done = export(cache, fifo, "parquet")

    assert done.returncode == 0, done.stderr
    reader.join(60)
    assert not reader.is_alive()
    table = pq.read_table(pa.BufferReader(got[0]))
    assert table.num_rows == ROWS and table.schema.field("vector").type == pa.list_(pa.float32(), 384)
    assert node_identity(fifo) == before


def test_an_npy_export_into_a_fifo_or_stdout_is_refused_it_needs_two_files(cache, tmp_path):
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo, 0o600)
    one_error(export(cache, fifo, "npy"), 2, "two files")
    one_error(export(cache, "-", "npy"), 2, "two files")


@pytest.mark.parametrize("name", ["-", "/dev/fd/1"])  # not /dev/stdout: a regression would rename over it
def test_an_export_to_stdout_prints_the_rows_and_touches_no_file(cache, tmp_path, name):
    work = tmp_path / "cwd"
    work.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "memtui", "cache", "export", "--cache", str(cache), "--format", "jsonl", "--output",
         name],
        capture_output=True, text=True, timeout=300, env=memtui_env(), stdin=subprocess.DEVNULL, cwd=work,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == ROWS and len(rows[0]["vector"]) == 384
    assert list(work.iterdir()) == []


def test_an_export_to_stdout_whose_reader_leaves_early_ends_quietly_and_claims_no_success(cache):
    """`memtui cache export --output - | head -1`: the reader took what it wanted. No traceback, no error line,
    no "exported N rows"; the status is a pipe's (141), not success, as for a tool that SIGPIPE ends."""
    assert ROWS * 384 * 8 > 2 * 65536  # more than a pipe holds: the writer meets the closed pipe
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtui", "cache", "export", "--cache", str(cache), "--format", "jsonl", "--output",
         "-"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=memtui_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    assert json.loads(proc.stdout.readline())["key"]
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 141, stderr
    assert "Traceback" not in stderr and "exported" not in stderr and not error_lines(stderr), stderr


# -- a file is replaced whole, and only on success -------------------------------------------------------------


def test_a_planted_link_at_the_output_is_replaced_and_its_target_untouched(cache, tmp_path):
    require_root()
    victim = make_victim(tmp_path / "victim")
    before = fingerprint(victim)
    out = plant_link(tmp_path / "out.jsonl", victim)

    done = export(cache, out)

    assert done.returncode == 0, done.stderr
    assert fingerprint(victim) == before
    assert not out.is_symlink() and len(out.read_text().splitlines()) == ROWS
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_an_export_that_fails_midway_leaves_the_old_file_and_no_temp_file(cache, tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text("the previous export\n")
    con = sqlite3.connect(cache)
    con.execute("UPDATE embeddings SET vector = x'00' WHERE rowid = (SELECT max(rowid) FROM embeddings)")
    con.commit()
    con.close()

    one_error(export(cache, out), 1, "damaged vector")

    assert out.read_text() == "the previous export\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []


# -- the reader's open ----------------------------------------------------------------------------------------


def test_the_reader_writes_nothing_into_the_cache(cache, tmp_path):
    before = db_bytes(cache)
    assert export(cache, tmp_path / "a.npy", "npy").returncode == 0
    assert memtui("similar", "--key", key_for(MODEL_ID, "text 3").hex(), "--cache", cache).returncode == 0
    assert db_bytes(cache) == before


def test_a_cache_that_is_a_link_planted_by_another_user_is_refused(cache, tmp_path):
    require_root()
    link = plant_link(tmp_path / "shared.sqlite", cache)
    one_error(export(link, tmp_path / "out.jsonl"), 2, "symbolic link")
    one_error(memtui("similar", "x", "--cache", link), 2, "symbolic link")
    one_error(memtui("cache", "info", "--cache", link), 2, "symbolic link")
    assert not (tmp_path / "out.jsonl").exists()


def test_another_users_cache_is_refused_and_left_alone(cache, tmp_path):
    require_root()
    os.chown(cache, NOBODY, NOBODY)
    before = fingerprint(cache)
    one_error(export(cache, tmp_path / "out.jsonl"), 2, "another user")
    one_error(memtui("cache", "info", "--cache", cache), 2, "another user")
    assert fingerprint(cache) == before


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_companion_planted_as_a_link_is_refused_and_its_target_untouched(cache, tmp_path, suffix):
    require_root()
    victim = make_victim(tmp_path / "victim")
    before = fingerprint(victim)
    side = cache.with_name(cache.name + suffix)
    side.unlink(missing_ok=True)
    plant_link(side, victim)
    one_error(export(cache, tmp_path / "out.jsonl"), 2, "symbolic link", suffix)
    assert fingerprint(victim) == before


def test_a_device_as_the_cache_is_refused(tmp_path):
    null = make_node(tmp_path / "null", stat.S_IFCHR, NULL)
    one_error(export(null, tmp_path / "out.jsonl"), 2, "not a file")
    one_error(export(tmp_path / "missing.sqlite", tmp_path / "out.jsonl"), 2, "no cache at")
    assert not (tmp_path / "out.jsonl").exists()


def test_bytes_written_to_stdout_are_the_same_as_a_file(cache, tmp_path):
    out = tmp_path / "out.jsonl"
    assert export(cache, out).returncode == 0
    done = subprocess.run(
        [sys.executable, "-m", "memtui", "cache", "export", "--cache", str(cache), "--format", "jsonl", "--output",
         "-"],
        capture_output=True, timeout=300, env=memtui_env(), stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.stdout == out.read_bytes()
    assert io.BytesIO(done.stdout).read().count(b"\n") == ROWS
