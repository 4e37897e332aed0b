"""A user's job on a 2-worker local Dask cluster: each worker imports the function itself and runs it under
its own guard; the client is the results file's single writer; failures are isolated on the workers too."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("distributed")

from tests.jobs.user_job_support import calls_of, job_folder, results, run_job, write_items

pytestmark = [pytest.mark.slow]


def test_a_job_on_two_workers_isolates_failures_and_resumes(tmp_path):
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    texts = [f"ok {i}" if i != 41 else "bad 41" for i in range(120)]
    items = write_items(tmp_path / "items.jsonl", texts)
    args = ["--job", "jobmod:picky", "--input", items, "--output", out, "--workers", "2", "--job-batch", "8"]
    done = run_job(folder, calls, *args, timeout=600)
    assert done.returncode == 1, done.stderr  # partial: one item failed
    report = json.loads(done.stdout)
    assert report["status"] == "partial" and report["items_failed"] == 1
    assert [f["key"] for f in report["failed_items"]] == ["i0041"]
    workers = report["workers"]
    assert len(workers) == 2 and sum(w["items_done"] for w in workers) == 120
    assert all(w["items_done"] > 0 for w in workers)  # both ran the function
    rows = results(out)
    assert [r["key"] for r in rows] == [f"i{i:04d}" for i in range(120) if i != 41]
    assert rows[0]["result"] == len("ok 0")
    # the rerun (local) computes only the failed item
    before = len(calls_of(calls))
    again = run_job(folder, calls, "--job", "jobmod:picky", "--input", items, "--output", out)
    assert again.returncode == 1 and json.loads(again.stdout)["items_failed"] == 1
    assert [k for c in calls_of(calls)[before:] for k in c] == ["i0041"]


def test_a_stop_of_a_cluster_job_whose_function_never_returns_is_bounded(tmp_path):
    """The local stop's sibling on Dask: a worker stuck in the function must not hold the client's stop."""
    import signal
    import time

    from tests.jobs.user_job_support import committed, job_env
    from tests.support.cli import popen_memtui

    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", [f"t{i}" for i in range(40)] + ["hang"] + ["u"] * 10)
    args = ["run", "--job", "jobmod:hang", "--input", items, "--output", out, "--workers", "2", "--job-batch", "1"]
    proc = popen_memtui(*args, "--headless", "--stop-grace", "5", env=job_env(folder, calls))
    try:
        deadline = time.monotonic() + 300
        while not any("i0040" in c for c in calls_of(calls)) or committed(out) == 0:
            assert time.monotonic() < deadline and proc.poll() is None, "the hanging call never began"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["status"] == "interrupted"
    rows = results(out)
    assert rows and all(r["key"] != "i0040" for r in rows)  # the stuck call's item is lost, the others kept
