"""The layers stay apart: the engine and jobs import no Textual, and the TUI touches the runner
only through snapshot(), subscribe() and its commands (docs/architecture.md: engines and faces)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import memtui.tui

ROOT = Path(__file__).resolve().parents[2]
TUI_DIR = Path(memtui.tui.__file__).parent


def test_engine_jobs_and_headless_import_no_textual():
    code = (
        "import importlib, json, sys\n"
        "for m in ('memtui.runner', 'memtui.jobs.cache', 'memtui.faces.headless', 'memtui.faces.job',"
        " 'memtui.faces.monitor', 'memtui.engine', 'memtui.jobs.monitor', 'memtui.cli', 'memtui.events'):\n"
        "    importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext',"
        " 'plotext') or m.startswith('memtui.tui'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


RUNNER_API = {
    "run",
    "snapshot",
    "subscribe",
    "unsubscribe",
    "pause",
    "resume",
    "request_cleanup",
    "set_thresholds",
    "set_batch_limits",
    "stop",
    "paused",
}


def test_the_tui_uses_only_the_runners_public_face():
    used: set[str] = set()
    for path in TUI_DIR.rglob("*.py"):
        used |= set(re.findall(r"\brunner\.(\w+)", path.read_text()))
    assert used <= RUNNER_API, f"the TUI reaches past the runner's API: {sorted(used - RUNNER_API)}"
