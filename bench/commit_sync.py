#!/usr/bin/env python3
"""What a durable commit costs: ``python bench/commit_sync.py [--domains N] [--rounds R] [--dir DIR]``.

The cache runs with ``synchronous=FULL`` (the WAL is fsynced at every commit,
so a commit that returned survives a power cut); before, ``NORMAL`` (no fsync
until a checkpoint). Side by side in one process: the first N domains of the
bundled sample are embedded once with the real model (batches of 5 domains,
as a default run), then the same batches are committed to two fresh caches,
NORMAL and FULL taking turns, R rounds. Prints the commit times next to the
embedding time of the same batches, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from itertools import islice
from pathlib import Path

from memtui.embed.model import DEFAULT_MODEL_ID, Embedder
from memtui.embed.store import CacheStore
from memtui.jobs.input import read_domains
from memtui.paths import SAMPLE_INPUT

BATCH = 5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where the caches go (default: a temp folder)")
    args = parser.parse_args()
    groups = list(islice(read_domains(SAMPLE_INPUT), args.domains))
    batches = [groups[i : i + BATCH] for i in range(0, len(groups), BATCH)]
    embedder = Embedder()
    embedder.load()
    work = []
    t0 = time.perf_counter()
    for batch in batches:
        responses = [r for g in batch for r in g.responses]
        vectors = embedder.encode([r.text for r in responses])
        work.append((responses, vectors))
    embed_s = time.perf_counter() - t0
    n = sum(len(r) for r, _ in work)
    times: dict[str, list[float]] = {"NORMAL": [], "FULL": []}
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        for rnd in range(args.rounds):
            for mode in ("NORMAL", "FULL") if rnd % 2 == 0 else ("FULL", "NORMAL"):
                store = CacheStore.open(Path(folder) / f"{mode}-{rnd}.sqlite", DEFAULT_MODEL_ID)
                store._conn.execute(f"PRAGMA synchronous={mode}")
                for responses, vectors in work:
                    keyed = {store.key(r.text): v for r, v in zip(responses, vectors)}
                    t = time.perf_counter()
                    store.commit_batch(keyed, responses)
                    times[mode].append(time.perf_counter() - t)
                store.close()
        disk = os.statvfs(folder)
    load = os.getloadavg()
    print(
        f"sample: {len(groups)} domains, {n} responses, {len(batches)} batches of {BATCH} domains; "
        f"cache folder fs block {disk.f_frsize}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"embedding those batches once: {embed_s:.2f} s ({embed_s / len(batches) * 1000:.0f} ms a batch)")
    for mode, ts in times.items():
        print(
            f"commit {mode:6}: median {statistics.median(ts) * 1000:.2f} ms, max {max(ts) * 1000:.2f} ms, "
            f"total {sum(ts) / args.rounds:.3f} s a run ({sum(ts) / args.rounds / embed_s * 100:.2f}% of embedding)"
        )


if __name__ == "__main__":
    main()
