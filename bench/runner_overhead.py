#!/usr/bin/env python3
"""What the runner costs: a backend's model object alone vs the whole cache job, side by side.

    nice -n -10 .venv/bin/python bench/runner_overhead.py [--texts 300] [--rounds 3] [--backends ...] [--json PATH]

Issue #22's goal 4: through the cache job each backend delivers at least 95% of its model object's
own throughput. In one process, per backend, one loaded ``Embedder`` (the model object) is measured
two ways over the first ``--texts`` responses of the bundled sample, taking turns (who goes first
alternates round by round, so a slow spell on the shared box does not always hit the same side):

* ``model``: ``Embedder.encode_iter`` over the texts in the runner's batches (pieces of a domain,
  ``batch_size_max`` pieces a batch: what the runner hands the executor), every vector consumed;
* ``job``: the cache job as ``memtui run --mode cache`` wires it (CacheJob, Runner, monitor, headroom,
  trace) on a fresh cache each round: open (scan), read, hash, look up, encode, commit, summaries.

Reported per round: texts/s of each, their ratio (job / model), the process's CPU seconds over the
wall (cores busy: 2.0 is both), the load average (1 min) before each side, and ``in_model_share``: the
share of the job's wall spent inside the model object's steps (timed around each ``encode_iter`` step),
which the box's load moves far less than a ratio of two runs. The model's load is outside both
(loaded and warmed once before the rounds).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# This folder's openvino.py must not shadow the openvino package the backend imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SAMPLE = ROOT / "sample_data" / "responses.jsonl.gz"


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def write_input(n: int, folder: Path) -> tuple[Path, list[list[str]]]:
    """The sample's first ``n`` lines as a file, and their texts in the runner's batches."""
    from memtui.jobs.pieces import PIECE_RESPONSES
    from memtui.memory.config import MemoryConfig

    with gzip.open(SAMPLE, "rt", encoding="utf-8") as fh:
        lines = [line for _, line in zip(range(n), fh)]
    path = folder / "input.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    pieces: list[list[str]] = []
    domain = None
    for line in lines:
        record = json.loads(line)
        if record["domain"] != domain or len(pieces[-1]) >= PIECE_RESPONSES:
            pieces.append([])
        domain = record["domain"]
        pieces[-1].append(record["response"])
    per = MemoryConfig().batch_size_max
    batches = [[t for piece in pieces[i : i + per] for t in piece] for i in range(0, len(pieces), per)]
    return path, batches


def run_model(embedder: Any, batches: list[list[str]], *, trim: bool = False, monitor: bool = False) -> int:
    """The model object alone; ``trim``: ``malloc_trim`` after each batch as the runner's commit does;
    ``monitor``: the runner's memory sampler and headroom watch running beside it (what the job adds
    around the model, without its serial work)."""
    from memtui.memory.cleanup import malloc_trim
    from memtui.memory.config import MemoryConfig
    from memtui.memory.headroom import HeadroomWatch
    from memtui.memory.monitor import MemoryMonitor
    from memtui.memory.probe import discover_limit

    sampler = MemoryMonitor(MemoryConfig(), limit=discover_limit()) if monitor else None
    if sampler is not None:
        headroom = HeadroomWatch()
        sampler.add_sample_listener(headroom.observe)
        sampler.start()
    n = 0
    try:
        for texts in batches:
            for indices, _vectors in embedder.encode_iter(texts):
                n += len(indices)
            if trim:
                malloc_trim()
    finally:
        if sampler is not None:
            sampler.stop()
    return n


class InModel:
    """The wall time the job spends inside the model object's ``encode_iter`` (its own steps only)."""

    def __init__(self, embedder: Any) -> None:
        self.embedder, self.seconds = embedder, 0.0
        self._inner = embedder.encode_iter

    def encode_iter(self, texts: Any, **kw: Any) -> Any:
        steps = self._inner(texts, **kw)
        while True:
            t = time.perf_counter()
            try:
                item = next(steps)
            except StopIteration:
                self.seconds += time.perf_counter() - t
                return
            self.seconds += time.perf_counter() - t
            yield item


def run_job(embedder: Any, input_path: Path, cache: Path, inside: InModel) -> int:
    from memtui.embed.companions import trace_path
    from memtui.jobs.cache import CacheJob
    from memtui.memory.config import MemoryConfig
    from memtui.memory.headroom import HeadroomWatch
    from memtui.memory.monitor import MemoryMonitor
    from memtui.memory.probe import discover_limit
    from memtui.runner import Runner
    from memtui.trace import RunTrace

    monitor = MemoryMonitor(MemoryConfig(), limit=discover_limit())
    job = CacheJob(input_path, cache, embedder, model_id=embedder.model_id)
    runner = Runner(job, monitor, trace=RunTrace(trace_path(cache)), headroom=HeadroomWatch())
    embedder.encode_iter = inside.encode_iter  # timed: the job's wall inside the model object
    try:
        report = runner.run()
    finally:
        del embedder.encode_iter
    if report.status != "success":
        raise SystemExit(f"the cache job did not succeed: {report.status} {report.error}")
    return int(report.to_dict()["items"])


def timed(fn: Callable[[], int]) -> dict[str, float]:
    load = os.getloadavg()[0]
    t, c = time.perf_counter(), cpu_s()
    n = fn()
    wall, cpu = time.perf_counter() - t, cpu_s() - c
    return {
        "texts": n,
        "wall_s": round(wall, 3),
        "texts_per_s": round(n / wall, 2),
        "cores": round(cpu / wall, 2),
        "load": round(load, 2),
    }


def bench_backend(backend: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from memtui.embed.model import Embedder

    input_path, batches = write_input(args.texts, folder)
    embedder = Embedder(backend=backend)
    embedder.load()
    embedder.encode(["warm up the kernels", "and the tokenizer"])
    rounds = []
    for r in range(args.rounds):
        inside = InModel(embedder)
        sides = {
            "model": lambda: run_model(embedder, batches),
            "job": lambda r=r: run_job(embedder, input_path, folder / f"cache-{backend}-{r}.sqlite", inside),
            "model+trim": lambda: run_model(embedder, batches, trim=True),
            "model+monitor": lambda: run_model(embedder, batches, monitor=True),
        }
        names = ["model", "job", *args.extra]
        order = names[r % len(names) :] + names[: r % len(names)]  # each side first in turn
        if len(names) == 2 and r % 2:
            order = ["job", "model"]
        row: dict[str, Any] = {name: timed(sides[name]) for name in order}
        row["ratio"] = round(row["job"]["texts_per_s"] / row["model"]["texts_per_s"], 3)
        for extra in args.extra:
            row[f"ratio_{extra}"] = round(row[extra]["texts_per_s"] / row["model"]["texts_per_s"], 3)
        # Load-proof: the share of the job's wall its model object was working (1.0: the runner costs nothing).
        row["in_model_share"] = round(inside.seconds / row["job"]["wall_s"], 3)
        rounds.append(row)
        print(backend, r, json.dumps(row), file=sys.stderr, flush=True)
    embedder.unload()
    return {
        "backend": embedder.vector_backend,
        "rounds": rounds,
        "ratio_median": statistics.median(row["ratio"] for row in rounds),
        # Over an even number of rounds each order counts alike: the geometric mean cancels a first-or-second bias.
        "ratio_geomean": round(statistics.geometric_mean(row["ratio"] for row in rounds), 3),
        "in_model_share_median": statistics.median(row["in_model_share"] for row in rounds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default="onnx-int8,openvino,torch")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        choices=["model+trim", "model+monitor"],
        help="also the model object with malloc_trim after each batch, or with the memory sampler beside it",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    results = []
    with tempfile.TemporaryDirectory(prefix="memtui-bench-overhead-") as tmp:
        for backend in args.backends.split(","):
            results.append(bench_backend(backend, args, Path(tmp)))
    out = {"texts": args.texts, "cpus": len(os.sched_getaffinity(0)), "results": results}
    for res in results:
        print(
            f"{res['backend']}: job/model {res['ratio_median']:.3f} (geometric mean {res['ratio_geomean']:.3f}), in the model {res['in_model_share_median']:.3f} "
            f"of the job's wall (medians of {len(res['rounds'])} rounds)"
        )
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
