"""Files beside the cache on a shared server, as root, in a sticky world-writable folder.

Another user (uid 65534, who also owns the folder, so the kernel's own
protected_symlinks/protected_regular cannot hide a bug) plants links and files
where memtui will write. memtui must never write through them: a planted link
is refused with exit 2 in one line naming it (or, for the trace, skipped with a
warning), a victim file keeps every byte and its mode, another application's
SQLite database is refused before a byte (or its mode) changes, and what memtui
itself creates is 0600 whatever the umask. Also: --report never names the
input or the cache's files, is written atomically, and a full disk is exit 1
with the words "disk full". Real CLI subprocesses, the real model.
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memtui.embed import companions
from memtui.embed.model import DEFAULT_MODEL_ID
from memtui.embed.store import CacheStore
from memtui.trace import MAX_BYTES
from tests.support.cli import memtui, memtui_env
from tests.support.hostile import (
    NOBODY,
    Watched,
    cache_counts,
    error_lines,
    fill_up,
    fingerprint,
    killing,
    make_victim,
    mode_of,
    plant_file,
    plant_link,
    require_root,
    sticky_folder,
    tmpfs,
)
from tests.support.inputs import write_input

pytestmark = [pytest.mark.model, pytest.mark.slow]

DOMAINS, PER_DOMAIN = 4, 3


@pytest.fixture
def shared(tmp_path) -> Path:
    require_root()
    return sticky_folder(tmp_path)


@pytest.fixture
def victim(tmp_path) -> Path:
    return make_victim(tmp_path / "victim.conf")


@pytest.fixture
def inp(tmp_path) -> Path:
    return write_input(tmp_path / "in.jsonl", DOMAINS, PER_DOMAIN)


def run(inp: Path, cache: Path, *extra, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    if umask is None:
        return memtui("run", "--headless", "--input", inp, "--cache", cache, *extra, timeout=120)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "memtui",
            "run",
            "--headless",
            "--input",
            str(inp),
            "--cache",
            str(cache),
            *map(str, extra),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=memtui_env(),
        stdin=subprocess.DEVNULL,
        preexec_fn=lambda: os.umask(umask),
    )


def assert_success(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "success"
    assert report["domains_done"] == DOMAINS
    return report


def assert_refused_in_one_line(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memtui: error:"), done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert done.stdout == ""
    return lines[0]


def make_cache(path: Path) -> Path:
    """An empty but real memtui cache for the packaged model (as an earlier run leaves it)."""
    CacheStore.open(path, DEFAULT_MODEL_ID).close()
    return path


# -- the trace ---------------------------------------------------------------------------------------------


def test_a_link_planted_at_the_trace_is_never_written_through_and_the_run_says_so(shared, victim, inp):
    cache = shared / "cache.sqlite"
    link = plant_link(shared / "cache.sqlite.trace", victim)
    before = fingerprint(victim)

    done = run(inp, cache)

    assert_success(done)
    assert fingerprint(victim) == before
    assert link.is_symlink() and os.readlink(link) == str(victim)
    warned = [line for line in done.stderr.splitlines() if str(link) in line and "link" in line]
    assert warned and warned[0].startswith("WARNING:memtui:"), done.stderr


def test_a_link_at_the_old_fixed_temp_name_is_ignored_when_a_big_trace_compacts(shared, victim, inp):
    cache = shared / "cache.sqlite"
    trace = shared / "cache.sqlite.trace"
    with trace.open("w") as fh:  # an old trace past the limit: this run's begin() compacts it
        fh.write(json.dumps({"at": 1.0, "kind": "begin", "pid": 1}) + "\n")
        n = 0
        while fh.tell() <= MAX_BYTES + 4096:
            fh.write(json.dumps({"at": 2.0 + n, "kind": "samples", "samples": [[2.0 + n, 400_000_000]] * 10}) + "\n")
            n += 1
        fh.write(json.dumps({"at": 9e9, "kind": "end", "status": "success"}) + "\n")
    os.chmod(trace, 0o600)
    assert trace.stat().st_size > MAX_BYTES
    link = plant_link(shared / "cache.sqlite.trace.tmp", victim)
    before = fingerprint(victim)

    assert_success(run(inp, cache))

    assert fingerprint(victim) == before
    assert link.is_symlink() and os.readlink(link) == str(victim)
    st = os.lstat(trace)
    assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
    assert st.st_size <= MAX_BYTES, "the trace was not compacted"
    kinds = [json.loads(line)["kind"] for line in trace.read_text().splitlines()]
    assert kinds[-1] == "end" and "begin" in kinds
    leftovers = [p.name for p in shared.iterdir() if p.name.endswith(".tmp") and p != link]
    assert not leftovers, leftovers


def test_a_fifo_planted_at_the_trace_neither_hangs_the_run_nor_is_written(shared, inp):
    fifo = shared / "cache.sqlite.trace"
    os.mkfifo(fifo)
    os.chown(fifo, NOBODY, NOBODY)

    done = run(inp, shared / "cache.sqlite")  # memtui() times out, and fails the test, if it hangs

    assert_success(done)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert any(str(fifo) in line and "not a file" in line for line in done.stderr.splitlines()), done.stderr


@pytest.mark.parametrize("suffix", [".lock", "-wal", ""])
def test_a_fifo_planted_beside_the_cache_is_refused_in_one_line(shared, inp, suffix):
    fifo = shared / f"cache.sqlite{suffix}"
    os.mkfifo(fifo)
    os.chown(fifo, NOBODY, NOBODY)

    done = run(inp, shared / "cache.sqlite")

    assert_refused_in_one_line(done, str(fifo), "not a file")


def test_the_trace_lock_and_cache_memtui_creates_are_0600_whatever_the_umask(shared, inp):
    cache = shared / "cache.sqlite"

    assert_success(run(inp, cache, umask=0))

    assert mode_of(cache) == 0o600
    trace = shared / "cache.sqlite.trace"
    assert stat.S_ISREG(os.lstat(trace).st_mode) and mode_of(trace) == 0o600
    assert not (shared / "cache.sqlite.lock").exists(), "the lock file outlived the run"
    assert sorted(p.name for p in shared.iterdir()) == ["cache.sqlite", "cache.sqlite.trace"]


def test_the_trace_folder_created_for_a_new_cache_is_0700(tmp_path, inp):
    cache = tmp_path / "new" / "deeper" / "cache.sqlite"

    assert_success(run(inp, cache, umask=0))

    assert mode_of(cache.parent) == 0o700 and mode_of(cache.parent.parent) == 0o700
    assert mode_of(cache.with_name("cache.sqlite.trace")) == 0o600


# -- the cache and its companions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("suffix", "cache_exists"),
    [(suffix, exists) for suffix in ("-wal", "-shm", "-journal", ".lock") for exists in (False, True)] + [("", False)],
    ids=lambda v: {True: "existing-cache", False: "new-cache", "": "cache-itself"}.get(v, v),
)
def test_a_link_beside_the_cache_or_at_it_is_refused_in_one_line_naming_it(shared, victim, inp, suffix, cache_exists):
    cache = shared / "cache.sqlite"
    if cache_exists:
        make_cache(cache)
    link = plant_link(cache.with_name(cache.name + suffix), victim)
    before = fingerprint(victim)
    cache_before = fingerprint(cache) if cache_exists else None
    started = time.monotonic()

    done = run(inp, cache)

    line = assert_refused_in_one_line(done, str(link), "link")
    assert time.monotonic() - started < 60
    assert fingerprint(victim) == before
    assert link.is_symlink() and os.readlink(link) == str(victim)
    if cache_exists:
        assert fingerprint(cache) == cache_before
    names = sorted(p.name for p in shared.iterdir())
    expected = sorted({link.name, *(["cache.sqlite"] if cache_exists else [])})
    assert names == expected, (names, line)


def test_a_cache_owned_by_another_user_is_refused_naming_owner_and_mode_and_left_alone(shared, inp):
    cache = make_cache(shared / "cache.sqlite")
    os.chown(cache, NOBODY, NOBODY)
    os.chmod(cache, 0o644)
    before = fingerprint(cache)

    done = run(inp, cache)

    assert_refused_in_one_line(done, str(cache), "another user", "owner nobody", "-rw-r--r--")
    assert fingerprint(cache) == before
    assert sorted(p.name for p in shared.iterdir()) == ["cache.sqlite"]


def test_a_companion_owned_by_another_user_is_refused(shared, inp):
    cache = make_cache(shared / "cache.sqlite")
    wal = plant_file(shared / "cache.sqlite-wal", b"", owner=NOBODY, mode=0o666)
    before = fingerprint(cache), fingerprint(wal)

    done = run(inp, cache)

    assert_refused_in_one_line(done, str(wal), "another user")
    assert (fingerprint(cache), fingerprint(wal)) == before


def test_a_world_readable_cache_becomes_0600(shared, inp):
    cache = make_cache(shared / "cache.sqlite")
    os.chmod(cache, 0o644)

    assert_success(run(inp, cache))

    assert mode_of(cache) == 0o600


def test_a_world_readable_cache_wal_and_shm_become_0600(shared, inp):
    cache = make_cache(shared / "cache.sqlite")
    os.chmod(cache, 0o644)
    wal, shm = shared / "cache.sqlite-wal", shared / "cache.sqlite-shm"
    reader = sqlite3.connect(cache)  # keeps the -wal and -shm alive through the run (SQLite drops them
    try:  # when the last connection closes)
        reader.execute("SELECT count(*) FROM meta").fetchone()
        assert wal.exists() and shm.exists()
        os.chmod(wal, 0o644)
        os.chmod(shm, 0o644)

        assert_success(run(inp, cache))

        assert wal.exists() and shm.exists(), "the companions should still be there while a reader is open"
        assert (mode_of(cache), mode_of(wal), mode_of(shm)) == (0o600, 0o600, 0o600)
        assert reader.execute("SELECT count(*) FROM responses").fetchone()[0] == DOMAINS * PER_DOMAIN
    finally:
        reader.close()


# -- another application's SQLite database -----------------------------------------------------------------


def _rollback_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode=DELETE")
    con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    con.executemany("INSERT INTO customers(name) VALUES (?)", [(f"c{i}",) for i in range(200)])
    con.commit()
    con.close()


def _view_only_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE VIEW answer AS SELECT 42 AS value")
    con.commit()
    con.close()


def _wal_db(path: Path) -> None:
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    con.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
    con.executemany("INSERT INTO events(what) VALUES (?)", [(f"e{i}",) for i in range(200)])
    con.commit()
    con.close()


def _objects_and_journal(path: Path) -> tuple[list[tuple], str]:
    con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
    try:
        return (
            con.execute("SELECT type, name, sql FROM sqlite_master ORDER BY name").fetchall(),
            "wal" if path.read_bytes()[18] == 2 else "rollback",
        )
    finally:
        con.close()


@pytest.mark.parametrize("make", [_rollback_db, _view_only_db, _wal_db], ids=["rollback", "view-only", "wal"])
def test_another_applications_database_is_refused_before_a_byte_changes(shared, inp, make):
    db = shared / "app.db"
    make(db)
    os.chmod(db, 0o644)  # the other application's readers rely on this mode
    before = fingerprint(db)
    objects_before = _objects_and_journal(db)
    names_before = sorted(p.name for p in shared.iterdir())

    done = run(inp, db)

    assert_refused_in_one_line(done, str(db), "not a memtui cache")
    assert fingerprint(db) == before  # every byte, and the mode
    assert _objects_and_journal(db) == objects_before
    assert sorted(p.name for p in shared.iterdir()) == names_before  # no -wal, -shm, -journal or .lock left


@pytest.mark.parametrize("what", ["input", "text"])
def test_a_file_that_is_not_a_database_passed_as_cache_keeps_its_bytes_and_mode(tmp_path, inp, what):
    """--cache in.jsonl by mistake (or any text file): refused, and not even chmodded."""
    path = inp if what == "input" else tmp_path / "notes.txt"
    if what == "text":
        path.write_text("shared notes\n")
    os.chmod(path, 0o644)
    before = fingerprint(path)

    done = run(inp, path)

    assert_refused_in_one_line(done, str(path), "not a memtui cache")
    assert fingerprint(path) == before


def test_a_wal_database_another_application_has_open_is_refused_and_its_files_keep_their_modes(shared, inp):
    db = shared / "app.db"
    _wal_db(db)
    os.chmod(db, 0o644)
    app = sqlite3.connect(db)  # the application is running: uncheckpointed writes sit in its -wal
    try:
        app.execute("PRAGMA wal_autocheckpoint=0")
        app.execute("INSERT INTO events(what) VALUES ('live')")
        app.commit()
        wal, shm = shared / "app.db-wal", shared / "app.db-shm"
        os.chmod(wal, 0o644)
        os.chmod(shm, 0o644)
        before = fingerprint(db), fingerprint(wal)
        modes = mode_of(shm)
        names_before = sorted(p.name for p in shared.iterdir())

        done = run(inp, db)

        assert_refused_in_one_line(done, str(db), "not a memtui cache")
        assert (fingerprint(db), fingerprint(wal)) == before
        assert mode_of(shm) == modes
        assert sorted(p.name for p in shared.iterdir()) == names_before
        assert app.execute("SELECT count(*) FROM events").fetchone()[0] == 201
    finally:
        app.close()


def test_a_hard_link_to_a_victim_at_the_trace_is_not_appended_to(shared, victim, inp):
    """Where fs.protected_hardlinks is off, a user can link root's file into the shared folder."""
    cache = shared / "cache.sqlite"
    os.link(victim, shared / "cache.sqlite.trace")
    before = fingerprint(victim)

    done = run(inp, cache)

    assert_success(done)
    assert fingerprint(victim) == before


# -- --report -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    ["cache", "input", "link-to-cache", "link-to-input", "relative-cache"] + [f"cache{s}" for s in companions.SUFFIXES],
)
@pytest.mark.parametrize("cache_exists", [False, True], ids=["no-cache", "cache"])
def test_a_report_naming_the_input_or_the_cache_files_is_refused_before_any_work(tmp_path, inp, target, cache_exists):
    cache = tmp_path / "cache.sqlite"
    if cache_exists:
        make_cache(cache)
        for suffix in companions.SUFFIXES:  # every file beside the cache, named once
            companions.companion(cache, suffix).write_bytes(b"")
    report = {
        "cache": cache,
        "input": inp,
        **{f"cache{s}": tmp_path / f"cache.sqlite{s}" for s in companions.SUFFIXES},
        "link-to-cache": tmp_path / "r1.json",
        "link-to-input": tmp_path / "r2.json",
        "relative-cache": Path(os.path.relpath(cache, Path.cwd())),
    }[target]
    if target == "link-to-cache":
        report.symlink_to(cache)
    if target == "link-to-input":
        report.symlink_to(inp)
    before = {p: fingerprint(p) for p in tmp_path.iterdir() if p.is_file() and not p.is_symlink()}
    started = time.monotonic()

    done = run(inp, cache, "--report", report)

    assert_refused_in_one_line(done, "--report")
    assert time.monotonic() - started < 30
    assert {p: fingerprint(p) for p in tmp_path.iterdir() if p.is_file() and not p.is_symlink()} == before
    assert cache.exists() == cache_exists


def test_a_report_replaces_a_link_at_its_path_and_leaves_the_target_alone(tmp_path, inp, victim):
    cache = tmp_path / "cache.sqlite"
    report = tmp_path / "out" / "report.json"
    report.parent.mkdir()
    report.symlink_to(victim)
    before = fingerprint(victim)

    done = run(inp, cache, "--report", report)

    assert_success(done)
    assert fingerprint(victim) == before
    assert not report.is_symlink() and report.is_file()
    assert json.loads(report.read_text()) == json.loads(done.stdout)
    assert [p.name for p in report.parent.iterdir()] == ["report.json"], "a temp file was left behind"


def test_a_report_under_a_file_is_refused_before_any_work(tmp_path, inp):
    cache = tmp_path / "cache.sqlite"
    done = run(inp, cache, "--report", inp.with_name("in.jsonl") / "report.json")
    assert_refused_in_one_line(done, "--report", "cannot write")
    assert not cache.exists()


def test_a_report_on_a_read_only_disk_is_refused_before_any_work(tmp_path, inp):
    cache = tmp_path / "cache.sqlite"
    with tmpfs(tmp_path / "ro", "64k") as ro:
        if subprocess.run(["mount", "-o", "remount,ro", str(ro)], capture_output=True).returncode != 0:
            pytest.skip("cannot remount the tmpfs read-only")
        done = run(inp, cache, "--report", ro / "report.json")
    assert_refused_in_one_line(done, "--report", "cannot write")
    assert not cache.exists()


def test_a_report_that_cannot_be_written_after_the_run_is_exit_1_with_the_report_on_stdout(tmp_path, inp):
    cache = tmp_path / "cache.sqlite"
    with tmpfs(tmp_path / "full", "64k") as full:
        fill_up(full)
        done = run(inp, cache, "--report", full / "report.json")
        assert not (full / "report.json").exists()
        assert [p.name for p in full.iterdir()] == ["filler"], "a temp file was left behind"
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "success" and report["domains_done"] == DOMAINS
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "report" in errors[0] and "stdout" in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert cache_counts(cache)["responses"] == DOMAINS * PER_DOMAIN


# -- a full disk --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("free_kib", [0, 4, 8, 12, 16, 24, 32, 48, 64, 128])
@pytest.mark.parametrize("folder", ["", "new/"], ids=["folder-exists", "new-folder"])
def test_a_full_disk_while_creating_the_cache_is_exit_1_saying_disk_full(tmp_path, inp, free_kib, folder):
    """Each amount of room left fails cache creation at another step (lock file, header, -wal, -shm, schema)."""
    with tmpfs(tmp_path / "disk", "300k") as disk:
        filler = fill_up(disk)
        os.truncate(filler, max(0, filler.stat().st_size - free_kib * 1024))
        done = run(inp, disk / folder / "cache.sqlite")
        left = sorted(str(p.relative_to(disk)) for p in disk.rglob("*"))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1, done.stderr
    if "not enough free disk" in errors[0]:  # the cache was made; memtui's free-space check refused the work
        return
    assert "disk full" in errors[0], done.stderr
    assert left == ["filler"], left  # what a failed creation made is gone


def test_a_disk_that_fills_up_while_running_is_exit_1_saying_disk_full(tmp_path):
    """The disk passes memtui's free-space check, then another process fills it mid-run."""
    inp = write_input(tmp_path / "in.jsonl", 30, 6)
    with tmpfs(tmp_path / "disk", "80m") as disk:
        cache = disk / "cache.sqlite"
        w = Watched(["run", "--headless", "--input", inp, "--cache", cache, "--batch-max", "1"])
        with killing(w):
            w.wait_for("Batch 2 committed")
            fill_up(disk)
            code = w.wait(180)
        assert code == 1, w.stderr
        report = json.loads(w.stdout)
        counts = cache_counts(cache)
    assert report["status"] == "failed"
    assert "disk full" in report["error"]
    assert any("disk full" in line for line in w.stderr.splitlines() if line.startswith("ERROR:")), w.stderr
    assert "Traceback" not in w.stderr
    assert 2 <= counts["domains"] < 30
    assert counts["responses"] >= report["items"]
