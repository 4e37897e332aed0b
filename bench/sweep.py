#!/usr/bin/env python3
"""Tuning aid: the Embedder's token budget vs speed, sub-batch time and peak activation memory.

``python bench/sweep.py [--domains N] [--budgets auto,1024,2048,4096] [--rounds 2]``

Encodes the first N domains of the bundled sample with each budget in turn,
interleaved over rounds (the box is shared: take the medians). Per budget:
texts/s, the longest sub-batch (which bounds pause latency) and the RSS rise
over the post-load baseline while encoding (sampled every 5 ms). ``auto`` is
the default adaptive budget (memtui.embed.budget), learning across the rounds
as it would across a run's batches; its line says where it settled. The load
average is printed with the figures: the best budget moves with it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from child import proc_status
from run import SAMPLE, first_domains


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--domains", type=int, default=5)
    ap.add_argument("--budgets", default="auto,1024,2048,4096", help="token budgets; auto: the adaptive one")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--long", action="store_true", help="only the sample's answers over 1,000 words")
    args = ap.parse_args()

    from memtui.embed.model import Embedder
    from memtui.memory.cleanup import malloc_trim

    if args.long:
        texts = []
        import gzip

        with gzip.open(SAMPLE, "rt") as fh:
            for line in fh:
                t = json.loads(line)["response"]
                if len(t.split()) > 1000:
                    texts.append(t)
                if len(texts) == 96:
                    break
    else:
        path = first_domains(SAMPLE, Path("/tmp/memtui-sweep.jsonl"), args.domains)
        texts = [json.loads(line)["response"] for line in open(path)]
    embedder = Embedder()
    embedder.load()
    embedder.encode(["warm up"])
    budgets = [b.strip() for b in args.budgets.split(",")]
    rows: dict[str, list[dict[str, float]]] = {b: [] for b in budgets}
    loads = [os.getloadavg()[0]]
    for rnd in range(args.rounds):
        for b in budgets if rnd % 2 == 0 else budgets[::-1]:
            malloc_trim()
            base = proc_status()["VmRSS"]
            peak = [base]
            stop = threading.Event()

            def watch() -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], proc_status()["VmRSS"])
                    time.sleep(0.005)

            w = threading.Thread(target=watch, daemon=True)
            w.start()
            t0 = time.perf_counter()
            last = t0
            longest = 0.0
            for _ in embedder.encode_iter(texts, token_budget=None if b == "auto" else int(b)):
                now = time.perf_counter()
                longest = max(longest, now - last)
                last = now
            dt = time.perf_counter() - t0
            stop.set()
            w.join()
            rows[b].append(
                {"rate": len(texts) / dt, "longest_sub_batch_s": longest, "rise_mb": (peak[0] - base) / 2**20}
            )
            loads.append(os.getloadavg()[0])
    print(
        f"{len(texts)} texts, {args.rounds} rounds, threads {embedder.threads}, "
        f"load average (1 min) {min(loads):.1f}..{max(loads):.1f}"
    )
    for b in budgets:
        med = {k: statistics.median(r[k] for r in rows[b]) for k in rows[b][0]}
        print(
            f"budget {b:>6}: {med['rate']:6.2f} texts/s, longest sub-batch {med['longest_sub_batch_s']:5.2f}s, "
            f"RSS rise {med['rise_mb']:4.0f}MB  (rates {[round(r['rate'], 2) for r in rows[b]]})"
        )
    if embedder.budget is not None and "auto" in budgets:
        print(f"auto settled on {embedder.budget.current} (moves {embedder.budget.moves})")


if __name__ == "__main__":
    main()
