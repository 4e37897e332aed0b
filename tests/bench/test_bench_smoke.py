"""CI smoke of the benchmark harness: the smallest quick case runs end to end and writes every figure.

It checks the harness (keys, types, that each case ran), never speed or memory
targets: those live in the benchmark output and BENCHMARKS.md, not in tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NUMBER = (int, float)


@pytest.mark.model
@pytest.mark.slow  # bench/run.py in a subprocess, the real model in it: out of sight of tests/support/lanes.py
def test_smoke_writes_every_figure(tmp_path: Path, onnx_models: Path) -> None:
    out = tmp_path / "bench.json"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "MEMTUI_MODEL_CACHE": str(onnx_models),
    }  # the session's one export (fp32 + int8, all the bench's onnx-int8 reads), never ~/.cache
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--quiet", "--json", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| throughput_ratio" in proc.stdout and "Peak RSS" in proc.stdout  # the table and the chart

    fig = json.loads(out.read_text())
    for key in (
        "throughput_ratio",
        "peak_rss_gb",
        "naive_peak_rss_gb",
        "drift_mb",
        "sample_us",
        "sampler_cpu_share",
        "resume_s",
        "utilization",
    ):
        assert isinstance(fig[key], NUMBER) and not isinstance(fig[key], bool), key
    assert fig["throughput_ratio"] > 0 and fig["peak_rss_gb"] > 0 and fig["naive_peak_rss_gb"] > 0
    assert 0 < fig["utilization"] < 10 and fig["sample_us"] > 0 and fig["resume_s"] > 0
    for key in ("pause_latency_s", "breaker_latency_s"):  # None only if the long-text job ended first
        assert fig[key] is None or (isinstance(fig[key], NUMBER) and fig[key] >= 0), key

    scaling = fig["scaling"]
    n = len(scaling["factors"])
    assert n >= 2 and scaling["factors"][0] == 1
    for key in ("texts", "memtui_gb", "naive_gb"):
        assert len(scaling[key]) == n and all(isinstance(v, NUMBER) and v > 0 for v in scaling[key]), key
    assert scaling["texts"] == sorted(scaling["texts"])

    details = fig["details"]
    assert details["resume"]["model_loaded"] is False and details["resume"]["items_embedded"] == 0
    assert details["memtui"]["report"]["status"] == "success"
    assert fig["machine"]["nproc"] >= 1 and fig["machine"]["load1_max"] >= 0

    # The onnx-int8 figures (memtui[onnx] comes with the test extra): present and sane, never judged here.
    for key in (
        "backend_speedup",
        "int8_throughput_ratio",
        "int8_cosine_mean",
        "int8_cosine_p1",
        "int8_knn_overlap",
        "int8_peak_rss_gb",
        "torch_peak_rss_gb",
    ):
        assert isinstance(fig[key], NUMBER) and fig[key] > 0, key
    assert 0.9 < fig["int8_cosine_mean"] <= 1.0001 and "| backend_speedup" in proc.stdout
    assert details["backends"]["gate_runs"]["onnx-int8"]["torch_imported"] is False
