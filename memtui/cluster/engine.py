"""The client side: the cache job on a Dask cluster, with this process the single writer of the cache.

``ClusterRunner`` is the Runner (an Engine: the same snapshot, events, commands, report) with
another loop: instead of encoding batches itself, it

- starts a local cluster of N worker processes (``workers=N``) or connects to a scheduler
  (``scheduler="tcp://..."``), sets Dask's memory manager behind memtui's breaker
  (``settings.py``) and registers ``GuardPlugin`` (each worker's model and memory core);
- streams domains as tasks, at most ``max_in_flight`` (2 x workers) at a time: a domain's
  missing texts are read, checked against the cache (``CacheJob.prepare``) and sent only when a
  slot frees, so neither the client nor the scheduler ever holds the whole input;
- commits each finished domain through ``CacheJob.commit`` in this process (one transaction per
  domain, under the cache's lock, as a local run): the same resume and the same vectors;
- counts workers that left during the run (``workers_lost``): a killed worker's tasks run again
  on another worker (Dask reschedules them), each result is committed once;
- quarantines a domain whose task was on two workers that died (Dask's ``KilledWorker``, with
  ``allowed-failures`` = 1): named in the report, not retried for ever; the run ends ``partial``;
- stops submitting on pause or stop, lets the tasks in flight finish and commits them; forwards
  cleanups and threshold changes to every worker (``Client.run``).
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from memtui.cluster.plugin import (
    GuardPlugin,
    WorkerGaveUp,
    WorkerWatch,
    embed_domain,
    removed_workers,
    worker_cleanup,
    worker_set_config,
    worker_stats,
)
from memtui.cluster.settings import ALLOWED_FAILURES, dask_config, memory_limit_bytes
from memtui.events import Notice
from memtui.jobs.base import EmbedJob, Work
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.records import RunReport
from memtui.runner import MAX_NAMED_UNPROCESSED, Runner, Verdict
from memtui.trace import RunTrace

log = logging.getLogger("memtui")

#: Seconds between polls of the cluster's workers (lost workers, live per-worker stats).
POLL_S = 1.0
#: How long to wait for a first worker on an existing cluster.
WORKER_WAIT_S = 60.0


def _set_allowed_failures(n: int, dask_scheduler: Any = None) -> int:
    dask_scheduler.allowed_failures = n
    return n


def _worker_addresses(dask_scheduler: Any = None) -> list[str]:
    return list(dask_scheduler.workers)


class ClusterRunner(Runner):
    """The cache job on a Dask cluster (an Engine, like the Runner it extends)."""

    def __init__(
        self,
        job: EmbedJob,
        monitor: MemoryMonitor,
        *,
        workers: int | None = None,
        scheduler: str | None = None,
        model: str | None = None,
        backend: str = "torch",
        max_in_flight: int | None = None,
        trace: RunTrace | None = None,
        clock: Callable[[], float] = time.monotonic,
        task: Callable[[str, list[str]], Any] = embed_domain,
    ) -> None:
        """``task`` is what each domain runs as (default ``embed_domain``; tests wrap it)."""
        if (workers is None) == (scheduler is None):
            raise ValueError("ClusterRunner needs workers=N or scheduler=ADDRESS (one of them)")
        super().__init__(job, monitor, clock=clock, trace=trace)
        self.n_workers = workers
        self.scheduler_address = scheduler
        self.model = model
        self.backend = backend
        self._max_in_flight = max_in_flight
        self._client: Any = None
        self._cluster: Any = None
        self._forward_cleanup = False
        self._forward_config: MemoryConfig | None = None
        self._seen: set[str] = set()
        self._gone: set[str] = set()
        self._workers: dict[str, dict[str, Any]] = {}
        self._quarantined: list[str] = []
        self._failed: list[str] = []
        self._last_poll = 0.0
        self._seq = itertools.count(1)
        self._task = task

    # -- commands: the Runner's, forwarded to every worker too ----------------------------------
    def request_cleanup(self) -> None:
        with self._wake:
            self._forward_cleanup = True
        super().request_cleanup()

    def set_thresholds(self, **levels: Any) -> MemoryConfig:
        config = super().set_thresholds(**levels)
        with self._wake:
            self._forward_config = config
        return config

    def worker_rows(self) -> list[dict[str, Any]]:
        """The latest stats of every worker seen (a face's per-worker rows); any thread."""
        with self._lock:
            return [dict(row) for row in self._workers.values()]

    # -- the cluster ----------------------------------------------------------------------------
    def describe(self) -> str:
        return self.scheduler_address or f"a local cluster of {self.n_workers} worker process(es)"

    def _connect(self) -> None:
        import dask  # noqa: PLC0415 - distributed loads only for a cluster run
        from distributed import Client, LocalCluster  # noqa: PLC0415

        self._set_phase("starting cluster", self.describe())
        config = self.monitor.config
        if self.scheduler_address is None:
            assert self.n_workers is not None
            with dask.config.set(dask_config()):
                self._cluster = LocalCluster(
                    n_workers=self.n_workers,
                    threads_per_worker=1,
                    processes=True,
                    memory_limit=memory_limit_bytes(config),
                    host="127.0.0.1",
                    dashboard_address=None,
                    silence_logs=logging.ERROR,
                )
                self._client = Client(self._cluster)
        else:
            self._client = Client(self.scheduler_address, timeout=30)
            self._client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        self._client.run_on_scheduler(_set_allowed_failures, ALLOWED_FAILURES)
        self._client.register_plugin(WorkerWatch())  # a fresh count of workers that leave, for this run
        # Local workers share this machine's cores; a worker elsewhere uses its own.
        threads = max(1, len(os.sched_getaffinity(0)) // self.n_workers) if self.n_workers else None
        self._client.register_plugin(GuardPlugin(self.model, self.backend, config, threads))
        self._poll(force=True)
        self._publish(
            Notice(
                f"🖧 Cluster ready: {len(self._seen)} worker(s) on {self.describe()}; per-worker breaker "
                f"{config.max_memory_gb:.2f}GB, Dask memory_limit {memory_limit_bytes(config) / 2**30:.2f}GB"
            )
        )

    def _disconnect(self) -> None:
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        try:
            if client is not None:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    def _live_workers(self) -> list[str]:
        return list(self._client.run_on_scheduler(_worker_addresses))

    def _poll(self, *, force: bool = False) -> None:
        """Lost workers (seen before, gone now) and every live worker's stats, at most every POLL_S."""
        now = time.monotonic()
        if not force and now - self._last_poll < POLL_S:
            return
        self._last_poll = now
        try:
            live = set(self._live_workers())
            removed = set(self._client.run_on_scheduler(removed_workers))
            stats = self._client.run(worker_stats, workers=list(live), on_error="return") if live else {}
        except Exception as exc:  # a poll that failed is retried at the next one
            log.debug("cluster poll failed: %s", exc)
            return
        lost = ((self._seen - live) | removed) - self._gone
        for address in sorted(lost):
            self._gone.add(address)
            self._publish(Notice(f"💀 Worker {address} lost: its domains run again on another worker", level="warning"))
        with self._lock:
            for address in lost:
                if address in self._workers:
                    self._workers[address]["lost"] = True
            for address, row in stats.items():
                if isinstance(row, dict):
                    self._workers[address] = {**row, "lost": False}
        self._seen |= live

    def _forward(self) -> None:
        """Cleanups and thresholds the operator asked for go to every worker."""
        with self._wake:
            cleanup, self._forward_cleanup = self._forward_cleanup, False
            config, self._forward_config = self._forward_config, None
        if cleanup:
            self._client.run(worker_cleanup, "requested by operator", on_error="return")
            self._publish(Notice("🧹 Cleanup sent to every worker"))
        if config is not None:
            self._client.run(worker_set_config, config, on_error="return")
            self._publish(Notice("🎚️ Thresholds sent to every worker"))

    # -- the loop -------------------------------------------------------------------------------
    def _loop(self) -> Verdict:
        self._connect()
        try:
            return self._stream()
        finally:
            try:
                self._poll(force=True)
            finally:
                self._disconnect()

    def _stream(self) -> Verdict:
        from distributed import wait  # noqa: PLC0415
        from distributed.scheduler import KilledWorker  # noqa: PLC0415

        units: Iterator[Any] = self.job.units()
        exhausted = False
        in_flight: dict[Any, tuple[Work, float]] = {}
        verdict = Verdict.CONTINUE
        stopping = False
        while True:
            with self._wake:
                stop, paused = self._stop_requested, self._paused
            self._forward()
            if stop and not stopping:
                stopping, verdict = True, Verdict.STOP
                self._set_phase("stopping")
            if not stopping and not paused:
                checked = self._checkpoint()  # the client's own memory, cleanups asked for
                if checked is not Verdict.CONTINUE:
                    stopping, verdict = True, checked
            elif paused and not stopping:
                self._set_phase("paused")
            # Fill the free slots: one domain per task, prepared (its texts missing from the cache) just in time.
            while not stopping and not paused and not exhausted and len(in_flight) < self._slots():
                unit = next(units, None)
                if unit is None:
                    exhausted = True
                    break
                work = self.job.prepare([unit])
                if not work.to_embed:
                    self._batch_t0 = self._clock()
                    self._commit(work, complete=True)
                    continue
                future = self._client.submit(
                    self._task,
                    unit.name,
                    [text for _, text in work.to_embed],
                    key=f"memtui-embed-{next(self._seq)}",
                    pure=False,
                    retries=0,
                )
                in_flight[future] = (work, self._clock())
                self._set_phase("running")
            with self._lock:
                self._in_flight = tuple(w.names[0] for w, _ in in_flight.values())
            if not in_flight:
                if stopping or exhausted:
                    break
                with self._wake:  # paused with nothing in flight: wait for a command
                    self._wake.wait_for(lambda: not self._paused or self._stop_requested, timeout=0.5)
                self._poll()
                continue
            try:
                done, _ = wait(list(in_flight), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:  # nothing finished within the tick: poll, then wait again
                done = set()
            for future in done:
                work, started = in_flight.pop(future)
                name = work.names[0]
                try:
                    result = future.result()
                except KilledWorker:
                    self._quarantined.append(name)
                    self._publish(
                        Notice(
                            f"☣️ Domain {name!r} quarantined: the workers running it died {ALLOWED_FAILURES + 1} "
                            "times; not retried",
                            level="error",
                        )
                    )
                    continue
                except WorkerGaveUp as exc:
                    self._failed.append(name)
                    with self._lock:
                        self._abort_reason = str(exc)
                    self._publish(Notice(f"🚨 {exc}", level="error"))
                    stopping, verdict = True, Verdict.ABORT
                    continue
                except Exception as exc:  # a task's own failure: named, the run ends
                    self._failed.append(name)
                    with self._lock:
                        self._abort_reason = f"domain {name!r} failed on a worker: {exc.__class__.__name__}: {exc}"
                    self._publish(Notice(f"❌ {self._abort_reason}", level="error"))
                    stopping, verdict = True, Verdict.ABORT
                    continue
                for (key, _), vector in zip(work.to_embed, result.vectors):
                    work.vectors[key] = vector
                self._batch_t0 = started
                self._commit(work, complete=True)
                with self._lock:
                    self._workers[result.worker] = {**result.stats, "lost": False}
                self._publish(
                    Notice(
                        f"🖥️ {result.worker}: {name} · {len(work.to_embed)} embedded in "
                        f"{self._clock() - started:.1f}s · worker mem {result.stats['memory_gb']:.2f}GB "
                        f"peak {result.stats['peak_memory_gb']:.2f}GB · breaker {result.stats['breaker']}"
                    )
                )
            self._poll()
        self._record_left(units)
        return verdict

    def _slots(self) -> int:
        if self._max_in_flight is not None:
            return self._max_in_flight
        live = len(self._seen - self._gone) or self.n_workers or 1
        return 2 * live

    def _record_left(self, units: Iterator[Any]) -> None:
        names = [*self._quarantined, *self._failed]
        count = len(names)
        for unit in units:
            count += 1
            if len(names) < MAX_NAMED_UNPROCESSED:
                names.append(unit.name)
        with self._lock:
            self._unprocessed, self._unprocessed_count = names[:MAX_NAMED_UNPROCESSED], count

    # -- the report -----------------------------------------------------------------------------
    def _build_report(self, status: str, error: str | None, exit_code: int) -> RunReport:
        if status == "success" and self._quarantined:
            status, exit_code = "partial", 1
        report = super()._build_report(status, error, exit_code)
        with self._lock:
            rows = tuple({k: v for k, v in row.items() if k != "history"} for _, row in sorted(self._workers.items()))
        return replace(
            report,
            workers=rows,
            workers_lost=len(self._gone),
            quarantined=tuple(self._quarantined),
            cluster=self.describe(),
        )
