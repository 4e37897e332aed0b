"""A fast, deterministic executor for engine and TUI tests.

The real model takes seconds to load and its timing varies; these tests need
to pause, stop and fault a run at a chosen sub-batch. Vectors are derived from
a hash of the text, unit-norm float32, so the cache logic sees real data.
At least one test per behaviour also runs with the real model (tests/test_cli.py).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

DIM = 384


def hash_vector(text: str, dim: int = DIM) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


class HashExecutor:
    """Executor protocol (memtui/jobs/base.py) with knobs for tests.

    ``sub_batch``: texts per yielded sub-batch; ``delay_s``: sleep per sub-batch
    (a test can pause mid-batch); ``on_sub_batch(texts)``: a hook that may
    allocate, retain or raise MemoryError, to drive memory faults.
    """

    def __init__(self, *, sub_batch: int = 4, delay_s: float = 0.0,
                 on_sub_batch: Callable[[Sequence[str]], None] | None = None) -> None:
        self.sub_batch = sub_batch
        self.delay_s = delay_s
        self.on_sub_batch = on_sub_batch
        self.loads = 0
        self.unloads = 0
        self.cache_clears = 0
        self.encoded: list[str] = []
        self._loaded = False
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._loaded

    def load(self) -> None:
        if not self._loaded:
            self._loaded = True
            self.loads += 1

    def encode_iter(self, texts: Sequence[str]) -> Iterator[tuple[list[int], np.ndarray]]:
        self.load()
        for start in range(0, len(texts), self.sub_batch):
            chunk = list(range(start, min(start + self.sub_batch, len(texts))))
            if self.delay_s:
                time.sleep(self.delay_s)
            if self.on_sub_batch is not None:
                self.on_sub_batch([texts[i] for i in chunk])
            with self._lock:
                self.encoded.extend(texts[i] for i in chunk)
            yield chunk, np.stack([hash_vector(texts[i]) for i in chunk])

    def clear_caches(self) -> None:
        self.cache_clears += 1

    def unload(self) -> None:
        if self._loaded:
            self._loaded = False
            self.unloads += 1
