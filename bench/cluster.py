"""Cluster mode: 1 vs 2 local Dask workers on the first N domains of the bundled sample, each worker's
peak, and the client's commit rate (the single SQLite writer's ceiling). Numbers go to BENCHMARKS.md.

    .venv/bin/python bench/cluster.py [--domains 40] [--workers 1 2] [--json out.json]

Throughput is given twice: end to end (cluster start and model loads included) and steady (from the
first committed domain to the last, so the one-time load is left out). The commit rate is measured
without any model: each domain is prepared (cache lookup) and committed with random unit vectors,
exactly the client's work per domain in a cluster run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memtui.cluster.engine import ClusterRunner  # noqa: E402
from memtui.embed.model import Embedder  # noqa: E402
from memtui.events import BatchDone  # noqa: E402
from memtui.jobs.cache import CacheJob  # noqa: E402
from memtui.memory import MemoryConfig, MemoryMonitor  # noqa: E402

SAMPLE = REPO / "sample_data" / "responses.jsonl.gz"


def run_cluster(workers: int, domains: int, folder: Path) -> dict:
    embedder = Embedder()
    job = CacheJob(SAMPLE, folder / f"w{workers}.sqlite", embedder, model_id=embedder.model_id, limit_domains=domains)
    monitor = MemoryMonitor(MemoryConfig(max_memory_gb=3.0, warning_memory_gb=2.0))
    runner = ClusterRunner(job, monitor, workers=workers, model=embedder.model_id)
    events = runner.subscribe()
    commits: list[tuple[float, int]] = []
    t0 = time.perf_counter()
    import threading

    done = threading.Event()
    out: dict = {}

    def go() -> None:
        out["report"] = runner.run()
        done.set()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    while not done.is_set() or events.wait(timeout=0):
        events.wait(timeout=0.5)
        for event in events.drain():
            if isinstance(event, BatchDone):
                commits.append((time.perf_counter(), event.items))
    thread.join()
    report = out["report"]
    steady = None
    if len(commits) >= 2:
        items = sum(n for _, n in commits[1:])
        steady = items / (commits[-1][0] - commits[0][0])
    return {
        "workers": workers,
        "status": report.status,
        "items": report.items,
        "domains": report.domains_done,
        "wall_s": round(time.perf_counter() - t0, 1),
        "items_per_s_end_to_end": report.items_per_s,
        "items_per_s_steady": round(steady, 2) if steady else None,
        "client_peak_gb": report.peak_memory_gb,
        "worker_peaks_gb": [w["peak_memory_gb"] for w in report.workers or ()],
        "worker_items": [w["items_done"] for w in report.workers or ()],
    }


def commit_rate(domains: int, folder: Path) -> dict:
    """The client's own work per domain (prepare: cache lookups; commit: one transaction), no model."""
    embedder = Embedder()
    job = CacheJob(SAMPLE, folder / "commit.sqlite", embedder, model_id=embedder.model_id, limit_domains=domains)
    job.open()
    rng = np.random.default_rng(0)
    items = n = 0
    t0 = time.perf_counter()
    for unit in job.units():
        work = job.prepare([unit])
        vectors = rng.standard_normal((len(work.to_embed), 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        for (key, _), vector in zip(work.to_embed, vectors):
            work.vectors[key] = vector
        job.commit(work)
        items += work.items
        n += 1
    elapsed = time.perf_counter() - t0
    job.close()
    return {
        "domains": n,
        "items": items,
        "seconds": round(elapsed, 3),
        "items_per_s": round(items / elapsed, 1),
        "domains_per_s": round(n / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--commit-domains", type=int, default=444)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    results: dict = {"cpus": len(os.sched_getaffinity(0)), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        results["commit"] = commit_rate(args.commit_domains, folder)
        print(json.dumps(results["commit"]), flush=True)
        for n in args.workers:
            row = run_cluster(n, args.domains, folder)
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
