"""The worker side: each Dask worker guards itself with memtui's memory core.

``GuardPlugin`` is registered once by the client (``Client.register_plugin``); Dask runs its
``setup`` on every worker, now and on any worker that joins later (a nanny's restart included).
It ships only names and thresholds: each worker builds its own ``Embedder`` (loaded once, on the
first task, then kept) and its own ``MemoryMonitor`` with the per-worker thresholds.

Tasks call the module-level ``embed_domain(domain, texts)``, which looks the guard up through
``get_worker()``: the model never travels inside a task. The guard admits the domain's texts
sub-batch by sub-batch under its breaker by the local Runner's rules (``memtui.memory.admission``):
``Admission.scaled_size`` sizes the sub-batch (full when CLOSED, the minimum share at WARNING /
HALF-OPEN or after low headroom, halved after a MemoryError) and ``MemoryGate`` decides between
sub-batches: one cleanup on entering WARNING, and the same waits for an open breaker (cleanups,
backoff, unload the model, give up past the timeout: the task then fails with ``WorkerGaveUp`` and
the client ends the run as a local run would) and for a headroom below one sub-batch's cost (each
worker's ``HeadroomWatch`` measures it against the worker's binding limit: its cgroup,
MemAvailable, RLIMIT_AS).

The operator steers every worker through the client (``Client.run``): ``worker_follow`` applies the
client's ``Orders`` (pause, thresholds), ``worker_cleanup`` asks for a cleanup. Both act between
sub-batches, in the task's thread, as the local Runner does; an idle worker cleans up at once. A
pause is a lease the client renews: a worker whose client went away stops holding after
``PAUSE_LEASE_S``. Each worker's row (``rows.py``) reaches the scheduler in Dask's heartbeat.

memtui's log lines in a worker (breaker changes, warnings, cleanups, the model loaded) go to the client
as Dask events (``Worker.log_event`` on ``TOPIC``; the client subscribes and logs them, named by worker),
not to the worker's stderr: a local cluster's workers share the client's terminal, where the TUI draws.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from distributed import SchedulerPlugin, WorkerPlugin, get_worker

from memtui.cluster.rows import recent_peaks
from memtui.embed.model import DEFAULT_MAX_BATCH, Embedder
from memtui.memory.admission import Admission, MemoryGate
from memtui.memory.cleanup import malloc_trim
from memtui.memory.config import MemoryConfig
from memtui.memory.headroom import HeadroomWatch
from memtui.memory.monitor import MemoryMonitor
from memtui.memory.probe import discover_limit
from memtui.memory.units import GB

PLUGIN_NAME = "memtui-guard"
WATCH_NAME = "memtui-worker-watch"
#: The key of a worker's row in Dask's heartbeat metrics (``Worker.metrics``, ``WorkerState.metrics``).
METRIC = "memtui"
#: Texts per admitted sub-batch with the breaker CLOSED (the Embedder cuts it further by tokens).
SUB_BATCH_TEXTS = DEFAULT_MAX_BATCH
#: A worker's pause lapses this long after the client last renewed it (a client that died holds no worker).
PAUSE_LEASE_S = 30.0
#: The Dask event topic memtui's log lines in a worker go to (``Worker.log_event``, ``Client.subscribe_topic``).
TOPIC = "memtui"

log = logging.getLogger("memtui")


class WorkerGaveUp(Exception):
    """A worker's breaker stayed open past its timeout (memtui's reason in the message)."""


@dataclass(frozen=True)
class Orders:
    """What the client wants every worker to follow now; ``version`` grows with each change."""

    version: int
    paused: bool
    config: MemoryConfig


@dataclass(frozen=True)
class DomainResult:
    """What a task returns: who embedded it, the vectors in the order of the texts sent, the worker's row."""

    worker: str
    domain: str
    #: one output per text sent, in order: a float32 matrix of vectors, or a user's job's results (a list)
    vectors: Any
    row: dict[str, Any]
    #: what made the vectors, as the cache tags them (an int8 export is per instruction set): the client
    #: commits them only under the run's own tag
    vectors_of: str = ""


class WorkerGuard:
    """One worker's model and memory core (lives in the worker process, built by GuardPlugin.setup)."""

    def __init__(
        self,
        address: str,
        model: str | None,
        backend: str,
        config: MemoryConfig,
        threads: int | None,
        name: str = "",
        sub_batch_texts: int = SUB_BATCH_TEXTS,
        clock: Callable[[], float] = time.monotonic,
        headroom: HeadroomWatch | None = None,
    ):
        """``clock`` times the pause's lease (tests pass a fake one); ``headroom`` reads this worker's
        binding limit (by default the real /proc and /sys)."""
        self.address = address
        self._clock = clock
        self.sub_batch_texts = sub_batch_texts
        self.name = name or address
        self.embedder = Embedder(model, backend=backend, threads=threads)
        self.monitor = MemoryMonitor(config, limit=discover_limit())
        self.monitor.cleaner.register("model caches", self.embedder.clear_caches)
        self.headroom = headroom if headroom is not None else HeadroomWatch()
        self.incarnation = time.time()
        self._seq = itertools.count(1)
        self._lock = threading.Lock()  # held by the task running (one at a time: --nthreads 1)
        self._orders_lock = threading.Condition()  # the client's orders; wakes a held task
        self._orders = Orders(0, False, config)
        self._renewed = clock()
        self._cleanup_wanted = False
        self.items_done = 0
        self.domains_done = 0
        self.sub_batches = 0
        self.current_domain: str | None = None
        self.activity = "idle"
        self.sub_batch = sub_batch_texts
        self.loads = 0
        self._functions: dict[str, Any] = {}  # a user's job: its executor per MODULE:FUNCTION

    def start(self) -> None:
        self.monitor.add_sample_listener(self._on_sample)
        self.monitor.start()

    def _on_sample(self, now: float, rss: int) -> None:
        """The sampler's samples feed the headroom watch; one log line each way (to the client)."""
        change = self.headroom.observe(now, rss)
        if change is not None:
            (log.warning if change.low else log.info)("%s", change.message)

    def close(self) -> None:
        with self._orders_lock:
            self._orders = Orders(self._orders.version, False, self._orders.config)
            self._orders_lock.notify_all()
        self.monitor.stop()
        self.embedder.unload()

    # -- the work -----------------------------------------------------------------------------
    def embed(self, domain: str, texts: list[str]) -> DomainResult:
        return self._task(domain, len(texts), lambda: (self._embed(texts), self.embedder.vector_backend))

    def run_function(self, spec: str, call_items: int, name: str, texts: list[str]) -> DomainResult:
        """A user's job (memtui.jobs.user): the function ``spec`` names, imported here by the same rule as on
        the client, called on the items under this worker's guard; one result (or ``Failed``) per item."""

        def call() -> tuple[list[Any], str]:
            executor = self._function(spec, call_items)
            results: list[Any] = [None] * len(texts)
            for indices, outputs in self._guarded(texts, executor, "running"):
                for i, output in zip(indices, outputs):
                    results[i] = output
            return results, ""

        return self._task(name, len(texts), call)

    def _task(self, name: str, items: int, work: Callable[[], tuple[Any, str]]) -> DomainResult:
        """One task (the model's or a function's): one at a time per guard (workers run with --nthreads 1),
        its domain in the row while it runs, the heap trimmed after it, counted once done. ``work`` returns
        the outputs and what made them (``DomainResult.vectors_of``)."""
        with self._lock:
            self.current_domain = name
            try:
                outputs, vectors_of = work()
            finally:
                self.current_domain = None
                self.activity = "idle"
                malloc_trim()
            self.items_done += items
            self.domains_done += 1
            return DomainResult(self.address, name, outputs, self.row(), vectors_of=vectors_of)

    def _function(self, spec: str, call_items: int) -> Any:
        """The job's executor, imported once per worker; its cleanup hooks join this worker's cleanups."""
        if self._functions.get(spec) is None:
            from memtui.jobs.user.executor import FunctionExecutor  # noqa: PLC0415 - a job's run only
            from memtui.jobs.user.function import load_function  # noqa: PLC0415

            fn, name = load_function(spec)
            self._functions[spec] = FunctionExecutor(fn, name, call_items=call_items)
            self.monitor.cleaner.register("job cleanup hooks", self._functions[spec].clear_caches)
        return self._functions[spec]

    def _embed(self, texts: list[str]) -> np.ndarray:
        out: np.ndarray | None = None
        for indices, vectors in self._guarded(texts, self.embedder, "embedding"):
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[indices] = vectors
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def _guarded(self, texts: list[str], executor: Any, activity: str) -> Iterator[tuple[list[int], Any]]:
        """The guarded sub-batch loop, for any executor (memtui.jobs.base's contract): (indices in ``texts``,
        outputs) per sub-batch, each admitted under this worker's breaker by the local Runner's rules."""
        admission = Admission(self.monitor.config)
        gate = MemoryGate(admission, time.monotonic)
        pos = 0
        while pos < len(texts):
            self._admit(gate, executor)
            cfg = self.monitor.config
            size = admission.scaled_size(self.monitor.breaker.state, cfg, self.sub_batch_texts)
            self.sub_batch = size = max(1, size)  # admitted: the breaker is not open (a race: one text)
            chunk = texts[pos : pos + size]
            if not executor.loaded:
                self.activity = "loading model"
                executor.load()
                self.loads += 1
                log.info("🧠 Model loaded (memory %.2fGB)", self.monitor.sample() / GB)
            self.activity = activity
            budget = getattr(executor, "budget", None)
            if budget is not None:  # memory wins over speed, as in the local Runner
                budget.memory_tight = not admission.full(self.monitor.breaker.state, cfg)
            try:
                self.headroom.cost.begin(self.monitor.sample())
                try:
                    parts = list(executor.encode_iter(chunk))
                finally:
                    self.headroom.cost.end(self.monitor.sample())
            except MemoryError:
                retry = admission.memory_error(len(chunk), cfg)
                if retry.give_up:
                    raise
                self.monitor.cleanup("MemoryError")
                time.sleep(retry.sleep_s)
                continue
            for indices, outputs in parts:
                yield [pos + i for i in indices], outputs
            pos += len(chunk)
            self.sub_batches += 1
            admission.succeeded(cfg)
            self.monitor.sample()
            self.monitor.breaker.record_success()

    def _admit(self, gate: MemoryGate, executor: Any = None) -> None:
        """Before each sub-batch: the operator's cleanup and pause, then the local Runner's rule
        (``MemoryGate``): the WARNING cleanup, or wait out an open breaker or a low headroom (clean up,
        back off, unload the model, or give up)."""
        executor = executor if executor is not None else self.embedder  # what runs (the model by default)
        while True:
            self._hold()
            self.monitor.sample()
            step = gate.step(
                self.monitor.config,
                self.monitor.breaker.snapshot(),
                self.headroom.latest,
                self.monitor.rss_bytes,
                executor.loaded,
            )
            if step.admit:
                if step.warning_cleanup:
                    self.monitor.cleanup("memory warning")
                return
            assert step.wait is not None
            self.activity = "waiting for memory"
            self.sub_batch = 0  # nothing admitted (the local Runner's batch size 0)
            if step.wait.give_up is not None:
                raise WorkerGaveUp(f"{self.address}: {step.wait.give_up}")
            if step.wait.unload:
                log.warning("🧯 Memory still high after cleanups: unloading the model")
                executor.unload()
            if step.wait.cleanup is not None:
                gate.cleaned(self.monitor.cleanup(step.wait.cleanup).freed)
            with self._orders_lock:
                self._orders_lock.wait_for(lambda: self._cleanup_wanted, timeout=step.wait.sleep_s)

    def _hold(self) -> None:
        """Run a cleanup the operator asked for; while the operator's pause holds, start nothing."""
        while True:
            self._run_cleanup_wanted()
            with self._orders_lock:
                if not self._pause_holds():
                    return
                self.activity = "paused"
                self._orders_lock.wait_for(lambda: self._cleanup_wanted or not self._pause_holds(), timeout=1.0)

    def _pause_holds(self) -> bool:
        """The orders say paused and the client renewed them within the lease (orders lock held)."""
        if not self._orders.paused:
            return False
        if self._clock() - self._renewed < PAUSE_LEASE_S:
            return True
        log.warning("⏯️ The client has not renewed its pause for %.0fs: going on", PAUSE_LEASE_S)
        self._orders = Orders(self._orders.version, False, self._orders.config)
        return False

    def _run_cleanup_wanted(self) -> None:
        with self._orders_lock:
            wanted, self._cleanup_wanted = self._cleanup_wanted, False
        if wanted:
            self.monitor.cleanup("requested by operator")

    # -- steering (Client.run, from the worker's event loop) -------------------------------------
    def follow(self, orders: Orders) -> None:
        """Apply the client's orders (idempotent: sent again to renew a pause, or to a worker that lags)."""
        with self._orders_lock:
            if orders.version >= self._orders.version:
                self._orders = orders
                self._renewed = self._clock()
            self._orders_lock.notify_all()
        if orders.config != self.monitor.config:
            self.monitor.set_config(orders.config)

    def request_cleanup(self) -> None:
        """Clean up now if no task runs, else at the task's next sub-batch (in its thread)."""
        if self._lock.acquire(blocking=False):
            try:
                self.monitor.cleanup("requested by operator")
            finally:
                self._lock.release()
            return
        with self._orders_lock:
            self._cleanup_wanted = True
            self._orders_lock.notify_all()

    # -- reading ------------------------------------------------------------------------------
    def row(self) -> dict[str, Any]:
        """This worker's row (plain data: it rides Dask's heartbeat; ``rows.worker_row`` types it)."""
        snap = self.monitor.snapshot()
        with self._orders_lock:
            orders, paused = self._orders.version, self._pause_holds()
        return {
            "address": self.address,
            "name": self.name,
            "incarnation": self.incarnation,
            "seq": next(self._seq),
            "rss_bytes": snap.rss_bytes,
            "peak_bytes": snap.peak_bytes,
            "history": recent_peaks(snap.history),
            "warning_bytes": snap.warning_bytes,
            "max_bytes": snap.max_bytes,
            "breaker": snap.state.value,
            "breaker_trips": snap.breaker.trips,
            "warnings": snap.warnings,
            "cleanups": snap.cleanups,
            "batch_size": self.sub_batch,
            "current_domain": self.current_domain,
            "activity": self.activity,
            "items_done": self.items_done,
            "domains_done": self.domains_done,
            "sub_batches": self.sub_batches,
            "model_loaded": self.embedder.loaded,
            "model_loads": self.loads,
            "paused": paused,
            "orders": orders,
        }


class ToClient(logging.Handler):
    """memtui's log records in a worker, sent to the client as Dask events (thread-safe: ``log_event``
    hands a record from the task or sampler thread to the worker's event loop)."""

    def __init__(self, worker: Any) -> None:
        super().__init__(logging.INFO)
        self.worker = worker

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = {"name": str(self.worker.name), "level": record.levelname.lower(), "message": record.getMessage()}
            self.worker.log_event(TOPIC, {"address": self.worker.address, **event})
        except Exception:  # a worker closing: the line is lost, the work is not
            self.handleError(record)


class GuardPlugin(WorkerPlugin):
    """Gives every worker a WorkerGuard: its own model (loaded once) and its own memory monitor;
    its row goes into the worker's heartbeat (``Worker.metrics``)."""

    name = PLUGIN_NAME

    def __init__(
        self,
        model: str | None,
        backend: str,
        config: MemoryConfig,
        threads: int | None = None,
        sub_batch_texts: int = SUB_BATCH_TEXTS,
    ) -> None:
        self.model = model
        self.backend = backend
        self.config = config
        self.threads = threads
        self.sub_batch_texts = sub_batch_texts
        self.guard: WorkerGuard | None = None
        self._to_client: ToClient | None = None

    def setup(self, worker: Any) -> None:
        guard = WorkerGuard(
            worker.address, self.model, self.backend, self.config, self.threads, str(worker.name), self.sub_batch_texts
        )
        guard.start()
        self.guard = guard
        worker.metrics[METRIC] = lambda _worker: guard.row()
        self._to_client = ToClient(worker)
        memtui_log = logging.getLogger("memtui")
        memtui_log.addHandler(self._to_client)  # with a handler, Python's last resort (stderr) stays quiet
        if memtui_log.getEffectiveLevel() > logging.INFO:
            memtui_log.setLevel(logging.INFO)

    def teardown(self, worker: Any) -> None:
        if self._to_client is not None:
            logging.getLogger("memtui").removeHandler(self._to_client)
            self._to_client = None
        worker.metrics.pop(METRIC, None)
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


def run_items(spec: str, call_items: int, name: str, texts: list[str]) -> DomainResult:
    """A user's job's task (``functools.partial(run_items, spec, call_items)``): items in, results out."""
    return _guard().run_function(spec, call_items, name, texts)


# Client.run passes the worker as ``dask_worker`` (get_worker() works only inside a task).
def worker_row(dask_worker: Any = None) -> dict[str, Any]:
    return _guard(dask_worker).row()


def worker_cleanup(dask_worker: Any = None) -> dict[str, Any]:
    guard = _guard(dask_worker)
    guard.request_cleanup()
    return guard.row()


def worker_follow(orders: Orders, dask_worker: Any = None) -> dict[str, Any]:
    guard = _guard(dask_worker)
    guard.follow(orders)
    return guard.row()


class WorkerWatch(SchedulerPlugin):
    """On the scheduler: every worker that left during the run, in order (a worker that lives less
    than the client's poll interval, e.g. one restarted and killed again at once, is counted too)."""

    name = WATCH_NAME

    def __init__(self) -> None:
        self.removed: list[str] = []

    def remove_worker(self, scheduler: Any, worker: str, *, stimulus_id: str, **kwargs: Any) -> None:
        self.removed.append(worker)


def cluster_view(dask_scheduler: Any = None) -> dict[str, Any]:
    """Run on the scheduler (Client.run_on_scheduler), once per client poll: the live workers, those
    WorkerWatch saw leave, and each live worker's latest row from its heartbeat."""
    watch = dask_scheduler.plugins.get(WATCH_NAME)
    workers = dask_scheduler.workers
    return {
        "live": list(workers),
        "removed": list(watch.removed) if watch is not None else [],
        "rows": {address: ws.metrics[METRIC] for address, ws in workers.items() if METRIC in ws.metrics},
    }
