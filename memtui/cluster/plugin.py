"""The worker side: each Dask worker guards itself with memtui's memory core.

``GuardPlugin`` is registered once by the client (``Client.register_plugin``); Dask runs its
``setup`` on every worker, now and on any worker that joins later (a nanny's restart included).
It ships only names and thresholds: each worker builds its own ``Embedder`` (loaded once, on the
first task, then kept) and its own ``MemoryMonitor`` with the per-worker thresholds.

Tasks call the module-level ``embed_domain(domain, texts)``, which looks the guard up through
``get_worker()``: the model never travels inside a task. The guard admits the domain's texts
sub-batch by sub-batch under its breaker, as the local Runner does: full sub-batches when CLOSED,
the minimum share at WARNING / HALF-OPEN, and an open breaker waits with the same
``OpenBreakerWait`` (cleanups, backoff, unload the model, give up past the timeout: the task then
fails with ``WorkerGaveUp`` and the client ends the run as a local run would). A MemoryError
halves the sub-batch (``Admission``).

``worker_stats``, ``worker_cleanup`` and ``worker_set_config`` are what the client sends to every
worker with ``Client.run``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from distributed import SchedulerPlugin, WorkerPlugin, get_worker

from memtui.embed.model import DEFAULT_MAX_BATCH, Embedder
from memtui.memory.admission import Admission, OpenBreakerWait
from memtui.memory.batching import batch_size_for
from memtui.memory.breaker import BreakerState
from memtui.memory.cleanup import malloc_trim
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.probe import discover_limit
from memtui.memory.units import GB

PLUGIN_NAME = "memtui-guard"
WATCH_NAME = "memtui-worker-watch"
#: Texts per admitted sub-batch with the breaker CLOSED (the Embedder cuts it further by tokens).
SUB_BATCH_TEXTS = DEFAULT_MAX_BATCH

log = logging.getLogger("memtui")


class WorkerGaveUp(Exception):
    """A worker's breaker stayed open past its timeout (memtui's reason in the message)."""


@dataclass(frozen=True)
class DomainResult:
    """What a task returns: who embedded it, the vectors in the order of the texts sent, the worker's stats."""

    worker: str
    domain: str
    vectors: np.ndarray
    stats: dict[str, Any]


class WorkerGuard:
    """One worker's model and memory core (lives in the worker process, built by GuardPlugin.setup)."""

    def __init__(self, address: str, model: str | None, backend: str, config: MemoryConfig, threads: int | None):
        self.address = address
        self.embedder = Embedder(model, backend=backend, threads=threads)
        self.monitor = MemoryMonitor(config, limit=discover_limit())
        self.monitor.cleaner.register("model caches", self.embedder.clear_caches)
        self._lock = threading.Lock()
        self.items_done = 0
        self.domains_done = 0
        self.current_domain: str | None = None
        self.sub_batch = SUB_BATCH_TEXTS
        self.loads = 0

    def start(self) -> None:
        self.monitor.start()

    def close(self) -> None:
        self.monitor.stop()
        self.embedder.unload()

    # -- the work -----------------------------------------------------------------------------
    def embed(self, domain: str, texts: list[str]) -> DomainResult:
        with self._lock:  # one task at a time per guard (workers run with --nthreads 1)
            self.current_domain = domain
            try:
                vectors = self._embed(texts)
            finally:
                self.current_domain = None
                malloc_trim()
            self.items_done += len(texts)
            self.domains_done += 1
            return DomainResult(self.address, domain, vectors, self.stats())

    def _embed(self, texts: list[str]) -> np.ndarray:
        out: np.ndarray | None = None
        admission = Admission(self.monitor.config)
        pos = 0
        while pos < len(texts):
            self._admit()
            cfg = self.monitor.config
            share = batch_size_for(self.monitor.breaker.state, cfg) / max(1, cfg.batch_size_max)
            size = max(1, int(SUB_BATCH_TEXTS * share))
            if admission.cap is not None:
                size = min(size, admission.cap)
            self.sub_batch = size
            chunk = texts[pos : pos + size]
            if not self.embedder.loaded:
                self.embedder.load()
                self.loads += 1
                log.info("🧠 %s: model loaded (memory %.2fGB)", self.address, self.monitor.sample() / GB)
            try:
                parts = list(self.embedder.encode_iter(chunk))
            except MemoryError:
                retry = admission.memory_error(len(chunk), cfg)
                if retry.give_up:
                    raise
                self.monitor.cleanup("MemoryError")
                time.sleep(retry.sleep_s)
                continue
            for indices, vectors in parts:
                if out is None:
                    out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
                out[[pos + i for i in indices]] = vectors
            pos += len(chunk)
            admission.succeeded(cfg)
            self.monitor.sample()
            self.monitor.breaker.record_success()
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def _admit(self) -> None:
        """Before each sub-batch: past the breaker, wait as the local Runner does (or give up)."""
        self.monitor.sample()
        if self.monitor.breaker.state is not BreakerState.OPEN:
            return
        wait = OpenBreakerWait(self.monitor.config, time.monotonic)
        while self.monitor.breaker.state is BreakerState.OPEN:
            step = wait.step(self.monitor.rss_bytes, self.embedder.loaded)
            if step.give_up is not None:
                raise WorkerGaveUp(f"{self.address}: {step.give_up}")
            if step.unload:
                log.warning("🧯 %s: memory still high after cleanups: unloading the model", self.address)
                self.embedder.unload()
            if step.cleanup is not None:
                self.monitor.cleanup(step.cleanup)
            time.sleep(step.sleep_s)
            self.monitor.sample()

    # -- reading and steering (Client.run) ----------------------------------------------------
    def stats(self) -> dict[str, Any]:
        snap = self.monitor.snapshot()
        cfg = self.monitor.config
        return {
            "address": self.address,
            "memory_gb": round(snap.rss_gb, 3),
            "peak_memory_gb": round(snap.peak_gb, 3),
            "breaker": snap.state.value,
            "breaker_trips": snap.breaker.trips,
            "memory_warnings": snap.warnings,
            "cleanups": snap.cleanups,
            "items_done": self.items_done,
            "domains_done": self.domains_done,
            "current_domain": self.current_domain,
            "batch_size": self.sub_batch,
            "model_loaded": self.embedder.loaded,
            "model_loads": self.loads,
            "max_memory_gb": cfg.max_memory_gb,
            "warning_memory_gb": cfg.warning_memory_gb,
            "history": [rss for _, rss in snap.history[-60:]],
        }


class GuardPlugin(WorkerPlugin):
    """Gives every worker a WorkerGuard: its own model (loaded once) and its own memory monitor."""

    name = PLUGIN_NAME

    def __init__(self, model: str | None, backend: str, config: MemoryConfig, threads: int | None = None) -> None:
        self.model = model
        self.backend = backend
        self.config = config
        self.threads = threads
        self.guard: WorkerGuard | None = None

    def setup(self, worker: Any) -> None:
        self.guard = WorkerGuard(worker.address, self.model, self.backend, self.config, self.threads)
        self.guard.start()

    def teardown(self, worker: Any) -> None:
        if self.guard is not None:
            self.guard.close()
            self.guard = None


def _guard(worker: Any = None) -> WorkerGuard:
    plugin = (worker or get_worker()).plugins.get(PLUGIN_NAME)
    guard = getattr(plugin, "guard", None)
    if guard is None:
        raise RuntimeError("memtui's worker plugin is not set up on this worker (Client.register_plugin)")
    return guard


def embed_domain(domain: str, texts: list[str]) -> DomainResult:
    """The task: one domain's missing texts in, their vectors out (run by a guarded worker)."""
    return _guard().embed(domain, texts)


# Client.run passes the worker as ``dask_worker`` (get_worker() works only inside a task).
def worker_stats(dask_worker: Any = None) -> dict[str, Any]:
    return _guard(dask_worker).stats()


def worker_cleanup(reason: str = "requested by operator", dask_worker: Any = None) -> dict[str, Any]:
    guard = _guard(dask_worker)
    guard.monitor.cleanup(reason)
    return guard.stats()


def worker_set_config(config: MemoryConfig, dask_worker: Any = None) -> dict[str, Any]:
    guard = _guard(dask_worker)
    guard.monitor.set_config(config)
    return guard.stats()


class WorkerWatch(SchedulerPlugin):
    """On the scheduler: every worker that left during the run, in order (a worker that lives less
    than the client's poll interval, e.g. one restarted and killed again at once, is counted too)."""

    name = WATCH_NAME

    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove_worker(self, scheduler: Any, worker: str, *, stimulus_id: str, **kwargs: Any) -> None:
        self.removed.append(worker)


def removed_workers(dask_scheduler: Any = None) -> list[str]:
    """Run on the scheduler (Client.run_on_scheduler): the workers WorkerWatch saw leave."""
    watch = dask_scheduler.plugins.get(WATCH_NAME) if dask_scheduler is not None else None
    return list(watch.removed) if watch is not None else []
