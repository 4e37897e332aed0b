"""``memtui run --job MODULE:FUNCTION``: a user's own batch function under the guard, with real processes.

The function is a tiny pure-Python one (tests/jobs/user_job_support.py) that logs every call to a side
file, so "zero calls on a rerun" and "exact resume" are counted, not guessed.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from memtui.paths import SAMPLE_INPUT
from tests.jobs.user_job_support import (
    calls_of,
    committed,
    items_called,
    job_env,
    job_folder,
    results,
    run_job,
    write_items,
)
from tests.support.cli import memtui


def _sample_ids() -> list[str]:
    with gzip.open(SAMPLE_INPUT, "rt") as fh:
        return [json.loads(line)["id"] for line in fh if line.strip()]


def test_the_sample_runs_then_a_rerun_calls_the_function_zero_times(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "out" / "results.sqlite"
    done = run_job(folder, calls, "--job", "jobmod:length", "--output", out)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    ids = _sample_ids()
    assert report["status"] == "success" and report["mode"] == "job" and report["items_total"] == len(ids)
    assert report["items_failed"] == 0 and report["failed_items"] == []
    assert "items committed to the results file" in done.stderr
    assert items_called(calls) == len(ids)
    rows = results(out)
    assert [r["key"] for r in rows] == ids  # input order, keyed by each item's id
    with gzip.open(SAMPLE_INPUT, "rt") as fh:
        first = json.loads(fh.readline())
    assert rows[0]["result"] == {"chars": len(first["response"])}

    again = run_job(folder, calls, "--job", "jobmod:length", "--output", out)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["status"] == "success" and second["items_skipped"] == len(ids)
    assert items_called(calls) == len(ids)  # not one more call
    assert "Resuming" in again.stderr


def test_a_changed_item_under_the_same_key_is_computed_again(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", [f"text {i}" for i in range(20)])
    assert (
        run_job(folder, calls, "--job", "jobmod:slow", "--input", items, "--output", out, JOB_SLEEP="0").returncode == 0
    )
    write_items(items, [f"text {i}" if i != 7 else "changed" for i in range(20)])
    before = items_called(calls)
    done = run_job(folder, calls, "--job", "jobmod:slow", "--input", items, "--output", out, JOB_SLEEP="0")
    assert done.returncode == 0, done.stderr
    assert calls_of(calls)[len(calls_of(calls)) - 1] == ["i0007"] and items_called(calls) == before + 1
    assert {r["key"]: r["result"] for r in results(out)}["i0007"] == "CHANGED"


def test_items_without_an_id_are_keyed_by_their_content(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", ["a", "b", "c"], ids=False)
    assert (
        run_job(folder, calls, "--job", "jobmod:slow", "--input", items, "--output", out, JOB_SLEEP="0").returncode == 0
    )
    rows = results(out)
    assert [r["result"] for r in rows] == ["A", "B", "C"]
    assert all(r["key"].startswith("sha256:") for r in rows)


def test_a_raising_function_loses_only_its_bad_items(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    texts = [f"ok {i}" if i not in (5, 23, 24) else f"bad {i}" for i in range(40)]
    items = write_items(tmp_path / "items.jsonl", texts)
    done = run_job(folder, calls, "--job", "jobmod:picky", "--input", items, "--output", out, "--job-batch", "8")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "partial" and report["items_failed"] == 3
    assert [f["key"] for f in report["failed_items"]] == ["i0005", "i0023", "i0024"]
    assert report["failed_items"][0]["line"] == 6
    assert report["failed_items"][0]["error"] == "ValueError: cannot take 'bad 5'"  # one line
    rows = results(out)
    assert [r["key"] for r in rows] == [f"i{i:04d}" for i in range(40) if i not in (5, 23, 24)]
    assert [f["key"] for f in results(out, "--failures")] == ["i0005", "i0023", "i0024"]
    assert "Failed: 3 item(s)" in done.stderr
    # the rerun tries the failed items only (they fail again: still partial)
    before = len(calls_of(calls))
    again = run_job(folder, calls, "--job", "jobmod:picky", "--input", items, "--output", out, "--job-batch", "8")
    assert again.returncode == 1 and json.loads(again.stdout)["items_failed"] == 3
    retried = {k for c in calls_of(calls)[before:] for k in c}
    assert retried == {"i0005", "i0023", "i0024"}  # only they, split down to one item each


def test_a_wrong_number_of_results_ends_the_run_naming_the_function_and_sizes(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", ["a", "b", "c", "d"])
    done = run_job(folder, calls, "--job", "jobmod:short", "--input", items, "--output", out)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["status"] == "failed"
    assert report["error"] == (
        "job function jobmod:short returned 3 results for 4 items; it must return one result per item, in order"
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("nosuchmodule:f", "no module 'nosuchmodule'"),
        ("jobmod:nosuch", "module jobmod has no 'nosuch'"),
        ("jobmod:NOT_CALLABLE", "NOT_CALLABLE is a int, not a function"),
        ("brokenmod:f", "importing brokenmod failed: RuntimeError: boom at import"),
        ("jobmod", "--job takes MODULE:FUNCTION"),
        ("jobmod:", "--job takes MODULE:FUNCTION"),
        ("../evil:f", "--job takes MODULE:FUNCTION"),
    ],
)
def test_a_bad_job_is_one_line_and_exit_2(tmp_path, spec, words):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    done = run_job(folder, calls, "--job", spec, "--output", out)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("memtui: error: --job") and words in lines[0], done.stderr
    assert not out.exists()


def test_job_flags_go_together(tmp_path):
    folder, calls = job_folder(tmp_path), tmp_path / "calls"
    for args, words in [
        (["--job", "jobmod:length"], "--job needs --output"),
        (["--mode", "job"], "--mode job needs --job"),
        (["--output", str(tmp_path / "r.sqlite")], "--output goes with --job"),
        (["--job", "jobmod:length", "--mode", "embeddings", "--output", "x"], "--job runs mode job"),
        (["--job", "jobmod:length", "--output", "x", "--limit", "3"], "--limit does not go with --job"),
        (["--job", "jobmod:length", "--output", "x", "--cache", "c.sqlite"], "--cache does not go with --job"),
    ]:
        done = run_job(folder, calls, *args)
        assert done.returncode == 2 and words in done.stderr, (args, done.stderr)


def test_kill_9_then_the_rerun_computes_exactly_what_was_not_committed(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    n = 400
    items = write_items(tmp_path / "items.jsonl", [f"t{i}" for i in range(n)])
    env = job_env(folder, calls, JOB_SLEEP="0.02")
    args = ["run", "--job", "jobmod:slow", "--input", str(items), "--output", str(out), "--headless"]
    args += ["--job-batch", "4", "--batch-max", "2", "--batch-min", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtui", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not (out.exists() and committed(out) >= 40):
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no results committed in time"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = committed(out)
    assert 40 <= kept < n
    before = items_called(calls)
    assert before - kept <= 8  # at most the batch in flight (2 calls of 4) was lost
    done = run_job(folder, calls, "--job", "jobmod:slow", "--input", items, "--output", out, JOB_SLEEP="0")
    assert done.returncode == 0, done.stderr
    assert items_called(calls) - before == n - kept  # exactly what was not committed
    rows = results(out)
    assert [r["key"] for r in rows] == [f"i{i:04d}" for i in range(n)]
    assert [r["result"] for r in rows] == [f"T{i}" for i in range(n)]


API_SCRIPT = """
import json, sys, memtui
from jobmod import slow
seen = []
memtui.on_cleanup(lambda: seen.append(1))
report = memtui.run_job(slow, ({"id": i, "text": f"x{i}"} for i in range(30)), output=sys.argv[1], batch=4,
                        face="headless")
rows = list(memtui.read_results(sys.argv[1]))
print(json.dumps({"status": report["status"], "items": report["items_total"], "rows": rows[:2], "n": len(rows)}))
"""


def test_the_python_api_runs_a_job_and_reads_its_results(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "api.sqlite"
    env = job_env(folder, calls, JOB_SLEEP="0")
    done = subprocess.run(
        [sys.executable, "-c", API_SCRIPT, str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got == {
        "status": "success",
        "items": 30,
        "rows": [{"key": 0, "result": "X0"}, {"key": 1, "result": "X1"}],  # the id as written: an int
        "n": 30,
    }
    assert items_called(calls) == 30
    again = subprocess.run(
        [sys.executable, "-c", API_SCRIPT, str(out)], env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 0 and items_called(calls) == 30  # the API resumes too


def test_results_as_csv_and_to_a_file(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", ["a,b", 'say "hi"'])
    assert (
        run_job(folder, calls, "--job", "jobmod:slow", "--input", items, "--output", out, JOB_SLEEP="0").returncode == 0
    )
    target = tmp_path / "r.csv"
    done = memtui("results", out, "--format", "csv", "--output", target)
    assert done.returncode == 0, done.stderr
    assert target.read_text().splitlines() == ["key,result", 'i0000,"""A,B"""', 'i0001,"""SAY \\""HI\\"""""']
    refused = memtui("results", out, "--output", out)
    assert refused.returncode == 2 and "results file" in refused.stderr


def test_ids_1_and_quoted_1_are_two_items_and_a_rerun_calls_nothing(tmp_path):
    """The key is the id's JSON text: 1 and "1" once collided into one key (one result lost, and with one-item
    calls each rerun computed one of them again, for ever)."""
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = tmp_path / "items.jsonl"
    rows = [{"id": 1, "text": "int"}, {"id": "1", "text": "str"}, {"id": "sha256:1", "text": "h"}, {"text": "x"}]
    items.write_text("".join(json.dumps(row) + "\n" for row in rows))
    args = ["--job", "jobmod:slow", "--input", items, "--output", out, "--job-batch", "1"]
    assert run_job(folder, calls, *args, JOB_SLEEP="0").returncode == 0
    rows = results(out)
    assert [(r["key"], r["result"]) for r in rows[:3]] == [(1, "INT"), ("1", "STR"), ("sha256:1", "H")]
    assert len(rows) == 4 and rows[3]["key"].startswith("sha256:") and rows[3]["key"] != "sha256:1"
    before = items_called(calls)
    again = run_job(folder, calls, *args, JOB_SLEEP="0")
    assert again.returncode == 0, again.stderr
    assert items_called(calls) == before  # zero calls: each id kept its own result


def test_a_results_file_of_the_old_keying_is_read_but_never_run_into(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", ["a", "b"])
    args = ["--job", "jobmod:slow", "--input", items, "--output", out]
    assert run_job(folder, calls, *args, JOB_SLEEP="0").returncode == 0
    con = sqlite3.connect(out)  # as the first release wrote it: schema 1, keys str(id)
    with con:
        con.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
        con.execute("UPDATE results SET key = json_extract(key, '$')")
    con.close()
    before = items_called(calls)
    again = run_job(folder, calls, *args, JOB_SLEEP="0")
    assert again.returncode == 2 and items_called(calls) == before
    [line] = again.stderr.strip().splitlines()
    assert "written by an older memtui" in line and "pass a new --output" in line
    assert [(r["key"], r["result"]) for r in results(out)] == [("i0000", "A"), ("i0001", "B")]


def test_each_result_is_encoded_once(tmp_path, monkeypatch):
    """A 200 MB result once reached 2x --max-memory: it was JSON-encoded to check it, then again to store it."""
    from memtui.jobs.user import executor, items

    encodes = []
    real = json.dumps

    def counting(value, *args, **kwargs):
        if isinstance(value, str) and value.startswith("result-"):
            encodes.append(value)
        return real(value, *args, **kwargs)

    monkeypatch.setattr(executor.json, "dumps", counting)
    source = write_items(tmp_path / "items.jsonl", ["a", "b", "c"])
    fn = executor.FunctionExecutor(lambda batch: [f"result-{it['text']}" for it in batch], "t:f", call_items=2)
    job = items.ItemJob(source, tmp_path / "r.sqlite", fn)
    job.open()
    try:
        pieces = list(job.units())
        work = job.prepare(pieces)
        for indices, outputs in fn.encode_iter([text for _, text in work.to_embed]):
            for i, output in zip(indices, outputs):
                work.vectors[work.to_embed[i][0]] = output
        job.commit(work)
    finally:
        job.close()
    assert sorted(encodes) == ["result-a", "result-b", "result-c"]  # once each, not twice
    assert [r["result"] for r in results(tmp_path / "r.sqlite")] == ["result-a", "result-b", "result-c"]


def test_a_resumed_run_counts_only_its_own_items_as_committed(tmp_path):
    """Items done before the run were counted again as committed when their piece was worked; and a rerun
    that made no call said 'Calls 19/19'."""
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", [f"t{i}" for i in range(20)])
    args = ["--job", "jobmod:slow", "--input", items, "--output", out, "--job-batch", "8"]
    assert run_job(folder, calls, *args, JOB_SLEEP="0").returncode == 0
    write_items(items, [f"t{i}" for i in range(25)])  # 5 more: the piece of items 16-23 holds 4 done ones
    done = run_job(folder, calls, *args, JOB_SLEEP="0")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["responses_committed"] == 5 and report["items_skipped"] == 20 and report["items"] == 5
    assert "5 items committed to the results file" in done.stderr and "20 already done" in done.stderr
    again = run_job(folder, calls, *args, JOB_SLEEP="0")
    assert again.returncode == 0, again.stderr
    assert "0 items committed" in again.stderr and "0 items worked in this run" in again.stderr
    assert "Calls 4/4" not in again.stderr
