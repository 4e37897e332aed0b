"""Standard streams closed, hostile settings files, a pathological --match, an input that is mostly nothing.

- memtui started with fd 0, 1 or 2 closed (``>&-``, ``2>&-``, a daemon that
  closed them) does the work and exits with the normal code; none of its own
  files (the cache, its lock) lands on those numbers and gets log lines.
- a settings file (``--config``, ``$MEMTUI_CONFIG``, ``--theme PATH.toml``) that
  is a FIFO, not UTF-8 or huge is refused in one line (exit 2), never waited on;
- a --match pattern with catastrophic backtracking cannot hold the watch past
  --duration;
- a gzip bomb of blank lines says it is being scanned and its memory stays
  bounded, whatever the number of bad lines.
Real subprocesses with real fds closed, the real model, real FIFOs.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from memtui.jobs.input import MAX_BAD_DETAILS, InputStats, read_domains
from memtui.jobs.scan_progress import ScanProgress
from memtui.memory.settings_file import MAX_BYTES
from tests.support.cli import make_sample, memtui, memtui_env
from tests.support.fakes import FakeClock
from tests.support.hostile import NOBODY, cache_counts, error_lines, require_root

DOMAINS = 3


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    errors = error_lines(done.stderr)
    assert len(errors) == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


@pytest.fixture
def sleeper() -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        yield proc.pid
    finally:
        proc.kill()
        proc.wait(30)


def watch(pid: int, *extra: str | os.PathLike[str], env: dict[str, str] | None = None):
    """A short monitor-mode run (no model): the settings are read before anything is watched."""
    args = ["run", "--mode", "monitor", "--headless", "--pid", str(pid), "--duration", "0.3"]
    return memtui(*args, "--monitor-interval", "0.1", *extra, timeout=60, env=env)


# -- closed standard streams ----------------------------------------------------------------------------------


def run_with_closed(fds: tuple[int, ...], *args: str | os.PathLike[str]) -> tuple[int, str]:
    """memtui as ``cmd >&-`` (and the like) would start it: ``fds`` closed in the child before exec."""

    def close() -> None:
        for fd in fds:
            os.close(fd)

    out = None if 1 in fds else subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtui", *map(str, args)],
        stdin=None if 0 in fds else subprocess.DEVNULL,
        stdout=out,
        stderr=subprocess.DEVNULL if 2 not in fds else None,
        preexec_fn=close,
        env=memtui_env(),
    )
    stdout, _ = proc.communicate(timeout=300)
    return proc.returncode, (stdout or b"").decode()


@pytest.mark.model
@pytest.mark.parametrize("fds", [(1,), (2,), (0, 1, 2)], ids=["stdout", "stderr", "all"])
def test_a_run_with_closed_standard_streams_does_the_work_and_exits_0(tmp_path, fds):
    inp, cache = make_sample(tmp_path / "in.jsonl", DOMAINS), tmp_path / "cache.sqlite"
    lock = cache.with_name(cache.name + ".lock")

    code, stdout = run_with_closed(fds, "run", "--headless", "--input", inp, "--cache", cache)

    assert code == 0
    if 1 not in fds:
        assert json.loads(stdout)["status"] == "success"
    counts = cache_counts(cache)
    assert counts["domains"] == DOMAINS and counts["responses"] == counts["embeddings"] > 0
    assert not lock.exists() or lock.read_bytes() == b"", "memtui's lock got a standard stream's output"


def test_bad_input_with_stderr_closed_is_still_exit_2_and_creates_no_cache(tmp_path):
    bad, cache = tmp_path / "bad.jsonl", tmp_path / "cache.sqlite"
    bad.write_text("not json\n")
    code, _ = run_with_closed((2,), "run", "--headless", "--input", bad, "--cache", cache)
    assert code == 2
    assert not cache.exists()


# -- hostile settings files ------------------------------------------------------------------------------------


def test_a_fifo_as_config_is_refused_at_once_not_waited_on(tmp_path, sleeper):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo, 0o600)  # no writer ever comes: a blocking read would hang forever (the timeout fails it)
    refused(watch(sleeper, "--config", fifo), "config file", "not a regular file")


def test_a_fifo_named_by_MEMTUI_CONFIG_is_refused_at_once(tmp_path, sleeper):
    fifo = tmp_path / "config.toml"
    os.mkfifo(fifo, 0o600)
    refused(watch(sleeper, env=memtui_env(MEMTUI_CONFIG=str(fifo))), str(fifo), "not a regular file")


def test_a_fifo_as_theme_file_is_refused_at_once(tmp_path, sleeper):
    fifo = tmp_path / "mine.toml"
    os.mkfifo(fifo, 0o600)
    refused(watch(sleeper, "--theme", fifo), "theme file", "not a regular file")


def test_a_config_that_is_not_utf8_says_so_with_the_offset(tmp_path, sleeper):
    config = tmp_path / "config.toml"
    config.write_bytes(b'max-memory = "1.5GB"\n# caf\xe9\n')
    line = refused(watch(sleeper, "--config", config), "not UTF-8", "offset 26", "0xe9")
    assert "permission" not in line


def test_a_huge_config_is_refused_without_reading_it_all(tmp_path, sleeper):
    config = tmp_path / "config.toml"
    with config.open("wb") as fh:
        fh.truncate(MAX_BYTES * 64)  # sparse: 64 MiB of NULs that memtui must not read
    refused(watch(sleeper, "--config", config), "config file", "limit")


def test_dev_null_as_config_means_no_settings(sleeper):
    done = watch(sleeper, "--config", os.devnull)
    assert done.returncode == 0, done.stderr


def test_an_unreadable_config_says_permission(tmp_path, sleeper):
    require_root()
    config = tmp_path / "config.toml"
    config.write_text("")
    os.chmod(config, 0o600)
    os.chmod(tmp_path, 0o755)
    done = subprocess.run(
        ["setpriv", "--reuid", str(NOBODY), "--regid", str(NOBODY), "--clear-groups",
         sys.executable, "-m", "memtui", "run", "--mode", "monitor", "--headless", "--pid", "1",
         "--duration", "0.3", "--config", str(config)],
        capture_output=True, text=True, timeout=60, env=memtui_env(MEMTUI_RUN_DIR=str(tmp_path / "runs")),
    )  # fmt: skip
    if "No such file" in done.stderr or done.returncode not in (1, 2):
        pytest.skip(f"cannot run memtui as uid {NOBODY} here: {done.stderr.strip()[:200]}")
    refused(done, "config file", "Permission denied")


# -- a pathological --match --------------------------------------------------------------------------------------


def test_a_backtracking_match_pattern_cannot_hold_the_watch_past_duration(tmp_path):
    pattern = "(a|aa)+$"  # exponential on a run of a's that ends in anything else
    hostile = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "a" * 5000 + "b"])
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "aaaa"])
    try:
        done = memtui(
            "run", "--mode", "monitor", "--headless", "--match", pattern, "--duration", "2",
            "--monitor-interval", "0.5", timeout=60,
        )  # fmt: skip
    finally:
        for proc in (hostile, target):
            proc.kill()
            proc.wait(30)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["end_reason"] == "duration reached"
    watched = {t["pid"] for t in report["targets"]}
    assert target.pid in watched and hostile.pid not in watched
    assert f"pid {hostile.pid}" in done.stderr and "simplify the pattern" in done.stderr


# -- an input that is mostly nothing ---------------------------------------------------------------------------


def test_a_gzip_bomb_of_blank_lines_says_it_is_scanned_and_stays_small(tmp_path):
    bomb = tmp_path / "bomb.jsonl.gz"
    bad_lines = 200_000
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        block = (b" " * 1023 + b"\n") * 1024  # 1 MiB of blank lines
        for _ in range(600):
            fh.write(block)
        fh.write(b"x\n" * bad_lines)
    assert bomb.stat().st_size < 4 << 20
    # The child is started by a fresh, small interpreter that reports its peak: ru_maxrss carries a forking
    # parent's high-water mark into the child, so measured from the suite's process it reads the suite's.
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_WRAPPER, sys.executable, "-m", "memtui", "run", "--headless",
         "--input", str(bomb), "--cache", str(tmp_path / "c")],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, env=memtui_env(), timeout=600,
    )  # fmt: skip
    stderr, _, peak = proc.stderr.rpartition("peak_rss_kb=")

    assert proc.returncode == 2, stderr  # no valid response: refused after the scan, before any model
    progress = [line for line in stderr.splitlines() if line.startswith("INFO:memtui:scanning input ")]
    assert len(progress) >= 2, stderr  # one line every 256 MB read at least, whatever the speed
    assert f"{bad_lines} bad line(s)" in error_lines(stderr)[0]
    assert int(peak) * 1024 < 200 << 20, f"peak RSS {int(peak) / 1024:.0f} MB for a scan"


#: Runs argv[1:] as its child and exits with its code, then writes the child's peak RSS (kB) last on stderr.
PEAK_WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"peak_rss_kb={usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_scan_progress_says_a_line_every_interval_and_every_chunk_of_bytes():
    clock = FakeClock()
    said: list[str] = []
    progress = ScanProgress("in.jsonl", said.append, every_s=10, every_bytes=100, clock=clock)
    stats = InputStats()
    progress(stats)
    assert said == []
    clock.advance(10)
    progress(stats)
    assert len(said) == 1 and "scanning input in.jsonl" in said[0]
    stats.bytes_read = 100
    progress(stats)
    assert len(said) == 2 and "100B read" in said[1]
    progress(stats)
    assert len(said) == 2


def test_the_scan_keeps_the_first_bad_lines_and_counts_the_rest(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"x\n" * (MAX_BAD_DETAILS * 50))
    stats = InputStats()
    calls: list[int] = []
    assert list(read_domains(path, stats=stats, progress=lambda s: calls.append(s.lines))) == []
    assert stats.bad_lines == MAX_BAD_DETAILS * 50 and len(stats.bad_details) == MAX_BAD_DETAILS
    assert calls, "the progress hook was never called"
