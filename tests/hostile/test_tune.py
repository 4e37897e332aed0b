"""`memtui tune`: its sample and its children are bounded whatever the user asks."""

from __future__ import annotations

from memtui.jobs import tune
from tests.support.cli import memtui
from tests.support.inputs import write_input


def test_a_limit_past_what_tune_compares_is_one_line_and_exit_2(tmp_path):
    # Its kNN overlap holds two n x n matrices: --limit 1000000 would be 2 x 8 TB.
    data = write_input(tmp_path / "in.jsonl", domains=2)
    result = memtui("tune", "--input", data, "--limit", str(tune.MAX_LIMIT + 1), timeout=120)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"memtui: error: --limit {tune.MAX_LIMIT + 1} is more than tune compares ({tune.MAX_LIMIT}); a sample is enough"
    ]


def test_a_backend_child_past_its_time_is_ended_and_named(tmp_path, monkeypatch):
    # Real children, each ended at its deadline (no Python imports torch in 10 ms): a wait is never unbounded.
    monkeypatch.setattr(tune, "CHILD_TIMEOUT_S", 0.01)
    data = write_input(tmp_path / "in.jsonl", domains=2)
    result = tune.tune(data, limit=20)
    ran = [r for r in result["rows"] if "skipped" not in r]
    assert ran, "at least torch runs here"
    assert all(r.get("failed") == "took over 0s" for r in ran), result["rows"]
    assert result["recommendation"] == tune.TORCH
