"""A user's job detached: ``ls`` lists it as mode job, ``attach --json`` streams it, ``stop`` ends it committed."""

from __future__ import annotations

import json
import re
import time

from tests.jobs.user_job_support import committed, job_env, job_folder, results, write_items
from tests.support.cli import memtui, popen_memtui

DETACHED = re.compile(r"^memtui: run (\w+) detached: pid (\d+), log (\S+); attach with: memtui attach \1$")


def test_a_detached_job_is_listed_attached_to_and_stopped(tmp_path, runs):
    run_dir, started = runs
    folder, calls, out = job_folder(tmp_path), tmp_path / "calls", tmp_path / "r.sqlite"
    items = write_items(tmp_path / "items.jsonl", [f"t{i}" for i in range(3000)])
    env = job_env(folder, calls, JOB_SLEEP="0.05", MEMTUI_RUN_DIR=str(run_dir))
    args = ["run", "--job", "jobmod:slow", "--input", items, "--output", out, "--job-batch", "2", "--detach"]
    done = memtui(*args, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    match = DETACHED.match(done.stdout.strip())
    assert match, done.stdout
    run_id, pid = match.group(1), int(match.group(2))
    started.append(pid)

    listed = memtui("ls", "--json", env=env, timeout=120)
    assert listed.returncode == 0, listed.stderr
    [row] = json.loads(listed.stdout)
    assert row["id"] == run_id and row["mode"] == "job" and row["cache"] == str(out) and row["items_total"] == 3000

    viewer = popen_memtui("attach", run_id, "--json", env=env)
    try:
        assert viewer.stdout is not None
        first = json.loads(viewer.stdout.readline())
        snapshot = first.get("snapshot", first)
        assert json.dumps(snapshot).count('"job"') >= 1  # the wire says mode job
    finally:
        viewer.kill()
        viewer.wait(timeout=30)

    deadline = time.monotonic() + 60
    while committed(out) == 0:  # some batches in: the stop then has work to keep
        assert time.monotonic() < deadline, "nothing committed in time"
        time.sleep(0.1)
    stopped = memtui("stop", run_id, env=env, timeout=120)
    assert stopped.returncode == 0, stopped.stderr
    report = json.loads((run_dir / f"{run_id}.report.json").read_text())
    assert report["status"] == "interrupted" and report["exit_code"] == 130 and report["mode"] == "job"
    kept = committed(out)
    assert 0 < kept < 3000
    assert len(results(out)) == kept
