"""A leaky function made safe by a cleanup hook (docs/jobs.md).

``leak`` keeps 30 MB per call (a cache that is never trimmed, as real code does by accident). Alone, in
a plain loop, its memory only grows. Under memtui the hook lets memtui free it when memory is high::

    PYTHONPATH=examples memtui run --job leaky_job:leak --input items.jsonl --output leak.sqlite \\
        --max-memory 0.5 --job-batch 1

completes with its peak under the breaker, where ``python examples/leaky_job.py items.jsonl`` (the same
function in a plain loop) goes past 0.5 GB.
"""

from __future__ import annotations

import json
import resource
import sys

import memtui

CHUNK = 30 << 20
_kept: list[bytes] = []


def leak(items: list[dict]) -> list[int]:
    _kept.append(b"\x01" * CHUNK)  # written bytes: resident, not a lazy zero page
    return [len(json.dumps(item)) for item in items]


@memtui.on_cleanup
def free() -> None:
    _kept.clear()


def plain_loop(path: str, per_call: int = 1) -> float:
    """The same function without memtui: every item, ``per_call`` at a time; the peak RSS in GB."""
    with open(path) as fh:
        items = [json.loads(line) for line in fh if line.strip()]
    for start in range(0, len(items), per_call):
        leak(items[start : start + per_call])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20)


if __name__ == "__main__":
    print(json.dumps({"peak_memory_gb": round(plain_loop(sys.argv[1]), 3)}))
