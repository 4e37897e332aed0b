"""Run memtui as a user would: a real subprocess, no terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GENERATOR = REPO / "sample_data" / "generate.py"


#: Every run serves itself for attaching: tests keep their run entries out of the user's own folder.
TEST_RUN_DIR = tempfile.mkdtemp(prefix="memtui-test-runs-")


def memtui_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEMTUI_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", MEMTUI_RUN_DIR=TEST_RUN_DIR)
    env.update(extra)
    return env


def memtui(
    *args: str | os.PathLike[str],
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memtui", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or memtui_env(),
        stdin=subprocess.DEVNULL,
    )


def memtui_in_process(
    *args: str | os.PathLike[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI's own ``main`` in this process, with ``env`` as the whole environment (``memtui_env()`` by
    default) and its output captured: for the usage errors that end before any work, at no interpreter's
    start-up each (about 1.5 s). The real entry point keeps a subprocess case per class of error."""
    import contextlib
    import io

    from memtui.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env or memtui_env())
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's own usage errors
                code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["memtui", *map(str, args)], code, out.getvalue(), err.getvalue())


def popen_memtui(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "memtui", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or memtui_env(),
        stdin=subprocess.DEVNULL,
    )


def make_sample(path: Path, domains: int, *, responses: int | None = None, seed: int = 1729) -> Path:
    """A small input from the real generator (same shape and style as the bundled sample)."""
    cmd = [
        sys.executable,
        str(GENERATOR),
        "--out",
        str(path),
        "--domains",
        str(domains),
        "--seed",
        str(seed),
        "--quiet",
    ]
    if responses is not None:
        cmd += ["--responses", str(responses)]
    subprocess.run(cmd, check=True, timeout=60)
    return path
