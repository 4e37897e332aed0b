"""The session's large cache (the ``large_cache`` fixture): the export's and ``memtui similar``'s
bounded-memory tests read the same 200,000 rows, so they are written once."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from memtui.embed.store import CacheStore, key_for
from memtui.records import Response

ROWS = 200_000
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def build(cache: Path) -> Path:
    """``ROWS`` rows through the store's API (random unit vectors), 10,000 per transaction."""
    rng = np.random.default_rng(3)
    with CacheStore.open(cache, MODEL_ID) as store:
        for start in range(0, ROWS, 10_000):
            responses = [
                Response(f"r{i:07d}", f"d{i // 100:05d}.example", "claude", "trust", f"text {i}", i)
                for i in range(start, start + 10_000)
            ]
            block = rng.standard_normal((10_000, 384)).astype(np.float32)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            store.commit_batch({key_for(MODEL_ID, r.text): v for r, v in zip(responses, block, strict=True)}, responses)
    return cache
