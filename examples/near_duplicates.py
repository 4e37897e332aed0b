"""Near-duplicate responses per domain, from memtui's embedding cache: a job whose items are domains.

After ``memtui run --mode cache --cache answers.sqlite``, list the domains and run the job over them::

    python examples/near_duplicates.py answers.sqlite > domains.jsonl        # {"id": "example.com"} per line
    NEAR_DUP_CACHE=answers.sqlite PYTHONPATH=examples memtui run --job near_duplicates:pairs \\
        --input domains.jsonl --output dups.sqlite
    memtui results dups.sqlite      # {"key": "example.com", "result": {"responses": 16, "pairs": [[id, id, 0.97]]}}

Each call reads its domains' vectors read-only (safe while a run writes the cache) and keeps the pairs
whose cosine is at least NEAR_DUP_THRESHOLD (default 0.95). The reader is closed when memtui unloads.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

import memtui

_reader: Any = None


def _cache() -> Any:
    global _reader
    if _reader is None:
        _reader = memtui.open_cache(os.environ["NEAR_DUP_CACHE"])
    return _reader


@memtui.on_cleanup(unload=True)
def close_cache() -> None:
    global _reader
    if _reader is not None:
        _reader.close()
        _reader = None


def pairs(items: list[dict]) -> list[dict]:
    threshold = float(os.environ.get("NEAR_DUP_THRESHOLD", "0.95"))
    out = []
    for item in items:
        ids: list[str] = []
        parts = []
        for batch in _cache().batches(None, [item["id"]]):
            ids.extend(batch.ids)
            parts.append(batch.matrix)
        if not ids:
            out.append({"responses": 0, "pairs": []})
            continue
        m = np.vstack(parts).astype(np.float32)
        m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
        sims = np.triu(m @ m.T, k=1)
        found = [[ids[a], ids[b], round(float(sims[a, b]), 4)] for a, b in zip(*np.nonzero(sims >= threshold))]
        out.append({"responses": len(ids), "pairs": found})
    return out


if __name__ == "__main__":
    with memtui.open_cache(sys.argv[1]) as reader:
        for domain in sorted(reader.domains()):
            print(json.dumps({"id": domain}))
