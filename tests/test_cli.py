"""End to end, as an operator runs it: real subprocesses, the real model, a real SQLite file."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest

from memtui.embed.model import DEFAULT_MODEL_ID
from memtui.embed.store import key_for
from tests.support.cli import make_sample, memtui, popen_memtui

pytestmark = pytest.mark.model


def read_input(path: Path) -> list[dict]:
    with gzip.open(path, "rt") as fh:
        return [json.loads(line) for line in fh]


def cache_rows(cache: Path) -> dict:
    con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
    try:
        keys = [k for (k,) in con.execute("SELECT key FROM embeddings")]
        vectors = [np.frombuffer(v, dtype="<f4") for (v,) in con.execute("SELECT vector FROM embeddings")]
        domains = [d for (d,) in con.execute("SELECT domain FROM domains")]
        responses = con.execute("SELECT count(*) FROM responses").fetchone()[0]
    finally:
        con.close()
    return {"keys": keys, "vectors": vectors, "domains": domains, "responses": responses}


def committed_domains(cache: Path) -> int:
    if not cache.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{cache}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM domains").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.fixture(scope="module")
def small_input(tmp_path_factory) -> Path:
    return make_sample(tmp_path_factory.mktemp("input") / "small.jsonl.gz", domains=3, responses=60)


def test_cache_run_embeds_every_distinct_text_once_and_rerun_skips_the_model(small_input, tmp_path):
    cache, report_path = tmp_path / "cache.sqlite", tmp_path / "report.json"
    first = memtui(
        "run", "--mode", "cache", "--headless", "--input", small_input, "--cache", cache, "--report", report_path
    )
    assert first.returncode == 0, first.stderr
    report = json.loads(report_path.read_text())
    assert json.loads(first.stdout) == report
    records = read_input(small_input)
    distinct = {r["response"] for r in records}
    assert report["status"] == "success"
    assert report["items"] == len(records) and report["domains_done"] == 3
    assert report["items_embedded"] == len(distinct)
    for key in (
        "memory_usage_gb",
        "peak_memory_gb",
        "memory_warnings",
        "breaker_trips",
        "cleanups",
        "batches",
        "items_per_s",
        "duration_s",
        "limit_gb",
        "limit_source",
    ):
        assert key in report
    assert "🔍 Starting operation (Memory: " in first.stderr
    assert "Traceback" not in first.stderr

    rows = cache_rows(cache)
    assert sorted(rows["keys"]) == sorted({key_for(DEFAULT_MODEL_ID, t) for t in distinct})
    assert all(v.shape == (384,) and abs(np.linalg.norm(v) - 1) < 1e-4 for v in rows["vectors"])
    assert rows["responses"] == len(records)
    assert os.stat(cache).st_mode & 0o777 == 0o600

    again = memtui("run", "--headless", "--input", small_input, "--cache", cache)
    assert again.returncode == 0, again.stderr
    rerun = json.loads(again.stdout)
    assert rerun["items_embedded"] == 0 and rerun["items_skipped"] == len(records)
    assert "Model loaded" not in again.stderr
    assert cache_rows(cache)["keys"] == rows["keys"]


def test_kill_9_mid_run_then_resume_leaves_one_vector_per_text(tmp_path):
    source = make_sample(tmp_path / "in.jsonl.gz", domains=8, responses=160)
    cache = tmp_path / "cache.sqlite"
    proc = popen_memtui("run", "--headless", "--input", source, "--cache", cache, "--batch-max", "1")
    try:
        deadline = time.monotonic() + 120
        while committed_domains(cache) < 2:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "no domain committed in time"
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = committed_domains(cache)
    assert 2 <= done_before < 8

    resumed = memtui("run", "--headless", "--input", source, "--cache", cache)
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["items_skipped"] > 0 and report["domains_done"] == 8
    assert "ended abnormally" in resumed.stderr and "ended abnormally" in report["previous_abnormal_end"]
    records = read_input(source)
    rows = cache_rows(cache)
    assert len(rows["keys"]) == len(set(rows["keys"])) == len({r["response"] for r in records})
    assert sorted(rows["domains"]) == sorted({r["domain"] for r in records})
    assert rows["responses"] == len(records)


def test_ctrl_c_commits_the_batch_in_flight_and_exits_130(small_input, tmp_path):
    cache = tmp_path / "cache.sqlite"
    proc = popen_memtui("run", "--headless", "--input", small_input, "--cache", cache, "--batch-max", "1")
    try:
        deadline = time.monotonic() + 120
        while "Model loaded" not in (line := proc.stderr.readline()):
            assert line or proc.poll() is None, "memtui ended before loading the model"
            assert time.monotonic() < deadline
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    report = json.loads(out)
    assert report["status"] == "interrupted"
    assert "Traceback" not in err
    assert committed_domains(cache) == report["domains_done"]
    assert report["unprocessed_domains"] == 3 - report["domains_done"] > 0
