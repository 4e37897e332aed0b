"""One run per cache: real memtui processes, the real model, real locks and a real SIGKILL.

A second run on a cache in use exits 2 at once naming the first's pid (and
says nothing about the first having "ended abnormally"); ``cache info`` reads
the cache meanwhile; the first finishes complete. A lock left by a SIGKILLed
run blocks nothing: the next run takes the cache and resumes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from memtui.embed.lock import CacheBusy, CacheLock, lock_path
from memtui.trace import RunTrace
from tests.support.cli import REPO, memtui, memtui_env
from tests.support.hostile import Watched, cache_counts, error_lines, killing
from tests.support.inputs import write_input

pytestmark = [pytest.mark.model, pytest.mark.slow]

DOMAINS, PER_DOMAIN = 60, 6  # about 15 s with --batch-max 1: long enough to meet it mid-run


@pytest.fixture
def big_input(tmp_path) -> Path:
    return write_input(tmp_path / "big.jsonl", DOMAINS, PER_DOMAIN)


def start(inp: Path, cache: Path, *extra: str) -> Watched:
    return Watched(["run", "--headless", "--input", inp, "--cache", cache, "--batch-max", "1", *extra])


def test_a_second_run_on_a_cache_in_use_refuses_at_once_naming_the_first(tmp_path, big_input):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)  # the second run spells the cache's folder another way
    cache = real / "cache.sqlite"
    small = write_input(tmp_path / "small.jsonl", 3, 2)
    first = start(big_input, cache)
    with killing(first):
        first.wait_for("Batch 1 committed")

        started = time.monotonic()
        second = memtui(
            "run", "--headless", "--input", small, "--cache", tmp_path / "alias" / "cache.sqlite", timeout=120
        )
        second_took = time.monotonic() - started

        assert first.proc.poll() is None, "the first run ended before the second was refused: use a bigger input"
        info = memtui("cache", "info", "--cache", cache, "--json", timeout=60)
        assert first.proc.poll() is None
        code = first.wait(300)
        first_took = time.monotonic() - first.started

    assert second.returncode == 2, second.stderr
    errors = error_lines(second.stderr)
    assert len(errors) == 1 and f"pid {first.pid}" in errors[0] and "in use" in errors[0], second.stderr
    assert "ended abnormally" not in second.stderr
    assert second.stdout == ""
    assert second_took < first_took / 2, (second_took, first_took)

    assert info.returncode == 0, info.stderr
    seen = json.loads(info.stdout)
    assert 0 < seen["domains_done"] < DOMAINS and seen["vectors"] >= PER_DOMAIN

    assert code == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["status"] == "success" and "previous_abnormal_end" not in report
    assert report["domains_done"] == DOMAINS and report["items"] == DOMAINS * PER_DOMAIN
    assert report["items_embedded"] == DOMAINS * PER_DOMAIN
    assert "ended abnormally" not in first.stderr
    assert cache_counts(cache) == {
        "embeddings": DOMAINS * PER_DOMAIN,
        "responses": DOMAINS * PER_DOMAIN,
        "domains": DOMAINS,
    }
    assert not lock_path(cache).exists()


def test_a_lock_left_by_a_sigkilled_run_does_not_block_the_next_which_resumes(tmp_path, big_input):
    cache = tmp_path / "cache.sqlite"
    first = start(big_input, cache)
    with killing(first):
        first.wait_for("Batch 3 committed")
        first.proc.send_signal(signal.SIGKILL)
        assert first.wait(30) == -signal.SIGKILL
    lock = lock_path(cache)
    assert lock.exists(), "a SIGKILLed run cannot remove its lock file"
    assert json.loads(lock.read_text())["pid"] == first.pid
    done_before = cache_counts(cache)["domains"]
    assert 3 <= done_before < DOMAINS

    started = time.monotonic()
    second = memtui("run", "--headless", "--input", big_input, "--cache", cache, timeout=300)

    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["status"] == "success"
    assert report["domains_done"] == DOMAINS and report["items_skipped"] == done_before * PER_DOMAIN
    assert f"pid {first.pid}) ended abnormally" in second.stderr  # this one really did
    assert "Resuming" in second.stderr
    assert time.monotonic() - started < 120
    assert cache_counts(cache) == {
        "embeddings": DOMAINS * PER_DOMAIN,
        "responses": DOMAINS * PER_DOMAIN,
        "domains": DOMAINS,
    }
    assert not lock.exists()


def test_the_lock_in_process_refuses_while_held_and_passes_after_release(tmp_path):
    cache = tmp_path / "cache.sqlite"
    held = CacheLock.acquire(cache)
    try:
        with pytest.raises(CacheBusy, match=f"pid {os.getpid()}"):
            CacheLock.acquire(cache)
    finally:
        held.release()
    again = CacheLock.acquire(cache)
    again.release()
    assert not lock_path(cache).exists()


#: A run in its last steps, as Runner.run() ends: the job closes (the cache lock is released),
#: then the trace gets its end record. The gap is stretched to seconds here.
ENDING_RUN = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from memtui.embed.lock import CacheLock
    from memtui.trace import RunTrace
    cache = Path(sys.argv[1])
    lock = CacheLock.acquire(cache)
    trace = RunTrace(cache.with_name(cache.name + ".trace"))
    trace.begin(mode="cache")
    trace.batch(1, ["site000.example"], 1)
    lock.release()              # job.close()
    print("released", flush=True)
    sys.stdin.read()            # ... until the test says so
    trace.end("success")        # trace.end(status)
""")


def test_a_run_that_starts_as_another_ends_does_not_call_the_other_abnormal(tmp_path):
    cache = tmp_path / "cache.sqlite"
    inp = write_input(tmp_path / "in.jsonl", 3, 2)
    ending = subprocess.Popen(
        [sys.executable, "-c", ENDING_RUN, str(cache)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=memtui_env(),
    )
    try:
        assert ending.stdout.readline().strip() == "released"

        done = memtui("run", "--headless", "--input", inp, "--cache", cache, timeout=300)
    finally:
        ending.communicate("", timeout=30)

    assert done.returncode == 0, done.stderr
    assert "ended abnormally" not in done.stderr, done.stderr
    assert "previous_abnormal_end" not in json.loads(done.stdout)


def test_a_dead_run_without_an_end_is_still_reported_even_if_its_pid_was_reused(tmp_path):
    path = tmp_path / "cache.sqlite.trace"
    trace = RunTrace(path)
    trace.begin(mode="cache")
    trace.end("success")
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        time.sleep(0.05)
        # A begin record an hour old, of a pid now held by a process that started just now (pid reuse).
        with path.open("a") as fh:
            fh.write(json.dumps({"at": time.time() - 3600, "kind": "begin", "pid": sleeper.pid}) + "\n")
        found = RunTrace(path).previous_abnormal_end()
        assert found is not None and found.pid == sleeper.pid
        # The same pid, begun after that process started: that run is alive (it is ending), not dead.
        with path.open("a") as fh:
            fh.write(json.dumps({"at": time.time(), "kind": "begin", "pid": sleeper.pid}) + "\n")
        assert RunTrace(path).previous_abnormal_end() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert RunTrace(path).previous_abnormal_end() is not None  # now it is dead without an end
