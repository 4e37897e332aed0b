"""Benchmark cases, one per subprocess: ``python bench/child.py ROLE [options]``.

Each role prints one JSON object as its last stdout line. Every memory figure
is this process's own VmHWM (/proc/self/status), so one case's heap never
pollutes another's. bench/run.py starts these and compares their figures.

Roles:
  memtui      the cache job through the Runner, default thresholds (as ``memtui run --headless``)
  naive       all records loaded at once, one ``model.encode`` with a large batch size
  throughput  memtui's cache job and plain ``model.encode`` over the same texts, interleaved
  latency     pause -> idle, and breaker crossing -> work held, on long texts
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GB = 1 << 30
MB = 1 << 20


# -- small helpers -------------------------------------------------------------------------------


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS / VmHWM etc. in bytes from /proc/<pid>/status."""
    out: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key.startswith("Vm") or key.startswith("Rss"):
            parts = rest.split()
            if parts and parts[0].isdigit():
                out[key] = int(parts[0]) * 1024
    return out


def vmhwm() -> int:
    return proc_status()["VmHWM"]


def emit(result: dict[str, Any]) -> None:
    result.setdefault("vmhwm_bytes", vmhwm())
    result["vmhwm_gb"] = round(result["vmhwm_bytes"] / GB, 4)
    result["loadavg_end"] = os.getloadavg()
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


def open_text(path: str):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt", encoding="utf-8") if magic == b"\x1f\x8b" else open(path, encoding="utf-8")


def read_texts(path: str) -> list[str]:
    with open_text(path) as fh:
        return [json.loads(line)["response"] for line in fh if line.strip()]


def make_runner(input_path: str, cache_path: str, embedder=None, *, trace: bool = True, config=None):
    """The runner as ``memtui run --mode cache`` wires it (cli.build_runner), default thresholds."""
    from memtui.embed.companions import trace_path
    from memtui.embed.model import Embedder
    from memtui.jobs.cache import CacheJob
    from memtui.memory.config import MemoryConfig
    from memtui.memory.monitor import MemoryMonitor
    from memtui.memory.probe import discover_limit
    from memtui.runner import Runner
    from memtui.trace import RunTrace

    embedder = embedder or Embedder()
    monitor = MemoryMonitor(config or MemoryConfig(), limit=discover_limit())
    job = CacheJob(input_path, cache_path, embedder, model_id=embedder.model_id)
    run_trace = RunTrace(trace_path(Path(cache_path))) if trace else None
    return Runner(job, monitor, trace=run_trace), embedder


# -- memtui: the cache job, default thresholds ----------------------------------------------------


def role_memtui(args: argparse.Namespace) -> None:
    from memtui.events import BatchDone

    runner, embedder = make_runner(args.input, args.cache)
    events = runner.subscribe()
    capped = threading.Event()
    if args.cap:

        def _cap() -> None:
            capped.set()
            runner.stop()

        timer = threading.Timer(args.cap, _cap)
        timer.daemon = True
        timer.start()
    # RSS read fresh once each batch is committed (after the runner's malloc_trim), against the
    # number of domains done by then; BatchDone's own rss is the sampler's last reading.
    after: list[tuple[int, int]] = []
    finished = threading.Event()

    def watch() -> None:
        seen = 0
        while not finished.is_set():
            done = runner.snapshot().units_done
            if done != seen:
                seen = done
                after.append((done, proc_status()["VmRSS"]))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    report = runner.run()
    wall = time.perf_counter() - t0
    finished.set()
    watcher.join()
    if not after or after[-1][0] != report["domains_done"]:
        after.append((report["domains_done"], proc_status()["VmRSS"]))
    batch_rss = [(len(e.units), e.rss) for e in events.drain() if isinstance(e, BatchDone)]
    emit(
        {
            "role": "memtui",
            "capped": capped.is_set(),
            "wall_s": round(wall, 3),
            "model_load_s": embedder.load_seconds,
            "report": report.to_dict(),
            "rss_after_domains": after,
            "batch_done_rss": batch_rss,
        }
    )


# -- naive: everything at once, one encode call --------------------------------------------------


def role_naive(args: argparse.Namespace) -> None:
    """What a script without memory care does: load every record, one encode with a large batch.

    Measured: VmHWM over loading all records + the model + ``model.encode`` (which sorts longest
    first, so its largest activations come in its first batch) until it ends or ``--cap`` seconds
    of encoding have passed. The output array the finished call would also hold (N x dim float32,
    built twice while sentence-transformers stacks it) is reported apart as ``output_bytes``.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from memtui.embed.model import _packaged_model_path

    t0 = time.perf_counter()
    with open_text(args.input) as fh:
        records = [json.loads(line) for line in fh if line.strip()]
    texts = [r["response"] for r in records]
    load_data_s = time.perf_counter() - t0
    rss_after_data = proc_status()["VmRSS"]

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(len(os.sched_getaffinity(0)))
    model = SentenceTransformer(str(_packaged_model_path()), device="cpu", local_files_only=True)
    dim = model.get_sentence_embedding_dimension()
    result: dict[str, Any] = {
        "role": "naive",
        "texts": len(texts),
        "batch_size": args.batch_size,
        "load_data_s": round(load_data_s, 3),
        "rss_after_data_bytes": rss_after_data,
        "output_bytes": len(texts) * dim * 4,
    }
    done = threading.Event()
    lock = threading.Lock()

    def finish(why: str) -> None:
        with lock:
            if done.is_set():
                return
            done.set()
            result["ended"] = why
            result["encode_s"] = round(time.perf_counter() - t_encode, 3)
            emit(result)
            os._exit(0)  # do not wait for the rest of a capped encode

    def watchdog() -> None:
        while not done.is_set():
            if args.cap and time.perf_counter() - t_encode >= args.cap:
                finish("time cap")
            if proc_status()["VmRSS"] >= args.rss_cap_gb * GB:
                finish("rss cap")
            time.sleep(0.05)

    t_encode = time.perf_counter()
    threading.Thread(target=watchdog, daemon=True).start()
    vectors = model.encode(
        texts, batch_size=args.batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    result["vectors"] = int(vectors.shape[0])
    finish("complete")


# -- throughput: memtui vs plain encode, interleaved -----------------------------------------------


def bert_flops(lengths: list[int], cfg: Any) -> float:
    """Forward FLOPs of a BERT-style encoder for these (unpadded) token counts.

    Per layer and sequence of L tokens: Q, K, V and output projections 2*L*4*h*h, the feed-forward
    2*L*2*h*i, attention scores and weighted values 2*2*L*L*h. Embedding lookups, norms, softmax and
    pooling are left out (small next to these).
    """
    h, i, n = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers
    return float(sum(n * (2 * L * (4 * h * h + 2 * h * i) + 4 * L * L * h) for L in lengths))


def padded_tokens(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(len(b) * max(lengths[j] for j in b) for b in batches)


def st_batches(texts: list[str], batch_size: int) -> list[list[int]]:
    """sentence-transformers' own batching: sort by character length, longest first, fixed size."""
    order = sorted(range(len(texts)), key=lambda j: -len(texts[j]))
    return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]


def matmul_gflops(threads: int, n: int = 1536, reps: int = 6) -> float:
    """Best fp32 matmul rate of this machine, same thread count as the encode."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def role_throughput(args: argparse.Namespace) -> None:
    from memtui.embed.model import Embedder

    texts = read_texts(args.input)
    embedder = Embedder(token_budget=args.token_budget) if args.token_budget else Embedder()
    model = embedder.load()
    embedder.encode(["warm up the kernels"])
    model.encode(["warm up the kernels"], show_progress_bar=False)
    workdir = Path(tempfile.mkdtemp(prefix="memtui-bench-tp-", dir=args.workdir))
    sizes = [int(s) for s in args.batch_sizes.split(",")]

    def run_memtui(rep: int) -> float:
        runner, _ = make_runner(args.input, str(workdir / f"cache-{rep}.sqlite"), embedder, trace=False)
        report = runner.run()
        assert report["status"] == "success", report
        return report["items"] / report["duration_s"]

    def run_peer(bs: int) -> float:
        t = time.perf_counter()
        model.encode(texts, batch_size=bs, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return len(texts) / (time.perf_counter() - t)

    reps: list[dict[str, Any]] = []
    best_bs = None
    for rep in range(args.repeats):
        row: dict[str, Any] = {"loadavg": os.getloadavg()[0]}
        # Alternate who goes first, so a slow spell on the box does not always hit the same side.
        peers = sizes if best_bs is None else [best_bs]
        order = ["memtui", *peers] if rep % 2 == 0 else [*peers, "memtui"]
        peer_rates: dict[int, float] = {}
        for what in order:
            if what == "memtui":
                row["memtui_items_per_s"] = run_memtui(rep)
            else:
                peer_rates[what] = run_peer(what)
        if best_bs is None:
            best_bs = max(peer_rates, key=peer_rates.get)
        row["peer_items_per_s"] = {str(k): v for k, v in peer_rates.items()}
        row["peer_best_items_per_s"] = max(peer_rates.values())
        row["ratio"] = row["memtui_items_per_s"] / row["peer_best_items_per_s"]
        reps.append(row)

    # Utilization: useful FLOPs (real token counts, no padding) over the machine's matmul rate.
    lengths = embedder.token_lengths(texts)
    unique = list(dict.fromkeys(texts))
    cfg = model[0].auto_model.config
    flops_all = bert_flops(lengths, cfg)
    flops_unique = bert_flops(embedder.token_lengths(unique), cfg)
    peak_gflops = max(matmul_gflops(embedder.threads) for _ in range(2))
    memtui_rate = statistics.median(r["memtui_items_per_s"] for r in reps)
    peer_rate = statistics.median(r["peer_best_items_per_s"] for r in reps)
    memtui_gflops = flops_unique / (len(texts) / memtui_rate) / 1e9
    peer_gflops = flops_all / (len(texts) / peer_rate) / 1e9
    ulen = embedder.token_lengths(unique)
    emit(
        {
            "role": "throughput",
            "texts": len(texts),
            "unique_texts": len(unique),
            "tokens": sum(lengths),
            "threads": embedder.threads,
            "token_budget": embedder.token_budget,
            # The adaptive budget (memtui.embed.budget): where it ended up after all pairs, and its moves.
            "token_budget_settled": embedder.budget.current if embedder.budget else None,
            "token_budget_moves": embedder.budget.moves if embedder.budget else [],
            "max_batch": embedder.max_batch,
            "peer_best_batch_size": best_bs,
            "repeats": reps,
            "ratio_median": statistics.median(r["ratio"] for r in reps),
            "memtui_items_per_s": memtui_rate,
            "peer_items_per_s": peer_rate,
            "padding": {
                "memtui_padded_tokens": padded_tokens(ulen, embedder.plan(unique)),
                "peer_padded_tokens": padded_tokens(lengths, st_batches(texts, best_bs)),
                "real_tokens": sum(lengths),
            },
            "flops_per_pass": flops_all,
            "model": {
                "layers": cfg.num_hidden_layers,
                "hidden": cfg.hidden_size,
                "intermediate": cfg.intermediate_size,
                "heads": cfg.num_attention_heads,
            },
            "matmul_gflops": peak_gflops,
            "memtui_gflops": memtui_gflops,
            "peer_gflops": peer_gflops,
            "utilization": memtui_gflops / peak_gflops,
            "peer_utilization": peer_gflops / peak_gflops,
        }
    )


# -- latency: pause and breaker on long texts ----------------------------------------------------


def role_latency(args: argparse.Namespace) -> None:
    import numpy as np

    from memtui.events import BatchStarted, BreakerChanged, PhaseChanged
    from memtui.memory.breaker import BreakerState
    from memtui.memory.cleanup import malloc_trim

    runner, embedder = make_runner(args.input, args.cache, trace=False)
    embedder.load()
    embedder.encode(["warm up"])
    events = runner.subscribe()
    worker = threading.Thread(target=runner.run, daemon=True)
    worker.start()

    def wait_for(pred, timeout: float, poll: float = 0.002) -> float | None:
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            if pred():
                return time.perf_counter()
            time.sleep(poll)
        return None

    wait_for(lambda: runner.snapshot().phase == "running", 300)
    pauses: list[float] = []
    for trial in range(args.trials):
        if not worker.is_alive():
            break
        time.sleep(0.3 + 0.7 * (trial % 3))  # land at different points of a sub-batch
        t0 = time.perf_counter()
        runner.pause()
        t1 = wait_for(lambda: runner.snapshot().phase == "paused" or not worker.is_alive(), 120)
        if t1 is not None and worker.is_alive():
            pauses.append(t1 - t0)
        runner.resume()
        wait_for(lambda: runner.snapshot().phase == "running", 10)

    # Breaker: thresholds just above today's RSS, then an allocation that crosses the breaker level.
    breaker: dict[str, Any] = {}
    if worker.is_alive():
        rss = runner.monitor.sample()
        runner.set_thresholds(warning=(rss + 600 * MB) / GB, max=(rss + 800 * MB) / GB)
        events.drain()
        time.sleep(0.5)
        t_alloc = time.time()
        block = np.ones((1100 * MB) // 8)  # touched: resident at once (RSS crosses while it fills)
        held = wait_for(lambda: runner.snapshot().phase == "waiting for memory" or not worker.is_alive(), 120)
        t_held = time.time() if held else None
        seen = events.drain()
        crossing = next((e.at for e in seen if isinstance(e, BreakerChanged) and e.new is BreakerState.OPEN), None)
        held_at = next((e.at for e in seen if isinstance(e, PhaseChanged) and e.phase == "waiting for memory"), t_held)
        starts = [e.at for e in seen if isinstance(e, BatchStarted)]
        del block
        malloc_trim()
        breaker = {
            "alloc_to_open_s": None if crossing is None else crossing - t_alloc,
            "open_to_held_s": None if crossing is None or held_at is None else held_at - crossing,
            "batches_started_after_crossing": sum(1 for t in starts if crossing is not None and t > crossing),
            "last_batch_started_rel_s": (max(starts) - crossing) if starts and crossing is not None else None,
        }
        wait_for(
            lambda: (
                runner.snapshot().memory.state is BreakerState.CLOSED
                or runner.snapshot().memory.state is BreakerState.HALF_OPEN
            ),
            30,
        )
    runner.stop()
    worker.join(timeout=300)
    emit({"role": "latency", "pauses_s": pauses, "breaker": breaker, "sub_batch_tokens": embedder.token_budget})


# -- backends: onnx-int8 vs torch through memtui, and vs the plain encode, interleaved ------------------


def role_backends(args: argparse.Namespace) -> None:
    """One process, both backends loaded: memtui's cache job on torch and on onnx-int8 (fresh caches, same
    texts) and plain ``model.encode`` at its best batch size, interleaved, who goes first alternating."""
    from memtui.embed.model import Embedder

    texts = read_texts(args.input)
    torch_e, int8_e = Embedder(), Embedder(backend="onnx-int8")
    t0 = time.perf_counter()
    int8_e.load()
    int8_load_s = time.perf_counter() - t0
    model = torch_e.load()
    for e in (torch_e, int8_e):
        e.encode(["warm up the kernels"])
    model.encode(["warm up the kernels"], show_progress_bar=False)
    workdir = Path(tempfile.mkdtemp(prefix="memtui-bench-be-", dir=args.workdir))
    sizes = [int(s) for s in args.batch_sizes.split(",")]

    def run_memtui(embedder, tag: str) -> float:
        runner, _ = make_runner(args.input, str(workdir / f"cache-{tag}.sqlite"), embedder, trace=False)
        report = runner.run()
        assert report["status"] == "success", report
        return report["items"] / report["duration_s"]

    def run_peer(bs: int) -> float:
        t = time.perf_counter()
        model.encode(texts, batch_size=bs, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)
        return len(texts) / (time.perf_counter() - t)

    reps: list[dict[str, Any]] = []
    best_bs = None
    for rep in range(args.repeats):
        row: dict[str, Any] = {"loadavg": os.getloadavg()[0]}
        peers = sizes if best_bs is None else [best_bs]
        order = ["int8", "torch", *peers] if rep % 2 == 0 else [*peers, "torch", "int8"]
        peer_rates: dict[int, float] = {}
        for what in order:
            if what == "int8":
                row["int8_items_per_s"] = run_memtui(int8_e, f"int8-{rep}")
            elif what == "torch":
                row["torch_items_per_s"] = run_memtui(torch_e, f"torch-{rep}")
            else:
                peer_rates[what] = run_peer(what)
        if best_bs is None:
            best_bs = max(peer_rates, key=peer_rates.get)
        row["peer_items_per_s"] = {str(k): v for k, v in peer_rates.items()}
        row["peer_best_items_per_s"] = max(peer_rates.values())
        row["backend_speedup"] = row["int8_items_per_s"] / row["torch_items_per_s"]
        row["int8_throughput_ratio"] = row["int8_items_per_s"] / row["peer_best_items_per_s"]
        row["torch_throughput_ratio"] = row["torch_items_per_s"] / row["peer_best_items_per_s"]
        reps.append(row)
    med = lambda key: statistics.median(r[key] for r in reps)  # noqa: E731
    emit(
        {
            "role": "backends",
            "texts": len(texts),
            "repeats": reps,
            "peer_best_batch_size": best_bs,
            "int8_load_s": int8_load_s,
            "int8_file": str(int8_e.load().onnx_path),
            "backend_speedup": med("backend_speedup"),
            "int8_throughput_ratio": med("int8_throughput_ratio"),
            "torch_throughput_ratio": med("torch_throughput_ratio"),
            "int8_items_per_s": med("int8_items_per_s"),
            "torch_items_per_s": med("torch_items_per_s"),
        }
    )


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("role", choices=["memtui", "naive", "throughput", "latency", "backends"])
    ap.add_argument("--input", required=True)
    ap.add_argument("--cache", default=None)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--cap", type=float, default=None, help="seconds before the case stops itself")
    ap.add_argument("--rss-cap-gb", type=float, default=8.0)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--batch-sizes", default="16,32,64")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--token-budget", type=int, default=None)
    ap.add_argument("--trials", type=int, default=3)
    args = ap.parse_args(argv)
    {
        "memtui": role_memtui,
        "naive": role_naive,
        "throughput": role_throughput,
        "latency": role_latency,
        "backends": role_backends,
    }[args.role](args)


if __name__ == "__main__":
    main()
