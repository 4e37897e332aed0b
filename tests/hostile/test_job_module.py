"""``--job MODULE:FUNCTION`` imports the operator's code as the invoking user (often root): never code that
another user could have written or changed, and the results file by the cache's rules (no links, ours only).

Each planted module writes a marker when imported: a refusal must come before any of its code runs.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import memtui_env
from tests.support.hostile import NOBODY, fingerprint, make_victim, plant_link, require_root, sticky_folder

MODULE = "import pathlib\npathlib.Path({marker!r}).write_text('imported')\ndef f(items):\n    return items\n"


def _module(folder: Path, marker: Path, name: str = "plantmod", mode: int = 0o644) -> Path:
    path = folder / f"{name}.py"
    path.write_text(MODULE.format(marker=str(marker)))
    path.chmod(mode)
    return path


def _items(tmp_path: Path) -> Path:
    path = tmp_path / "items.jsonl"
    path.write_text('{"id": 1, "text": "a"}\n')
    return path


def _run(
    tmp_path: Path,
    *,
    cwd: Path | None = None,
    pythonpath: Path | str | None = None,
    output: Path | None = None,
    job: str = "plantmod:f",
):
    env = memtui_env(XDG_CACHE_HOME=str(tmp_path / "xdg-cache"))
    env.pop("PYTHONPATH", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    args = ["run", "--job", job, "--input", str(_items(tmp_path)), "--headless"]
    args += ["--output", str(output or tmp_path / "r.sqlite")]
    return subprocess.run(
        [sys.executable, "-m", "memtui", *args],
        cwd=cwd or tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def _refused(done: subprocess.CompletedProcess[str], words: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1 and words in lines[0], done.stderr


def test_a_module_in_a_folder_others_can_write_is_not_imported(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    marker = tmp_path / "marker"
    _module(shared, marker)
    _refused(_run(tmp_path, pythonpath=shared), "memtui does not import from")
    assert not marker.exists()


def test_a_module_in_a_sticky_shared_folder_is_not_imported(tmp_path):
    require_root()
    shared = sticky_folder(tmp_path)
    marker = tmp_path / "marker"
    _module(shared, marker)
    _refused(_run(tmp_path, pythonpath=shared), "memtui does not import from")
    assert not marker.exists()


def test_a_module_file_others_can_write_is_not_imported(tmp_path):
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    marker = tmp_path / "marker"
    path = _module(own, marker)
    path.chmod(0o666)
    _refused(_run(tmp_path, pythonpath=own), "chmod go-w")
    assert not marker.exists()


def test_a_module_file_of_another_user_is_not_imported_by_root(tmp_path):
    require_root()
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    marker = tmp_path / "marker"
    os.chown(_module(own, marker), NOBODY, NOBODY)
    _refused(_run(tmp_path, pythonpath=own), "is not a file only root or you can write")
    assert not marker.exists()


def test_a_shared_current_folder_is_not_searched(tmp_path):
    """``cd /tmp && memtui run --job x:f``: another user's x.py (or a module x imports) would be picked up."""
    require_root()
    shared = sticky_folder(tmp_path)
    marker = tmp_path / "marker"
    _module(shared, marker)
    done = _run(tmp_path, cwd=shared, output=tmp_path / "r.sqlite")
    _refused(done, "writable by others, so it is not searched")
    assert not marker.exists()


def test_the_module_in_a_private_folder_runs(tmp_path):
    """The rule's other side: the operator's own module, in a folder of theirs, is imported and run."""
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    marker = tmp_path / "marker"
    _module(own, marker)
    done = _run(tmp_path, pythonpath=own)
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "imported"


def test_a_results_file_planted_as_a_link_is_refused(tmp_path):
    require_root()
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    _module(own, tmp_path / "marker")
    shared = sticky_folder(tmp_path, "drop")
    victim = make_victim(tmp_path / "victim")
    before = fingerprint(victim)
    link = plant_link(shared / "r.sqlite", victim)
    done = _run(tmp_path, pythonpath=own, output=link)
    assert done.returncode == 2 and "symbolic link" in done.stderr, done.stderr
    assert fingerprint(victim) == before


def test_a_foreign_database_is_not_taken_for_a_results_file(tmp_path):
    own = tmp_path / "own"
    own.mkdir(mode=0o700)
    _module(own, tmp_path / "marker")
    other = tmp_path / "app.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE accounts (id INTEGER)")
    con.commit()
    con.close()
    before = fingerprint(other)
    done = _run(tmp_path, pythonpath=own, output=other)
    assert done.returncode == 2 and "not a memtui results file" in done.stderr, done.stderr
    assert fingerprint(other) == before


@pytest.mark.parametrize("target", ["link", "foreign"])
def test_memtui_results_reads_no_link_and_no_foreign_database(tmp_path, target):
    victim = tmp_path / "victim.sqlite"
    con = sqlite3.connect(victim)
    con.execute("CREATE TABLE secrets (v TEXT)")
    con.commit()
    con.close()
    path = tmp_path / "r.sqlite"
    if target == "link":
        os.symlink(victim, path)
    else:
        path = victim
    done = subprocess.run(
        [sys.executable, "-m", "memtui", "results", str(path)],
        env=memtui_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert ("symbolic link" if target == "link" else "not a memtui results file") in done.stderr


def test_an_input_rewritten_under_a_job_ends_it_keeping_what_was_committed(tmp_path):
    """The cache job's rule (jobs/input_watch.py) for a job: other bytes than the scan read end the run, exit 2."""
    from tests.jobs.user_job_support import committed, job_env, job_folder, write_items

    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", [f"t{i}" for i in range(400)])
    args = ["run", "--job", "jobmod:slow", "--input", str(items), "--output", str(out), "--headless"]
    args += ["--job-batch", "4", "--batch-max", "2", "--batch-min", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtui", *args],
        env=job_env(folder, calls, JOB_SLEEP="0.05"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and committed(out) >= 8):
            assert proc.poll() is None and time.monotonic() < deadline, "no results committed in time"
            time.sleep(0.05)
        write_items(items, [f"t{i}" if i != 300 else "rewritten" for i in range(400)])  # one line changed
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 2, stderr
    assert "input" in stderr and "rerun once the file is complete" in stderr and "pieces" in stderr, stderr
    assert committed(out) >= 8


# -- every level of a dotted name, every search path entry, and the bytecode are checked before code runs ---


def _private(folder: Path) -> Path:
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder.chmod(0o755)
    return folder


def test_a_submodule_others_can_write_is_refused_before_its_package_runs_it(tmp_path):
    jobs = _private(tmp_path / "jobs")
    package = _private(jobs / "rpkg")
    marker = tmp_path / "marker"
    (package / "__init__.py").write_text("")
    _module(package, marker, name="sub", mode=0o666)
    _refused(_run(tmp_path, cwd=jobs, job="rpkg.sub:f"), "is not a file only root or you can write")
    assert not marker.exists()  # the check came before the import, not after it


def test_a_namespace_package_in_a_shared_folder_is_refused_before_it_runs(tmp_path):
    shared = tmp_path / "pub"
    shared.mkdir()
    shared.chmod(0o1777)
    namespace = shared / "nspkg"
    namespace.mkdir()
    namespace.chmod(0o777)
    marker = tmp_path / "marker"
    _module(namespace, marker, name="mod")
    _refused(_run(tmp_path, pythonpath=shared, job="nspkg.mod:f"), "memtui does not import from")
    assert not marker.exists()


def test_a_shared_folder_anywhere_on_pythonpath_is_refused_before_the_job_imports_from_it(tmp_path):
    """The job module is safe, but its own `import helperx` would search every PYTHONPATH entry."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    marker = tmp_path / "marker"
    _module(shared, marker, name="helperx")
    jobs = _private(tmp_path / "jobs")
    (jobs / "okjob.py").write_text("import helperx\n\ndef f(items):\n    return items\n")
    _refused(_run(tmp_path, pythonpath=f"{shared}:{jobs}", job="okjob:f"), "on the module search path")
    assert not marker.exists()


def test_bytecode_planted_in_a_pycache_others_can_write_is_never_read(tmp_path):
    """A root-owned module beside a __pycache__ of another user: its .pyc, stamped to match, must not run."""
    require_root()
    import importlib._bootstrap_external as bootstrap  # the stdlib's own pyc writer, to stamp the fake exactly

    jobs = _private(tmp_path / "jobs2")
    source = jobs / "pj.py"
    source.write_text("def f(items):\n    return [{'honest': True} for _ in items]\n")
    marker = tmp_path / "marker"
    evil = compile(MODULE.format(marker=str(marker)), str(source), "exec")
    st = source.stat()
    cache = jobs / "__pycache__"
    cache.mkdir()
    os.chown(cache, NOBODY, NOBODY)
    pyc = Path(bootstrap.cache_from_source(str(source)))
    assert pyc.parent == cache
    pyc.write_bytes(bootstrap._code_to_timestamp_pyc(evil, st.st_mtime, st.st_size))
    os.chown(pyc, NOBODY, NOBODY)
    done = _run(tmp_path, cwd=jobs, job="pj:f")
    assert done.returncode == 0, done.stderr
    assert not marker.exists()


def test_another_functions_results_file_is_refused_not_reused(tmp_path):
    jobs = _private(tmp_path / "jobs")
    (jobs / "one.py").write_text("def f(items):\n    return ['one' for _ in items]\n")
    (jobs / "two.py").write_text("def g(items):\n    return ['two' for _ in items]\n")
    out = tmp_path / "r.sqlite"
    assert _run(tmp_path, cwd=jobs, job="one:f", output=out).returncode == 0
    _refused(_run(tmp_path, cwd=jobs, job="two:g", output=out), "holds the results of job one:f, not two:g")


def test_a_cleanup_hook_that_exits_is_logged_and_skipped():
    from memtui.jobs.user import hooks

    ran = []
    hooks.clear_hooks()
    try:
        hooks.on_cleanup(lambda: sys.exit(0))
        hooks.on_cleanup(lambda: ran.append("after"))
        assert len(hooks.run_hooks(unloading=False)) == 1  # the exiting hook is skipped, the run goes on
        assert ran == ["after"]
    finally:
        hooks.clear_hooks()


def test_a_result_nested_deeper_than_json_fails_its_item_not_the_run():
    from memtui.jobs.user.executor import Encoded, Failed, _encoded

    deep: list = []
    for _ in range(200_000):
        deep = [deep]
    assert isinstance(_encoded(deep), Failed)
    assert _encoded({"ok": [1, 2]}) == Encoded('{"ok": [1, 2]}')


def _results_file(path: Path) -> Path:
    from memtui.jobs.user.results import ResultsStore

    store = ResultsStore.open(path, "plantmod:f")
    try:
        store.commit([('"a"', b"0" * 16, 1, '{"x": 1}'), ('"b"', b"1" * 16, 2, "[2]")], [])
    finally:
        store.close()
    return path


DEEP = "[" * 100_000 + "]" * 100_000
RECURSIVE_VIEW = (
    "DROP TABLE results; CREATE VIEW results AS WITH RECURSIVE r(key, fingerprint, line, result) AS "
    "(SELECT '\"k\"', x'00', 1, '1' UNION ALL SELECT key, fingerprint, line + 1, result FROM r) SELECT * FROM r"
)
DAMAGE = {
    "nested past any parser": (f"UPDATE results SET result = '{DEEP}' WHERE key = '\"b\"'", "'b'"),
    "not JSON": ("UPDATE results SET result = '{\"x\": ' WHERE key = '\"b\"'", "'b'"),
    "a recursive view": (RECURSIVE_VIEW, None),
    "a trigger": ("CREATE TRIGGER t AFTER INSERT ON results BEGIN DELETE FROM meta; END", None),
    "a row over two lines": ("UPDATE results SET result = '[1,' || char(10) || '2]' WHERE key = '\"b\"'", "'b'"),
    "a key that is not JSON": ("UPDATE results SET key = '{bad' WHERE key = '\"b\"'", "'{bad'"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_memtui_results_on_a_damaged_or_planted_file_is_one_line_never_a_traceback_or_a_hang(tmp_path, case):
    """Found by an attacker pass: a RecursionError or JSONDecodeError traceback, or a read that never ended
    (a recursive VIEW named results). The schema is checked before any table is read; every row's text is
    checked by SQLite before it is used."""
    from memtui.errors import StoreError
    from memtui.jobs.user.results import read_results

    path = _results_file(tmp_path / "r.sqlite")
    sql, key = DAMAGE[case]
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.close()
    done = subprocess.run(
        [sys.executable, "-m", "memtui", "results", str(path)],
        env=memtui_env(),
        capture_output=True,
        text=True,
        timeout=120,  # the old code never returned on the view
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert str(path) in line and "Traceback" not in done.stderr
    if key is not None:
        assert f"key {key}" in line
    if case != "a recursive view":
        with pytest.raises(StoreError, match="results file"):
            list(read_results(path))


def test_memtui_results_writes_a_stored_result_as_it_is():
    """The export copies each stored JSON text once (it never parses and encodes a 200 MB result again)."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = _results_file(Path(folder) / "r.sqlite")
        done = subprocess.run(
            [sys.executable, "-m", "memtui", "results", str(path)],
            env=memtui_env(),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout == '{"key": "a", "result": {"x": 1}}\n{"key": "b", "result": [2]}\n'


def test_a_wal_of_another_results_file_is_refused_and_never_applied(tmp_path):
    """The cache's WAL-owner rule, now the results file's too: a -wal beside it (copied, or planted) that is
    another results file's would have replaced its content, for a run and for `memtui results`."""
    from memtui.errors import StoreError
    from memtui.jobs.user.results import ResultsStore

    mine = _results_file(tmp_path / "mine" / "r.sqlite")
    other = tmp_path / "other" / "r.sqlite"
    store = ResultsStore.open(other, "plantmod:f")
    try:
        store.commit([('"z"', b"2" * 16, 1, '"planted"')], [])
        planted = other.with_name("r.sqlite-wal").read_bytes()
    finally:
        store.close()
    wal = mine.with_name("r.sqlite-wal")
    wal.write_bytes(planted)
    wal.chmod(0o600)
    before = fingerprint(mine), fingerprint(wal)
    with pytest.raises(StoreError, match="is not this results file's: it holds another memtui results file's"):
        ResultsStore.open(mine, "plantmod:f")
    done = subprocess.run(
        [sys.executable, "-m", "memtui", "results", str(mine)],
        env=memtui_env(),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2 and "planted" not in done.stdout
    [line] = done.stderr.strip().splitlines()
    assert f"{wal} beside results file {mine} is not this results file's" in line
    assert (fingerprint(mine), fingerprint(wal)) == before  # never applied
    wal.unlink()
    assert [r["key"] for r in results_of(mine)] == ["a", "b"]


def results_of(path: Path) -> list[dict]:
    from memtui.jobs.user.results import read_results

    return list(read_results(path))
