"""Fixtures the job tests share."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def runs() -> Iterator[tuple[Path, list[int]]]:
    """A run folder with a short path (a socket path has a 108-byte limit), and the pids to kill after."""
    folder = Path(tempfile.mkdtemp(prefix="mtj", dir="/tmp"))
    (folder / "runs").mkdir(mode=0o700)
    started: list[int] = []
    yield folder / "runs", started
    for pid in started:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(folder, ignore_errors=True)
