"""The input changed under a run: truncated, appended, replaced, rewritten in place.

A real run (the real model, real SQLite) on a real file, held paused after its
first batch (through its attach socket, as an operator would) while the test
changes the file, then resumed. The run must not call itself a success: it
ends with one line saying the input changed and what to do (exit 2), and the
domains it committed before stay in the cache.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from memtui.attach.client import RemoteEngine
from tests.support.cli import memtui, memtui_env
from tests.support.hostile import Watched, cache_counts, error_lines, killing
from tests.support.inputs import write_input

pytestmark = [pytest.mark.model, pytest.mark.slow]

DOMAINS, PER_DOMAIN = 40, 3


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def runs_dir(monkeypatch) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="mti", dir="/tmp")) / "runs"  # a socket path has a 108-byte limit
    folder.mkdir(mode=0o700)
    monkeypatch.setenv("MEMTUI_RUN_DIR", str(folder))
    return folder


def socket_of(pid: int) -> str:
    from memtui.attach.runs import entries

    found: list[str] = []

    def listed() -> bool:
        found[:] = [entry.socket for entry in entries() if entry.pid == pid]
        return bool(found)

    wait_until(listed, f"run {pid} to serve its socket")
    return found[0]


def paused_after_first_batch(inp: Path, cache: Path, runs_dir: Path) -> tuple[Watched, RemoteEngine]:
    """A run holding after its first batch: paused while it loads the model (a batch of one domain)."""
    run = Watched(
        ["run", "--headless", "--input", inp, "--cache", cache, "--batch-max", "1", "--batch-min", "1"],
        env=memtui_env(MEMTUI_RUN_DIR=str(runs_dir)),
    )
    run.wait_for("loading model")
    engine = RemoteEngine(socket_of(run.pid))
    engine.pause()
    wait_until(lambda: engine.snapshot().phase == "paused", "the run to hold paused")
    done = engine.snapshot().units_done
    assert 1 <= done < DOMAINS, f"the pause landed after {done} domains"
    return run, engine


def finish(run: Watched, engine: RemoteEngine) -> tuple[int, dict, list[str]]:
    engine.resume()
    code = run.wait(180)
    engine.detach()
    return code, json.loads(run.stdout), [line for line in run.stderr.splitlines() if line.startswith("Error: ")]


def truncate(inp: Path) -> None:
    data = inp.read_bytes()
    with open(inp, "r+b") as fh:  # in place, as a producer rewriting it would
        fh.truncate(len(data) // 2)


def append(inp: Path) -> None:
    extra = write_input(inp.with_name("extra.jsonl"), DOMAINS + 2, 2).read_text().splitlines()[-2:]
    with open(inp, "a", encoding="utf-8") as fh:
        fh.write("\n".join(extra) + "\n")


def replace(inp: Path) -> None:
    other = write_input(inp.with_name("other.jsonl"), DOMAINS, PER_DOMAIN + 1)
    os.replace(other, inp)


def rewrite_same_size(inp: Path) -> None:
    """The same size, the old modification time put back: only the bytes (and the change time) differ."""
    st = os.stat(inp)
    data = bytearray(inp.read_bytes())
    at = data.rindex(b"answer")
    data[at : at + 6] = b"ANSWER"
    with open(inp, "r+b") as fh:
        fh.write(data)
    os.utime(inp, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (truncate, "was truncated from"),
        (append, "grew from"),
        (replace, "was replaced by another file"),
        (rewrite_same_size, "was rewritten in place"),
    ],
    ids=["truncated", "appended", "replaced", "rewritten"],
)
def test_a_change_mid_run_ends_the_run_as_failed_and_keeps_what_was_committed(tmp_path, runs_dir, change, words):
    inp = write_input(tmp_path / "in.jsonl", DOMAINS, PER_DOMAIN)
    cache = tmp_path / "cache.sqlite"
    run, engine = paused_after_first_batch(inp, cache, runs_dir)
    with killing(run):
        committed_before = engine.snapshot().units_done
        change(inp)
        code, report, errors = finish(run, engine)
    assert code == 2, run.stderr
    assert report["status"] == "failed" and report["exit_code"] == 2
    assert len(errors) == 1, run.stderr
    assert f"input {inp} {words}" in errors[0] and "during the run" in errors[0], errors[0]
    assert "what was committed is kept: rerun once the file is complete" in errors[0]
    assert "Run success" not in run.stderr
    # nothing committed is lost: the domains done before the change are in the cache, and the report says so
    done = cache_counts(cache)["domains"]
    assert done >= committed_before >= 1
    assert report["domains_done"] == done < DOMAINS


def test_an_unchanged_input_still_ends_in_success(tmp_path, runs_dir):
    """The same paused run, nothing changed: the checks add no failure of their own."""
    inp = write_input(tmp_path / "in.jsonl", DOMAINS, PER_DOMAIN)
    cache = tmp_path / "cache.sqlite"
    run, engine = paused_after_first_batch(inp, cache, runs_dir)
    with killing(run):
        code, report, errors = finish(run, engine)
    assert code == 0 and report["status"] == "success" and not errors, run.stderr
    assert cache_counts(cache)["domains"] == DOMAINS


def test_a_truncated_gzip_says_nothing_was_read_into_the_cache(tmp_path):
    """The scan finds the break before any work: the message may not claim domains were read."""
    whole = write_input(tmp_path / "in.jsonl", 6, 3).read_bytes()
    cut = tmp_path / "in.jsonl.gz"
    packed = gzip.compress(whole)
    cut.write_bytes(packed[: len(packed) // 2])
    cache = tmp_path / "cache.sqlite"
    done = memtui("run", "--headless", "--input", cut, "--cache", cache, timeout=120)
    assert done.returncode == 2, done.stderr
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and "gzip stream is corrupt or truncated" in errors[0], done.stderr
    assert "domains before it were read" not in errors[0]
    assert not cache.exists()


def test_other_bytes_under_an_unchanged_identity_are_caught_by_the_line_digest(tmp_path, monkeypatch):
    """The last line of defence: a rewrite the file's identity cannot show (the kernel always moves the
    change time, so the identity is held still here) still fails at the first domain that differs."""
    from memtui.jobs import input_watch
    from memtui.jobs.input import read_domains

    inp = write_input(tmp_path / "in.jsonl", 4, 3)
    watch = input_watch.InputWatch(str(inp), inp)
    digest = input_watch.LineDigest()
    for _ in read_domains(inp, digest=digest):
        watch.scanned_domain(digest)
    watch.scan_done()
    data = inp.read_bytes()
    at = data.index(b"site002.example answer")
    inp.write_bytes(data[:at] + b"SITE" + data[at + 4 :])
    frozen = watch._scanned
    monkeypatch.setattr(input_watch, "identity", lambda _path: frozen)
    digest = input_watch.LineDigest()
    checked = []
    with pytest.raises(input_watch.InputChanged, match="holds other lines than the scan read"):
        for index, group in enumerate(read_domains(inp, digest=digest)):
            watch.check_domain(index, digest, group.domain)
            checked.append(group.domain)
    assert checked == ["site000.example"]  # the domain whose last line read runs into the change is refused
