#!/usr/bin/env python3
"""Throughput of two memtui source trees, side by side: ``python bench/compare_trees.py BEFORE [AFTER]``.

A change that must not slow memtui down (hardening, a refactor) is measured
against the commit before it in one invocation: the same input, a fresh cache
per run, runs interleaved (before, after, before, after ...) so the shared
machine's load falls on both alike. BEFORE and AFTER are git revisions
(checked out into temporary worktrees) or folders; AFTER defaults to this tree.
Prints texts/s per run and the median ratio after/before as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATE = ROOT / "sample_data" / "generate.py"


def tree(rev: str, scratch: Path) -> Path:
    """A folder holding revision ``rev`` (a folder is taken as it is)."""
    if Path(rev).is_dir():
        return Path(rev).resolve()
    out = scratch / f"tree-{rev.replace('/', '_')}"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--force", str(out), rev],
        check=True,
        capture_output=True,
    )
    return out


def run_once(src: Path, data: Path, cache: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(src)}
    env = {k: v for k, v in env.items() if not k.startswith("MEMTUI_")}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "memtui", "run", "--headless", "--input", str(data), "--cache", str(cache)],
        cwd=src,
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{src}: memtui exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    report = json.loads(done.stdout)
    return {
        "wall_s": round(wall, 2),
        "items": report["items"],
        "texts_per_s": round(report["items"] / wall, 2),
        "peak_memory_gb": report["peak_memory_gb"],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("before", help="git revision or folder of the baseline")
    ap.add_argument("after", nargs="?", default=str(ROOT), help="git revision or folder (default: this tree)")
    ap.add_argument("--domains", type=int, default=8, help="domains of generated input (default 8)")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved before/after pairs (default 3)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="memtui-compare-") as tmp:
        scratch = Path(tmp)
        data = scratch / "in.jsonl.gz"
        subprocess.run(
            [sys.executable, str(GENERATE), "--out", str(data), "--domains", str(args.domains), "--quiet"], check=True
        )
        trees = {"before": tree(args.before, scratch), "after": tree(args.after, scratch)}
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        try:
            for i in range(args.pairs):
                order = ("before", "after") if i % 2 == 0 else ("after", "before")
                for side in order:
                    result = run_once(trees[side], data, scratch / f"{side}-{i}.sqlite")
                    runs[side].append(result)
                    print(f"{side:>6} run {i + 1}: {result}", file=sys.stderr)
        finally:
            for path in trees.values():
                if path.is_relative_to(scratch):
                    subprocess.run(
                        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)], capture_output=True
                    )
    median = {side: statistics.median(r["texts_per_s"] for r in rs) for side, rs in runs.items()}
    print(
        json.dumps(
            {
                "before": args.before,
                "after": args.after,
                "runs": runs,
                "median_texts_per_s": median,
                "ratio_after_to_before": round(median["after"] / median["before"], 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
