"""The client side: the cache job on a Dask cluster, with this process the single writer of the cache.

``ClusterRunner`` is the Runner (an Engine: the same snapshot, events, commands, report) with
another loop: instead of encoding batches itself, it

- starts a local cluster of N worker processes (``workers=N``) or connects to a scheduler
  (``scheduler="tcp://..."``), sets Dask's memory manager behind memtui's breaker
  (``settings.py``) and registers ``GuardPlugin`` (each worker's model and memory core). A local
  cluster speaks TLS with certificates made for this run only (``security=True``): its workers run
  as the user who started memtui (root, often), and on a shared machine any local user could
  otherwise connect to its scheduler on 127.0.0.1 and run code in them;
- streams domains as tasks, at most ``max_in_flight`` (2 x workers) at a time: a domain's
  missing texts are read, checked against the cache (``CacheJob.prepare``) and sent only when a
  slot frees, so neither the client nor the scheduler ever holds the whole input;
- commits each finished domain through ``CacheJob.commit`` in this process (one transaction per
  domain, under the cache's lock, as a local run): the same resume and the same vectors;
- counts workers that left during the run (``workers_lost``): a killed worker's tasks run again
  on another worker (Dask reschedules them), each result is committed once;
- quarantines a domain whose task was on two workers that died (Dask's ``KilledWorker``, with
  ``allowed-failures`` = 1): named in the report, not retried for ever; the run ends ``partial``;
- steers every worker as the operator steers the client: a pause holds each worker before its next
  sub-batch (and the client submits nothing), a stop lets the tasks in flight finish (for at most
  ``STOP_GRACE_S``; later ones are cancelled and left for the next run) and commits them; cleanups and
  threshold changes go to every worker (``Client.run``). The pause and the levels are ``Orders``
  with a version: a worker whose row shows an older version (one that joined later, or missed a
  message) gets them again at the next poll, and a pause is renewed while it lasts;
- bounds every wait: start-up (``address.probe`` first, for ``--scheduler``), each call to the scheduler
  (``CALL_S``), the close; a stop is noticed at every moment, and tasks in flight with no live worker for
  ``NO_WORKERS_S`` end the run instead of being waited for;
- keeps one row per worker (``snapshot().workers``, the report's ``workers``): each worker's row rides
  Dask's heartbeat to the scheduler (``Worker.metrics``), and one call per second
  (``cluster_view``) reads them all, with the workers that left.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

from memtui.cluster.address import PROBE_S, probe
from memtui.cluster.bounded import Late, Stopped, bounded
from memtui.cluster.plugin import (
    PLUGIN_NAME,
    SUB_BATCH_TEXTS,
    TOPIC,
    WATCH_NAME,
    GuardPlugin,
    Orders,
    WorkerGaveUp,
    WorkerWatch,
    cluster_view,
    embed_domain,
    worker_cleanup,
    worker_follow,
)
from memtui.cluster.rows import newer, report_entry, worker_row
from memtui.cluster.settings import ALLOWED_FAILURES, dask_config, memory_limit_bytes
from memtui.env_seconds import env_seconds
from memtui.errors import MemtuiError, RuntimeFailure
from memtui.events import Notice, WorkerDone
from memtui.jobs.base import EmbedJob, Work
from memtui.memory.config import MemoryConfig
from memtui.memory.monitor import MemoryMonitor
from memtui.records import RunReport, WorkerRow
from memtui.runner import MAX_NAMED_UNPROCESSED, Runner, RunSnapshot, Verdict
from memtui.trace import RunTrace

log = logging.getLogger("memtui")

#: Seconds between polls of the cluster's workers (lost workers, live per-worker stats).
POLL_S = 1.0
#: How long to wait for a first worker on an existing cluster (MEMTUI_WORKER_WAIT sets it, in seconds).
WORKER_WAIT_S = 60.0
#: While paused, each worker's pause is renewed this often (it lapses after plugin.PAUSE_LEASE_S).
PAUSE_RENEW_S = 5.0
#: Dask's connect to a scheduler that answered memtui's probe (address.probe), handshake included.
CONNECT_S = 30.0
#: Starting a local cluster (its scheduler and N worker processes).
CLUSTER_START_S = 180.0
#: Any one call to the scheduler or the workers (a poll, orders, a plugin, a cancel).
CALL_S = 5.0
#: Closing the client and a local cluster.
CLOSE_S = 10.0
#: After a stop, how long the tasks in flight may take to finish (and be committed) before they are cancelled.
STOP_GRACE_S = 10.0
#: With tasks in flight and no live worker this long (they died, or the scheduler went away), the run ends
#: (MEMTUI_NO_WORKERS_WAIT sets it, in seconds).
NO_WORKERS_S = 30.0


def _set_allowed_failures(n: int, dask_scheduler: Any = None) -> int:
    dask_scheduler.allowed_failures = n
    return n


def _close(client: Any) -> None:
    """A client that connected after memtui stopped waiting for it."""
    client.close(timeout=CLOSE_S)


def _close_cluster(cluster: Any) -> None:
    """A local cluster that started after memtui stopped waiting for it: its worker processes end too."""
    cluster.close(timeout=CLOSE_S)


def _unplug(client: Any) -> None:
    """memtui's plugins off a cluster it did not start: the workers drop the model and its monitor."""
    client.unregister_worker_plugin(PLUGIN_NAME)
    client.unregister_scheduler_plugin(WATCH_NAME)


def _who(name: str, address: str) -> str:
    """How log lines name a worker: ``worker 1`` (a local cluster's), else its address."""
    return f"worker {name}" if name and "://" not in name else address


def _natural(row: WorkerRow) -> list[Any]:
    """Sort key: worker 2 before worker 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", row.name)] + [row.address]


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
        sub_batch_texts: int = SUB_BATCH_TEXTS,
    ) -> None:
        """``task`` is what each domain runs as (default ``embed_domain``; tests wrap it);
        ``sub_batch_texts`` the texts a worker encodes between two checkpoints (pause, breaker)
        with its breaker CLOSED."""
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
        self._orders = Orders(0, False, monitor.config)
        self._announced = self._orders  # the last orders the log told about
        self._sent: dict[str, tuple[int, float]] = {}  # worker -> (the orders' version, when) last sent to it
        self._seen: set[str] = set()
        self._gone: set[str] = set()
        self._live: set[str] = set()
        self._workers: dict[str, WorkerRow] = {}
        self._readings: dict[str, dict[str, Any]] = {}  # worker -> the raw row its WorkerRow was made from
        self._quarantined: list[str] = []
        self._failed: list[str] = []
        self._last_poll = 0.0
        self._no_workers_since: float | None = None  # since when no live worker answered a poll
        self._dropped: list[str] = []  # domains in flight when the run ended without them (for the next run)
        self._seq = itertools.count(1)
        self._task = task
        self._sub_batch_texts = sub_batch_texts
        # Settable so the suite need not sit through a minute of certain failure (docs/cluster.md).
        self._worker_wait_s = env_seconds("MEMTUI_WORKER_WAIT", WORKER_WAIT_S)
        self._no_workers_s = env_seconds("MEMTUI_NO_WORKERS_WAIT", NO_WORKERS_S)
        self._probe_s = env_seconds("MEMTUI_PROBE_WAIT", PROBE_S)

    # -- commands: the Runner's, and every worker follows ---------------------------------------
    def pause(self) -> None:
        super().pause()
        self._reorder()

    def resume(self) -> None:
        super().resume()
        self._reorder()

    def stop(self) -> None:
        super().stop()
        self._reorder()  # a paused worker lets its task in flight finish, to be committed

    def request_cleanup(self) -> None:
        with self._wake:
            self._forward_cleanup = True
        super().request_cleanup()

    def set_thresholds(self, **levels: Any) -> MemoryConfig:
        config = super().set_thresholds(**levels)
        self._reorder()
        return config

    def set_batch_limits(self, *, minimum: int | None = None, maximum: int | None = None) -> MemoryConfig:
        config = super().set_batch_limits(minimum=minimum, maximum=maximum)
        self._reorder()
        return config

    def _reorder(self) -> None:
        """New orders for the workers when what they should follow changed (the loop sends them)."""
        with self._wake:
            paused = self._paused and not self._stop_requested
            config = self.monitor.config
            if (paused, config) != (self._orders.paused, self._orders.config):
                self._orders = Orders(self._orders.version + 1, paused, config)
            self._wake.notify_all()

    # -- reading --------------------------------------------------------------------------------
    def snapshot(self) -> RunSnapshot:
        """The Runner's snapshot with one row per worker seen."""
        return replace(super().snapshot(), workers=self._rows())

    def _rows(self) -> tuple[WorkerRow, ...]:
        with self._lock:
            return tuple(sorted(self._workers.values(), key=_natural))

    def _take(self, readings: dict[str, Any]) -> None:
        """Keep each worker's newest row (a heartbeat read late must not turn a row back)."""
        with self._lock:
            for address, data in readings.items():
                if not isinstance(data, dict) or not newer(data, self._readings.get(address)):
                    continue  # an error from that worker, or an older reading
                try:
                    row = worker_row(data, lost=address in self._gone)
                except (KeyError, TypeError, ValueError) as exc:  # a worker of another memtui version
                    log.debug("worker %s sent a row memtui cannot read: %s", address, exc)
                    continue
                self._readings[address] = data
                self._workers[address] = row

    # -- the cluster ----------------------------------------------------------------------------
    def open(self) -> None:
        """The Runner's open (faces call it before they start), and for a local cluster multiprocessing's
        resource tracker, started now while ``sys.stderr`` is still this process's own: the TUI puts a
        capture without a file descriptor in its place, and the tracker, started with the first worker
        process, passes stderr's descriptor on (every worker failed: "bad value(s) in fds_to_keep")."""
        super().open()
        if self.n_workers is not None:
            from multiprocessing import resource_tracker  # noqa: PLC0415

            resource_tracker.ensure_running()

    def describe(self) -> str:
        return self.scheduler_address or f"a local cluster of {self.n_workers} worker process(es)"

    def _stopped(self) -> bool:
        return self._requests().stop

    def _connect(self) -> bool:
        """Start or reach the cluster; False if a stop came first. Every phase is bounded and ends, when
        it fails, in one RuntimeFailure naming the address and what to check (exit 1)."""
        self._set_phase("starting cluster", self.describe())
        try:
            return self._start_cluster()
        except Stopped:
            return False
        except MemtuiError:
            raise
        except Exception as exc:  # Dask's own errors: one line, not a traceback
            raise RuntimeFailure(f"cluster {self.describe()}: {exc.__class__.__name__}: {exc}") from None

    def _start_cluster(self) -> bool:
        import dask  # noqa: PLC0415 - distributed loads only for a cluster run
        from distributed import Client, LocalCluster  # noqa: PLC0415

        config = self.monitor.config
        if self.scheduler_address is None:
            assert self.n_workers is not None
            n_workers = self.n_workers

            def start_local() -> Any:
                with dask.config.set(dask_config()):
                    return LocalCluster(
                        n_workers=n_workers,
                        threads_per_worker=1,
                        processes=True,
                        memory_limit=memory_limit_bytes(config),
                        host="127.0.0.1",
                        dashboard_address=None,
                        # no dashboard; Dask's HTTP server (its routes are off: settings.py) on a free local
                        # port, not 8787, where it would warn "Port 8787 is already in use" beside another cluster
                        scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                        silence_logs=logging.ERROR,
                        security=True,  # temporary certificates: only this client may connect
                    )

            try:
                self._cluster = self._bounded(start_local, CLUSTER_START_S, close=_close_cluster)
                cluster = self._cluster
                self._client = self._bounded(lambda: Client(cluster), CONNECT_S, close=_close)
            except Late:
                raise RuntimeFailure(
                    f"a local cluster of {n_workers} worker(s) did not start within {CLUSTER_START_S:.0f} s; "
                    "check the machine's load and memory, or try fewer --workers"
                ) from None
        else:
            address = self.scheduler_address
            check = "check the address and that 'dask scheduler' runs there"
            if not probe(
                address, timeout_s=self._probe_s, stopped=self._stopped
            ):  # a silent or foreign listener ends here, in one line
                return False
            try:
                self._client = self._bounded(lambda: Client(address, timeout=CONNECT_S), CONNECT_S + 5, close=_close)
            except Late:
                raise RuntimeFailure(
                    f"scheduler {address}: did not take this client within {CONNECT_S:.0f} s; {check}"
                ) from None
            except OSError as exc:
                raise RuntimeFailure(f"scheduler {address}: {exc}; {check}") from None
            deadline = time.monotonic() + self._worker_wait_s
            while True:
                try:
                    self._client.wait_for_workers(1, timeout=1.0)
                    break
                except TimeoutError:
                    if self._stopped():
                        return False
                    if time.monotonic() >= deadline:
                        raise RuntimeFailure(
                            f"scheduler {address} has no workers after {self._worker_wait_s:g} s; start some with "
                            f"'dask worker {address}' (see memtui.cluster.settings for their memory settings)"
                        ) from None
        self._client.run_on_scheduler(_set_allowed_failures, ALLOWED_FAILURES, callback_timeout=CALL_S)
        client = self._client
        self._bounded(lambda: client.register_plugin(WorkerWatch()), CALL_S)  # a fresh count of workers that leave
        # Local workers share this machine's cores; a worker elsewhere uses its own.
        threads = max(1, len(os.sched_getaffinity(0)) // self.n_workers) if self.n_workers else None
        with self._wake:
            self._orders = self._announced = Orders(0, False, config)  # what GuardPlugin gives every worker
        self._bounded(lambda: client.subscribe_topic(TOPIC, self._on_worker_log), CALL_S)  # before the plugin
        guard = GuardPlugin(self.model, self.backend, config, threads, self._sub_batch_texts)
        # each worker loads the model in the plugin's setup: as long as a local cluster may take to start
        self._bounded(lambda: client.register_plugin(guard), CLUSTER_START_S)
        self._reorder()  # a pause or a change asked for while the cluster started
        self._poll(force=True)
        self._publish(
            Notice(
                f"🖧 Cluster ready: {len(self._seen)} worker(s) on {self.describe()}; per-worker breaker "
                f"{config.max_memory_gb:.2f}GB, Dask memory_limit {memory_limit_bytes(config) / 2**30:.2f}GB"
            )
        )
        return True

    def _bounded(self, fn: Callable[[], Any], timeout_s: float, *, close: Callable[[Any], object] | None = None) -> Any:
        """``fn()`` within ``timeout_s``, left at once on a stop (``Stopped``); ``close`` ends what it
        returns too late. ``Late`` names the call in Dask's terms."""
        return bounded(fn, timeout_s=timeout_s, stopped=self._stopped, on_late=close, name="memtui-dask-call")

    def _on_worker_log(self, event: tuple[float, Any]) -> None:
        """A worker's memtui log line (a Dask event, in the client's event loop): one Notice, named by worker."""
        _, line = event
        if not isinstance(line, dict):
            return
        who = _who(str(line.get("name") or ""), str(line.get("address") or "?"))
        level = {"warning": "warning", "error": "error", "critical": "error"}.get(str(line.get("level")), "info")
        self._publish(Notice(f"{who}: {line.get('message', '')}", level=level))

    def _disconnect(self) -> None:
        """Every step bounded: a scheduler or workers gone with the terminal's session must not hold the exit.
        On a cluster memtui did not start, its plugins (and the model they hold) leave the workers."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        steps: list[tuple[str, Callable[[], object], float]] = []
        if client is not None:
            steps.append(("unsubscribing from the workers' log", lambda: client.unsubscribe_topic(TOPIC), CALL_S))
            if cluster is None:
                steps.append(("removing memtui's plugin from the workers", lambda: _unplug(client), CALL_S))
            steps.append(("closing the client", lambda: client.close(timeout=CLOSE_S), CLOSE_S + 5))
        if cluster is not None:
            steps.append(("closing the local cluster", lambda: cluster.close(timeout=CLOSE_S), CLOSE_S + 5))
        for what, step, timeout_s in steps:
            try:
                bounded(step, timeout_s=timeout_s, name="memtui-dask-close")
            except Exception as exc:  # a scheduler gone, a worker that does not answer: the run still ends
                log.debug("%s failed: %s: %s", what, exc.__class__.__name__, exc)

    def _poll(self, *, force: bool = False) -> None:
        """Lost workers (seen before, gone now) and every live worker's row, at most every POLL_S:
        one call to the scheduler, which has the rows from the workers' heartbeats."""
        now = time.monotonic()
        if not force and now - self._last_poll < POLL_S:
            return
        self._last_poll = now
        if self._client is None:
            return
        try:
            view = self._client.run_on_scheduler(cluster_view, callback_timeout=CALL_S)
        except Exception as exc:  # a poll that failed is retried at the next one
            log.debug("cluster poll failed: %s", exc)
            if self._no_workers_since is None:
                self._no_workers_since = now
            return
        live, removed = set(view["live"]), set(view["removed"])
        if live:
            self._no_workers_since = None
        elif self._no_workers_since is None:
            self._no_workers_since = now
        lost = ((self._seen - live) | removed) - self._gone
        for address in sorted(lost):
            self._gone.add(address)
            self._publish(Notice(f"💀 Worker {address} lost: its domains run again on another worker", level="warning"))
        with self._lock:
            self._live = live - self._gone
            for address in lost:
                if address in self._workers:
                    self._workers[address] = replace(self._workers[address], lost=True)
        self._take(view["rows"])
        self._seen |= live

    def _forward(self) -> None:
        """What the operator asked for reaches every worker: a cleanup once, the orders until each
        worker's row shows them (a worker that joined later too), a pause renewed while it lasts."""
        with self._wake:
            cleanup, self._forward_cleanup = self._forward_cleanup, False
            orders = self._orders
        if cleanup:
            replies = self._send(worker_cleanup)
            self._publish(Notice(f"🧹 Cleanup sent to {len(replies)} worker(s)"))
        now = time.monotonic()
        with self._lock:
            due = sorted(address for address in self._live if self._due(address, orders, now))
        if due:
            for address in due:
                self._sent[address] = (orders.version, now)
            self._send(worker_follow, orders, workers=due)
        if orders.version != self._announced.version:
            self._announce(orders)

    def _due(self, address: str, orders: Orders, now: float) -> bool:
        """Whether a worker gets the orders now (lock held): new ones at once, again each poll while its
        row does not show them (a worker that joined later, a message lost), a pause every PAUSE_RENEW_S."""
        version, when = self._sent.get(address, (-1, float("-inf")))
        row = self._workers.get(address)
        if row is None or row.orders < orders.version:
            return version != orders.version or now - when >= POLL_S
        return orders.paused and now - when >= PAUSE_RENEW_S

    def _send(self, function: Callable[..., Any], *args: Any, workers: list[str] | None = None) -> list[str]:
        """Run ``function`` on the workers (all, or those named); keep the rows they return; who answered."""
        try:
            replies = self._client.run(function, *args, workers=workers, on_error="return", callback_timeout=CALL_S)
        except Exception as exc:  # a worker that left meanwhile: the next poll sends again
            log.debug("sending %s to the workers failed: %s", function.__name__, exc)
            return []
        self._take(replies)
        return [address for address, reply in replies.items() if isinstance(reply, dict)]

    def _announce(self, orders: Orders) -> None:
        """One log line per change the workers were told about."""
        before, self._announced = self._announced, orders
        workers = len(self._live)
        if orders.config != before.config:
            self._publish(Notice(f"🎚️ Thresholds sent to {workers} worker(s)"))
        if orders.paused and not before.paused:
            self._publish(Notice(f"⏸️ Pause sent to {workers} worker(s): each holds after its sub-batch in flight"))
        elif before.paused and not orders.paused:
            self._publish(Notice(f"▶️ {workers} worker(s) go on"))

    # -- the loop -------------------------------------------------------------------------------
    def _place(self) -> Verdict:
        """Batches run on the cluster's workers (the Runner's placement hook), one domain per task."""
        try:
            if not self._connect():  # stopped while the cluster started: nothing was sent
                self._record_left(self.job.units())
                return Verdict.STOP
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
        give_up_at = float("inf")  # once stopping: when the tasks in flight are cancelled, if not done
        while True:
            requests = self._requests()
            stop, paused = requests.stop, requests.paused
            self._forward()
            if stop and not stopping:
                stopping, verdict = True, Verdict.STOP
                self._set_phase("stopping")
            if stopping and give_up_at == float("inf"):
                give_up_at = time.monotonic() + STOP_GRACE_S
            if not stopping and not paused:
                checked = self._checkpoint()  # the client's own memory, cleanups asked for
                if checked is not Verdict.CONTINUE:
                    stopping, verdict = True, checked
            elif paused and not stopping:
                self._set_phase("paused")
                self._clean_up_if_asked()  # the workers got theirs (_forward); this process's own
            # Fill the free slots: one domain per task, prepared (its texts missing from the cache) just in time.
            while not stopping and not paused and not exhausted and len(in_flight) < self._slots():
                unit = next(units, None)
                if unit is None:
                    exhausted = True
                    break
                work = self.job.prepare([unit])
                if not work.to_embed:
                    self._commit(work, complete=True, started=self._clock())
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
            self._set_in_flight(tuple(dict.fromkeys(w.names[0] for w, _ in in_flight.values())))
            if in_flight and self._workers_gone_for() >= self._no_workers_s and verdict is not Verdict.ABORT:
                verdict = self._abort(
                    f"no worker left on {self.describe()} for {self._no_workers_s:g} s (they died or were "
                    f"stopped): {len(in_flight)} domain(s) in flight are left for the next run; check the workers"
                )
                stopping = True
                give_up_at = time.monotonic()
            if in_flight and time.monotonic() >= give_up_at:
                self._drop(in_flight)
                continue
            if not in_flight:
                if stopping or exhausted:
                    break
                # paused with nothing in flight: wait for a command
                self._wait_for(lambda: not self._paused or self._stop_requested, 0.5)
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
                    result = future.result(timeout=CALL_S)
                except TimeoutError:  # finished, but its result could not be fetched (its worker just died)
                    in_flight[future] = (work, started)  # Dask computes it again; asked again next tick
                    continue
                except KilledWorker:
                    if name not in self._quarantined:  # another piece of a domain already quarantined
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
                    stopping, verdict = True, self._abort(str(exc))
                    continue
                except Exception as exc:  # a task's own failure: named, the run ends
                    self._failed.append(name)
                    why = f"domain {name!r} failed on a worker: {exc.__class__.__name__}: {exc}"
                    stopping, verdict = True, self._abort(why, "❌")
                    continue
                tag = self.job.backend  # the cache's key for these vectors
                if tag is not None and result.vectors_of != tag:  # e.g. an AVX2 worker's int8 vectors, VNNI cache
                    self._failed.append(name)
                    why = (
                        f"worker {result.worker} makes {result.vectors_of or 'unnamed'} vectors, this run's "
                        f"cache keys are {tag}: they never mix; run the workers on one CPU kind, "
                        "or use --backend torch"
                    )
                    stopping, verdict = True, self._abort(why, "❌")
                    continue
                for (key, _), vector in zip(work.to_embed, result.vectors):
                    work.vectors[key] = vector
                self._commit(work, complete=True, started=started)
                self._take({result.worker: result.row})
                row = result.row
                who = _who(str(row.get("name") or ""), result.worker)
                self._publish(
                    WorkerDone(
                        who,
                        name,
                        len(work.to_embed),
                        self._clock() - started,
                        int(row["rss_bytes"]),
                        int(row["peak_bytes"]),
                        str(row["breaker"]),
                    )
                )
            self._poll()
        self._record_left(units)
        return verdict

    def _workers_gone_for(self) -> float:
        """How long no live worker has answered (0 while some do)."""
        since = self._no_workers_since
        return 0.0 if since is None else time.monotonic() - since

    def _drop(self, in_flight: dict[Any, tuple[Work, float]]) -> None:
        """Cancel the tasks still in flight (a stop's grace is over, or no worker is left): their domains
        are left for the next run, which finds them missing from the cache."""
        futures = list(in_flight)
        names = [work.names[0] for work, _ in in_flight.values()]
        in_flight.clear()
        self._dropped.extend(names)
        client = self._client
        try:
            bounded(lambda: client.cancel(futures, force=True), timeout_s=CALL_S, name="memtui-dask-cancel")
        except Exception as exc:  # the scheduler is gone: nothing runs them any more anyway
            log.debug("cancelling %d task(s) failed: %s", len(futures), exc)
        self._publish(
            Notice(f"⏹️ {len(names)} domain(s) in flight did not finish in time: left for the next run", level="warning")
        )

    def _clean_up_if_asked(self) -> None:
        if self._take_cleanup():
            self.monitor.cleanup("requested by operator")

    def _slots(self) -> int:
        if self._max_in_flight is not None:
            return self._max_in_flight
        live = len(self._seen - self._gone) or self.n_workers or 1
        return 2 * live

    def _record_left(self, units: Iterator[Any]) -> None:
        names = list(dict.fromkeys([*self._quarantined, *self._failed, *self._dropped]))
        named = set(names)
        count = len(names)
        last = None
        for unit in units:  # pieces (memtui.jobs.pieces): a domain counts once
            if unit.name == last or unit.name in named:
                continue
            last = unit.name
            count += 1
            if len(names) < MAX_NAMED_UNPROCESSED:
                names.append(unit.name)
        self._leave(names, count)

    # -- the report -----------------------------------------------------------------------------
    def _finish_report(self, report: RunReport) -> RunReport:
        """The Runner's report with the cluster's fields; a quarantined domain makes a success partial."""
        if report.status == "success" and self._quarantined:
            report = replace(report, status="partial", exit_code=1)
        return replace(
            report,
            workers=tuple(report_entry(row) for row in self._rows()),
            workers_lost=len(self._gone),
            quarantined=tuple(self._quarantined),
            cluster=self.describe(),
        )
