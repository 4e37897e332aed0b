"""A fast, deterministic Executor for tests that need a real Runner but not a real model.

It follows memtui.jobs.base.Executor: ``encode_iter`` yields (indices, unit-norm
float32 vectors of dim 384) per sub-batch of a few texts. Vectors depend only on
the text (so reruns and duplicate texts agree), a per-sub-batch ``delay_s``
lets a test pause mid-run, and an optional ``gate`` holds every sub-batch until
the test opens it.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

DIM = 384


def vector_for(text: str, dim: int = DIM) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


class FakeExecutor:
    budget = None  # a fixed token budget (memtui.jobs.base.Executor.budget)

    def __init__(
        self,
        *,
        sub_batch: int = 4,
        delay_s: float = 0.0,
        dim: int = DIM,
        gate: threading.Event | None = None,
        on_sub_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.sub_batch = sub_batch
        self.delay_s = delay_s
        self.dim = dim
        self.gate = gate
        self.on_sub_batch = on_sub_batch  # called with the running sub-batch count, before yielding
        self.released = threading.Event()  # set to make every gate wait return at once (teardown)
        #: Checked while held at the gate; True lets the sub-batch go (e.g. "the runner was asked to stop").
        self.stop_check: Callable[[], bool] | None = None
        #: Set while a sub-batch is held at the gate, so a test knows the job is parked where it wants.
        self.holding = threading.Event()
        self._loaded = False
        self.loads = self.unloads = self.clears = 0
        self.sub_batches = 0
        self.texts_encoded = 0

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
            if self.gate is not None:
                self.hold(self.gate)
            if self.delay_s:
                self.released.wait(self.delay_s)
            indices = list(range(start, min(start + self.sub_batch, len(texts))))
            vectors = np.stack([vector_for(texts[i], self.dim) for i in indices])
            self.sub_batches += 1
            self.texts_encoded += len(indices)
            if self.on_sub_batch is not None:
                self.on_sub_batch(self.sub_batches)
            yield indices, vectors

    def hold(self, gate: threading.Event) -> None:
        """Wait for ``gate`` (or release, or stop_check) with ``holding`` set meanwhile."""
        self.holding.set()
        try:
            while not gate.wait(0.02):
                if self.released.is_set() or (self.stop_check is not None and self.stop_check()):
                    return
        finally:
            self.holding.clear()

    def clear_caches(self) -> list[str]:
        self.clears += 1
        return []

    def unload(self) -> None:
        self._loaded = False
        self.unloads += 1

    def release(self) -> None:
        """End every wait (gate, delay) so a run can finish; for test teardown."""
        self.released.set()
        if self.gate is not None:
            self.gate.set()


def sleep_until(predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` in a plain thread (not the event loop); True if it came true in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()
