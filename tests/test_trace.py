"""The rolling trace: how the next start learns that the last run was killed."""

from __future__ import annotations

import json
import os
import stat

from memtui.memory.units import GB
from memtui.trace import RunTrace


def killed_run(path, **kw) -> RunTrace:
    trace = RunTrace(path, sample_every_s=0, **kw)
    trace.begin(mode="cache")
    trace.batch(1, ["a.com", "b.com"], int(0.6 * GB))
    trace.samples(lambda: ((1.0, int(0.7 * GB)), (2.0, int(0.9 * GB))), now=2.0)
    trace.batch(2, ["c.com"], int(0.9 * GB))
    return trace  # never ended: as if SIGKILLed


def test_a_run_without_an_end_is_reported_with_its_last_batch_and_samples(tmp_path):
    killed_run(tmp_path / "t.trace")
    found = RunTrace(tmp_path / "t.trace").previous_abnormal_end()
    assert found is not None and found.pid == os.getpid()
    assert found.last_batch == ["c.com"]
    assert found.rss_peak == int(0.9 * GB)
    text = found.describe()
    assert "ended abnormally" in text and "c.com" in text and "0.90GB" in text


def test_a_clean_end_is_not_reported(tmp_path):
    killed_run(tmp_path / "t.trace").end("success")
    assert RunTrace(tmp_path / "t.trace").previous_abnormal_end() is None


def test_only_the_last_run_counts_and_a_torn_line_is_ignored(tmp_path):
    path = tmp_path / "t.trace"
    killed_run(path)
    second = RunTrace(path)
    second.begin(mode="cache")
    second.end("success")
    assert RunTrace(path).previous_abnormal_end() is None
    killed_run(path)
    with path.open("a") as fh:
        fh.write('{"kind": "samp')  # the kill cut the last write short
    assert RunTrace(path).previous_abnormal_end().last_batch == ["c.com"]


def test_the_file_stays_bounded_and_keeps_the_current_run(tmp_path):
    path = tmp_path / "t.trace"
    trace = RunTrace(path, max_bytes=4096, sample_every_s=0)
    trace.begin(mode="cache")
    for i in range(500):
        trace.batch(i, [f"d{i}.com"], 1000)
    assert path.stat().st_size <= 4096 + 200
    found = RunTrace(path).previous_abnormal_end()
    assert found is not None and found.last_batch == ["d499.com"]
    assert all(json.loads(line) for line in path.read_text().splitlines())


def test_the_trace_is_private_and_holds_no_response_text(tmp_path):
    path = tmp_path / "sub" / "t.trace"
    killed_run(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert "response" not in path.read_text()
