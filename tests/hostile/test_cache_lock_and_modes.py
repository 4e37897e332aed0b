"""The cache's lock is on the file at the path, and a cache others could read or write is tightened.

Lock: between a run's open of ``<cache>.lock`` and its flock, the holder ends (it unlinks the file while
still holding it, then lets go) and a third run creates the file anew and locks it. The flock on the old,
unlinked inode then succeeds: a run that did not check the path still names the inode it locked would
run beside the third. The race window is opened at the exact point with a hook on ``fcntl.flock``;
the other two runs are real processes.

Modes: a cache its group can read (0640) or write (0660), or others can, becomes 0600 before any run
writes to it, as a world-readable one (0644, tests/test_file_safety.py) does.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from memtui.embed import lock as lock_module
from memtui.embed.lock import CacheBusy, CacheLock, lock_path
from memtui.embed.model import DEFAULT_MODEL_ID
from memtui.embed.store import CacheStore
from tests.support.cli import REPO, memtui, memtui_env
from tests.support.hostile import NOBODY, mode_of, require_root
from tests.support.inputs import write_input

#: A run holding the cache's lock until told to end (stdin closed): then it releases, as a run's end does.
HOLDER = textwrap.dedent("""
    import os, sys
    from memtui.embed.lock import CacheLock
    lock = CacheLock.acquire(sys.argv[1])
    print(os.getpid(), flush=True)
    sys.stdin.read()
    lock.release()
""")


def holder(cache: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(cache)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=memtui_env(),
    )
    assert proc.stdout is not None and int(proc.stdout.readline()) == proc.pid
    return proc


def test_a_lock_taken_on_an_inode_the_path_no_longer_names_is_not_a_lock(tmp_path, monkeypatch):
    cache = tmp_path / "cache.sqlite"
    first = holder(cache)
    third: list[subprocess.Popen[str]] = []
    real_flock = fcntl.flock

    def race(fd: int, op: int) -> None:
        """Between this run's open and its flock: the first run ends, a third takes the lock anew."""
        if not third:
            old = os.fstat(fd)
            first.communicate("", timeout=30)
            third.append(holder(cache))
            assert not os.path.samestat(old, os.lstat(lock_path(cache))), "the path names a new file"
        real_flock(fd, op)

    monkeypatch.setattr(lock_module.fcntl, "flock", race)
    try:
        with pytest.raises(CacheBusy) as refused:
            CacheLock.acquire(cache)
        assert f"in use by another memtui run (pid {third[0].pid}," in str(refused.value)
    finally:
        for proc in third:
            proc.communicate("", timeout=30)
    assert not lock_path(cache).exists(), "the third run removed its lock file as it ended"


def test_a_lock_file_swapped_between_open_and_lock_is_followed_to_the_file_at_the_path(tmp_path, monkeypatch):
    """No holder: the file is unlinked and a new one made in the window. The run must end up holding the
    file the path names (the one the next run will try), not the unlinked one."""
    cache = tmp_path / "cache.sqlite"
    path = lock_path(cache)
    swapped: list[bool] = []
    real_flock = fcntl.flock

    def race(fd: int, op: int) -> None:
        if not swapped:
            swapped.append(True)
            path.unlink()
            path.write_text("")
            path.chmod(0o600)
        real_flock(fd, op)

    monkeypatch.setattr(lock_module.fcntl, "flock", race)
    lock = CacheLock.acquire(cache)
    try:
        assert lock._fd is not None
        assert os.path.samestat(os.fstat(lock._fd), os.lstat(path)), "the lock is on the file at the path"
        assert json.loads(path.read_text())["pid"] == os.getpid()
        monkeypatch.setattr(lock_module.fcntl, "flock", real_flock)
        with pytest.raises(CacheBusy):
            CacheLock.acquire(cache)
    finally:
        lock.release()


# -- a cache its group or others could read or write becomes 0600 ---------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o660, 0o604, 0o620, 0o606], ids=oct)
def test_a_group_or_other_accessible_cache_is_tightened_to_0600(tmp_path, mode):
    require_root()
    cache = tmp_path / "cache.sqlite"
    CacheStore.open(cache, DEFAULT_MODEL_ID).close()
    os.chown(cache, 0, NOBODY)  # a group with someone else in it
    os.chmod(cache, mode)
    CacheStore.open(cache, DEFAULT_MODEL_ID).close()
    assert mode_of(cache) == 0o600


def test_a_0640_cache_is_0600_after_a_real_run(tmp_path):
    cache = tmp_path / "cache.sqlite"
    CacheStore.open(cache, DEFAULT_MODEL_ID).close()
    os.chmod(cache, 0o640)
    done = memtui(
        "run", "--headless", "--input", write_input(tmp_path / "in.jsonl", 2, 2), "--cache", cache, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert mode_of(cache) == 0o600
