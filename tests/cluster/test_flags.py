"""--workers / --scheduler: usage errors before any work (no cluster, no model)."""

from __future__ import annotations

from tests.support.cli import memtui
from tests.support.inputs import write_input


def test_cluster_flags_go_with_the_cache_mode_only(tmp_path):
    source = write_input(tmp_path / "in.jsonl", domains=1, per_domain=1)
    for mode in ("monitor", "embeddings"):
        done = memtui("run", "--mode", mode, "--input", source, "--workers", "2", "--headless", timeout=60)
        assert done.returncode == 2 and "--workers and --scheduler go with --mode cache" in done.stderr
    done = memtui(
        "run",
        "--input",
        source,
        "--cache",
        tmp_path / "c.sqlite",
        "--workers",
        "2",
        "--scheduler",
        "tcp://127.0.0.1:1",
        "--headless",
        timeout=60,
    )
    assert done.returncode == 2 and "not both" in done.stderr
    assert not (tmp_path / "c.sqlite").exists()
