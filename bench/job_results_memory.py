#!/usr/bin/env python3
"""Peak RSS of a job whose results are big: ``python bench/job_results_memory.py [--mb 50] [--items 6]``.

A job function returns one string of ``--mb`` MB per item (``--job-batch 1``); the run and then
``memtui results`` (to a file) are real processes, their peak RSS read from ``wait4``. A small-result run
of the same items gives the baseline. All of one batch's items are held until its commit (here the 6 items are one
batch), so the run's target is baseline + (items in a batch + 1) results: each result's JSON text, once,
and one result object being encoded. The export's target is baseline + 2 rows at most (SQLite's check of
the row, and a 1 MiB piece being copied), whatever the row's size.

Measured (50 MB x 6, load ~5.5 on 2 shared cores; RSS does not depend on load):
  before (encoded twice; export parsed and encoded each row):  run +602 MiB = 12.0 results, export 9.0 rows
  after  (encoded once; export copies the stored text):         run +352 MiB =  7.0 results, export 2.0 rows
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

MODULE = """
import os
MB = int(os.environ["BENCH_MB"])

def big(items):
    return ["x" * (MB << 20) for _ in items]

def small(items):
    return ["x" for _ in items]
"""


def peak_mb(args: list[str], env: dict[str, str]) -> tuple[int, float]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "memtui", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0,):
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"memtui {' '.join(args[:3])} failed ({proc.returncode}): {err[-2000:]}")
    return proc.returncode, usage.ru_maxrss / 1024  # KiB -> MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50)
    parser.add_argument("--items", type=int, default=6)
    opts = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="memtui-bench-") as tmp:
        folder = Path(tmp)
        (folder / "benchmod.py").write_text(MODULE)
        items = folder / "items.jsonl"
        items.write_text("".join(json.dumps({"id": f"i{i}"}) + "\n" for i in range(opts.items)))
        env = {**os.environ, "PYTHONPATH": str(folder), "BENCH_MB": str(opts.mb), "HF_HUB_OFFLINE": "1"}
        run = ["run", "--input", str(items), "--job-batch", "1", "--headless"]
        _, base = peak_mb([*run, "--job", "benchmod:small", "--output", str(folder / "small.sqlite")], env)
        _, peak = peak_mb([*run, "--job", "benchmod:big", "--output", str(folder / "big.sqlite")], env)
        results = ["results", str(folder / "big.sqlite"), "--output", str(folder / "out.jsonl")]
        _, export = peak_mb(results, env)
        _, export_base = peak_mb(["results", str(folder / "small.sqlite"), "--output", str(folder / "o2.jsonl")], env)
    mb = opts.mb
    print(f"results of {mb} MB x {opts.items} items (--job-batch 1), load {os.getloadavg()[0]:.2f}")
    print(
        f"run:    baseline {base:.0f} MiB, peak {peak:.0f} MiB: +{peak - base:.0f} MiB = {(peak - base) / mb:.1f} results"
    )
    print(
        f"export: baseline {export_base:.0f} MiB, peak {export:.0f} MiB: +{export - export_base:.0f} MiB "
        f"= {(export - export_base) / mb:.1f} rows"
    )


if __name__ == "__main__":
    main()
