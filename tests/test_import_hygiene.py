"""The memory core and the job layer stay free of UI and ML imports (docs/architecture.md: layers).

`import memtui` is what existing scripts do for the integration API, so it must
not drag in Textual, torch or sentence-transformers (seconds and hundreds of MB)
or SQLite. Checked in a fresh interpreter, because this test process may
already have imported them for other tests.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("textual", "torch", "sentence_transformers", "sqlite3", "_sqlite3", "transformers", "numpy")


@pytest.mark.parametrize("module", ["memtui", "memtui.memory"])
def test_import_pulls_in_no_ui_ml_or_sqlite(module):
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_the_check_can_fail():
    """The subprocess probe really sees an import (guards against a check that always passes)."""
    code = "import json, sys, sqlite3\nprint(json.dumps(sorted(m for m in sys.modules if m == 'sqlite3')))\n"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout) == ["sqlite3"]


TEXTUAL_IMPORT = re.compile(r"^\s*(import\s+textual\b|from\s+textual\b)", re.MULTILINE)


def _layer_files() -> list[Path | str]:
    """Every .py file of the layers that must not know Textual; a placeholder where none exist yet."""
    found: list[Path | str] = []
    for rel in ("memtui/memory", "memtui/jobs", "memtui/embed"):
        files = sorted((ROOT / rel).rglob("*.py"))
        found.extend(files or [f"{rel} (no files yet)"])
    runner = ROOT / "memtui" / "runner.py"
    found.append(runner if runner.exists() else "memtui/runner.py (no file yet)")
    return found


@pytest.mark.parametrize("path", _layer_files(), ids=lambda p: str(p).replace(str(ROOT) + "/", ""))
def test_no_textual_import_in_core_jobs_embed_runner(path):
    if isinstance(path, str):
        pytest.skip(path)
    text = path.read_text(encoding="utf-8")
    hits = [m.group(0).strip() for m in TEXTUAL_IMPORT.finditer(text)]
    assert hits == [], f"{path.relative_to(ROOT)} imports Textual: {hits}"


@pytest.mark.parametrize(
    "line, bad",
    [
        ("import textual", True),
        ("    from textual.app import App", True),
        ("from textual import on", True),
        ("import textual_plotext", False),
        ("# we never import textual here", False),
        ("from memtui.textual_free import x", False),
    ],
)
def test_the_pattern(line, bad):
    assert bool(TEXTUAL_IMPORT.search(line)) is bad


def test_an_attached_viewer_loads_no_ml_and_no_sqlite():
    """`memtui attach` reads snapshots only: numpy, torch and SQLite would be start-up time before the first frame."""
    code = (
        "import json, sys\n"
        "import memtui.attach.commands, memtui.attach.client, memtui.tui.attached\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN[1:]!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []
