"""The README's picture of the dashboard is what the app draws today: bench/capture_dashboard.py makes it
(a real app and Runner on the bundled sample, frozen on fake time and memory), and this test fails when the
screen changed and the capture was not regenerated (``python -m bench.capture_dashboard --readme``)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "capture_dashboard.py"


def _script():
    """The script by its path (``bench`` here would be tests/bench, the benchmark's smoke tests)."""
    spec = importlib.util.spec_from_file_location("capture_dashboard", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("capture_dashboard", module)
    spec.loader.exec_module(module)
    return module


def test_the_readme_capture_is_what_the_dashboard_draws_now():
    script = _script()
    README, SIZE, capture, readme_capture = script.README, script.SIZE, script.capture, script.readme_capture
    shot = capture()
    lines = shot.splitlines()
    assert len(lines) == SIZE[1] and max(len(line) for line in lines) <= SIZE[0]
    assert "q Quit" in lines[-1] and "1,434 responses" in shot  # the sample's 40 domains, the whole screen
    assert readme_capture(README.read_text(encoding="utf-8")) == shot, (
        "the dashboard changed: run `python -m bench.capture_dashboard --readme` and commit README.md"
    )
