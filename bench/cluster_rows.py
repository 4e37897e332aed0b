"""Cluster mode: what one worker row costs (issue #15's per-worker rows), numbers for BENCHMARKS.md.

    .venv/bin/python bench/cluster_rows.py [--workers 2] [--calls 200]

- a worker's ``row()``: computed on every heartbeat (0.5 s up to 10 workers) in the worker's event loop;
- the client's poll, one ``run_on_scheduler(cluster_view)`` a second: every row from the heartbeats;
- the way before it, one ``Client.run`` broadcast to every worker a second, for comparison;
- ``ClusterRunner.snapshot()`` with 2 and 64 rows (the TUI polls it four times a second).

No model is loaded (the guard loads it on its first task); the cluster is real.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from memtui.cluster.engine import ClusterRunner  # noqa: E402
from memtui.cluster.plugin import GuardPlugin, WorkerWatch, _guard, cluster_view, worker_row  # noqa: E402
from memtui.cluster.rows import worker_row as typed_row  # noqa: E402
from memtui.cluster.settings import dask_config, memory_limit_bytes  # noqa: E402
from memtui.embed.model import Embedder  # noqa: E402
from memtui.jobs.cache import CacheJob  # noqa: E402
from memtui.memory import MemoryConfig, MemoryMonitor  # noqa: E402

CONFIG = MemoryConfig(max_memory_gb=3.0, warning_memory_gb=2.0)


def _timed(call, n: int) -> dict[str, float]:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    times.sort()
    return {"median_ms": statistics.median(times) * 1e3, "p95_ms": times[int(0.95 * (len(times) - 1))] * 1e3}


def _row_cost(calls: int, dask_worker=None) -> float:
    guard = _guard(dask_worker)
    t0 = time.perf_counter()
    for _ in range(calls):
        guard.row()
    return (time.perf_counter() - t0) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import dask
    from distributed import Client, LocalCluster

    out: dict = {"load_before": os.getloadavg(), "workers": args.workers}
    with dask.config.set(dask_config()):
        cluster = LocalCluster(
            n_workers=args.workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=memory_limit_bytes(CONFIG),
            host="127.0.0.1",
            dashboard_address=None,
        )
    client = Client(cluster)
    try:
        client.register_plugin(WorkerWatch())
        client.register_plugin(GuardPlugin(None, "torch", CONFIG))
        time.sleep(2)  # a heartbeat or two carries the rows
        out["row_us"] = client.run(_row_cost, 1000)
        view = client.run_on_scheduler(cluster_view)
        out["rows_in_view"] = len(view["rows"])
        out["row_bytes"] = len(json.dumps(next(iter(view["rows"].values()))))
        out["poll_cluster_view"] = _timed(lambda: client.run_on_scheduler(cluster_view), args.calls)
        out["poll_broadcast_before"] = _timed(lambda: client.run(worker_row), args.calls)
    finally:
        client.close()
        cluster.close()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.jsonl"
        source.write_text('{"id": "a", "domain": "d", "model": "m", "prompt_type": "p", "response": "x"}\n')
        embedder = Embedder()
        job = CacheJob(source, Path(tmp) / "c.sqlite", embedder, model_id=embedder.model_id)
        runner = ClusterRunner(job, MemoryMonitor(CONFIG), scheduler="tcp://127.0.0.1:1")
        runner.open()
        row = view["rows"][next(iter(view["rows"]))]
        for n in (2, 64):
            runner._workers = {
                f"tcp://h:{i}": typed_row({**row, "address": f"tcp://h:{i}", "name": str(i)}) for i in range(n)
            }
            out[f"snapshot_{n}_rows"] = _timed(runner.snapshot, args.calls)
    out["load_after"] = os.getloadavg()
    text = json.dumps(out, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
