"""Limits and safety through the real CLI: memory cgroups, huge numbers, errors that name what was typed.

The cgroup tests put ``python -m memtui`` into a fresh memory cgroup (v1
memory.limit_in_bytes or v2 memory.max) through a ``sh -c 'echo $$ > cgroup.procs
&& exec ...'`` wrapper and remove the cgroup afterwards; they skip, saying why,
where no cgroup can be made (not root, no writable memory controller).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import make_sample, memtui, memtui_env, memtui_in_process

MB = 1 << 20
V1 = Path("/sys/fs/cgroup/memory")
V2 = Path("/sys/fs/cgroup")


@contextlib.contextmanager
def memory_cgroup(limit_bytes: int) -> Iterator[Path]:
    """A fresh memory cgroup with ``limit_bytes``; yields its cgroup.procs file. Skips if none can be made."""
    name = f"memtui-test-{os.getpid()}-{time.monotonic_ns()}"
    reasons = []
    folder = None
    if (V1 / "memory.limit_in_bytes").exists():
        try:
            folder = V1 / name
            folder.mkdir()
            (folder / "memory.limit_in_bytes").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):  # with swap on, stop it from swapping instead of hitting the limit
                (folder / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))
        except OSError as exc:
            reasons.append(f"cgroup v1 at {V1}: {exc.strerror}")
            _remove(folder)
            folder = None
    elif "memory" in _read(V2 / "cgroup.controllers").split():
        try:
            if "memory" not in _read(V2 / "cgroup.subtree_control").split():
                (V2 / "cgroup.subtree_control").write_text("+memory")
            folder = V2 / name
            folder.mkdir()
            (folder / "memory.max").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
        except OSError as exc:
            reasons.append(f"cgroup v2 at {V2}: {exc.strerror}")
            _remove(folder)
            folder = None
    else:
        reasons.append(f"no memory controller at {V1} (v1) or in {V2}/cgroup.controllers (v2)")
    if folder is None:
        pytest.skip("cannot make a memory cgroup here: " + "; ".join(reasons))
    try:
        yield folder / "cgroup.procs"
    finally:
        _remove(folder)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _remove(folder: Path | None) -> None:
    if folder is None or not folder.exists():
        return
    for _ in range(50):  # the last process may take a moment to leave
        try:
            folder.rmdir()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"could not remove the test cgroup {folder}")


def memtui_in(procs: Path, *args: str | os.PathLike[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    script = f'echo $$ > {shlex.quote(str(procs))} && exec "$@"'
    cmd = ["sh", "-c", script, "sh", sys.executable, "-m", "memtui", *map(str, args)]
    return subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=memtui_env(), stdin=subprocess.DEVNULL
    )


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    return make_sample(tmp_path_factory.mktemp("input") / "small.jsonl.gz", domains=2, responses=30)


# -- a memory limit the model cannot fit ------------------------------------------------------


def test_a_350mb_cgroup_is_refused_before_loading_with_exit_1(small_input, tmp_path):
    with memory_cgroup(350 * MB) as procs:
        result = memtui_in(
            procs,
            "run",
            "--mode",
            "cache",
            "--headless",
            "--input",
            small_input,
            "--cache",
            tmp_path / "c.sqlite",
            "--config",
            os.devnull,
            timeout=120,
        )
    assert result.returncode == 1, (result.returncode, result.stderr)  # not 137: refused, not killed
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("memtui: error: memory limit 0.34GB (cgroup "), lines[0]
    assert "is below the ~0.56GB this model needs to load and encode" in lines[0]
    assert lines[0].endswith("raise the container's memory limit or run on a bigger machine")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_a_limit_whose_lowered_breaker_cannot_hold_the_model_is_refused_too(small_input, tmp_path):
    with memory_cgroup(600 * MB) as procs:
        result = memtui_in(
            procs,
            "run",
            "--headless",
            "--input",
            small_input,
            "--cache",
            tmp_path / "c.sqlite",
            "--config",
            os.devnull,
            timeout=120,
        )
    assert result.returncode == 1, result.stderr
    assert "leaves a default breaker of 0.50GB" in result.stderr and "--max-memory" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.model
def test_a_1gb_cgroup_runs_with_lowered_defaults_and_is_never_killed(small_input, tmp_path):
    report_path = tmp_path / "report.json"
    with memory_cgroup(1024 * MB) as procs:
        result = memtui_in(
            procs,
            "run",
            "--mode",
            "cache",
            "--headless",
            "--input",
            small_input,
            "--cache",
            tmp_path / "c.sqlite",
            "--report",
            report_path,
            "--config",
            os.devnull,
        )
        cgroup = procs.parent
        failcnt = _read(cgroup / "memory.failcnt").strip()
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    report = json.loads(report_path.read_text())
    assert report["status"] == "success" and report["items_embedded"] > 0
    assert report["limit_gb"] == pytest.approx(1.0, abs=0.01) and "cgroup" in report["limit_source"]
    thresholds = report["thresholds"]
    assert thresholds["max_memory_gb"] == pytest.approx(0.85, abs=0.01)  # 85% of 1 GiB, not 1.5
    assert thresholds["warning_memory_gb"] == pytest.approx(0.85 * 2 / 3, abs=0.01)
    assert thresholds["reset_memory_gb"] == thresholds["warning_memory_gb"]
    assert "lowered to 85% of the memory limit" in thresholds["why"] and report["limit_source"] in thresholds["why"]
    assert report["max_memory_gb"] == thresholds["max_memory_gb"]
    assert report["peak_memory_gb"] < 1.0
    assert "📏 Thresholds: max-memory 0.85GB from default 1.50GB lowered" in result.stderr
    assert "Traceback" not in result.stderr
    if failcnt:  # v1 counts how often the limit was hit
        assert int(failcnt) == 0


def test_an_explicit_breaker_above_the_limit_is_kept_and_warned_about(tmp_path):
    # monitor mode loads no model, so this runs in a 350 MB cgroup in a second
    with memory_cgroup(350 * MB) as procs:
        result = memtui_in(
            procs,
            "run",
            "--mode",
            "monitor",
            "--headless",
            "--pid",
            os.getpid(),
            "--duration",
            "0.5",
            "--max-memory",
            "1.5",
            "--config",
            os.devnull,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    assert "--max-memory 1.50GB is above the memory limit 0.34GB (cgroup " in result.stderr
    assert "the kernel will kill memtui before its breaker acts; lower it" in result.stderr
    report = json.loads(result.stdout)
    assert report["max_memory_gb"] == 1.5 and report["warning_memory_gb"] < 0.34


# -- huge numbers and non-numbers: exit 2, one line, no traceback ---------------------------------

HUGE = [
    ("--backoff-max", "1e300", "at most 86400 s (1 day)"),
    ("--backoff-initial", "1e300", "at most 86400 s (1 day)"),
    ("--reset-hold", "1e300", "at most 86400 s (1 day)"),
    ("--reset-hold-max", "1e300", "at most 86400 s (1 day)"),
    ("--sample-interval", "1e300", "at most 86400 s (1 day)"),
    ("--breaker-timeout", "1e300", "at most 2592000 s (30 days)"),
    ("--breaker-timeout", "inf", "must be a finite number"),
    ("--sample-interval", "nan", "must be a finite number"),
    ("--max-memory", "1e300", "at most 1048576GB (1024TB)"),
    ("--max-memory", "1e300GB", "at most 1048576GB (1024TB)"),
    ("--warning-memory", "inf", "must be a finite number"),
    ("--reset-memory", "1e30", "at most 1048576GB (1024TB)"),
    ("--batch-max", "1" + "0" * 40, "at most 100000"),
    ("--monitor-interval", "1e300", "at most 2592000 seconds (30 days)"),
    ("--duration", "inf", "at most 2592000 seconds (30 days)"),
    ("--duration", "nan", "is not a number"),
]


@pytest.mark.parametrize("flag, value, needle", HUGE, ids=[f"{f}={v}"[:40] for f, v, _ in HUGE])
def test_huge_numbers_are_one_line_usage_errors(flag, value, needle, tmp_path):
    """The CLI's main in this process; the first case also through python -m memtui (the real entry point)."""
    mode = ["--mode", "monitor", "--pid", str(os.getpid())] if flag in ("--monitor-interval", "--duration") else []
    args = ["run", "--headless", *mode, flag, value, "--cache", tmp_path / "c.sqlite", "--config", os.devnull]
    check_huge_number(memtui_in_process(*args), flag, needle, tmp_path)
    if (flag, value) == HUGE[0][:2]:
        check_huge_number(memtui(*args, timeout=60), flag, needle, tmp_path)


def check_huge_number(result: subprocess.CompletedProcess[str], flag: str, needle: str, tmp_path: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("memtui: error: "), result.stderr
    assert needle in lines[0] and flag in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "c.sqlite").exists()


def test_huge_numbers_from_the_environment_name_the_variable(tmp_path):
    env = memtui_env(MEMTUI_BACKOFF_MAX="1e300")
    result = subprocess.run(
        [sys.executable, "-m", "memtui", "run", "--headless", "--cache", str(tmp_path / "c"), "--config", os.devnull],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "memtui: error: backoff max (MEMTUI_BACKOFF_MAX) must be at most 86400 s "
        "(1 day), got 1e+300; lower MEMTUI_BACKOFF_MAX"
    )


def test_cross_field_errors_name_the_flags_and_file_keys_typed(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("[memory]\nbackoff_initial = 20\n")
    result = memtui(
        "run", "--headless", "--config", config, "--backoff-max", "10", "--cache", tmp_path / "c", timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"memtui: error: backoff max 10.0s must be >= backoff initial 20.0s; "
        f"raise --backoff-max or lower {config}: backoff_initial"
    )
