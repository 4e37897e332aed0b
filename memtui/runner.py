"""The engine: one loop that admits batches under the memory core's rules.

``Runner`` is an Engine (memtui.engine). Faces drive it only through
thread-safe commands (pause, resume, cleanup, set_thresholds,
set_batch_limits, stop) and read it only through immutable
``snapshot()``s and the event stream (``subscribe()``). The loop runs in
whichever thread calls ``run()``; it checks commands and the breaker between
batches and between the sub-batches of a long encode.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from memtui.engine import PROTOCOL_COMMANDS, Engine
from memtui.engine_core import EngineCore, Wording
from memtui.errors import MemtuiError
from memtui.events import (
    BatchDone,
    BatchStarted,
    BreakerChanged,
    CleanupRan,
    MemoryWarning,
    Notice,
    PhaseChanged,
    RunFinished,
)
from memtui.jobs.base import EmbedJob, Unit, Work
from memtui.memory.admission import Admission, MemoryGate, OpenBreakerWait
from memtui.memory.breaker import BreakerState, BreakerTransition
from memtui.memory.cleanup import CleanupReport, malloc_trim
from memtui.memory.config import MemoryConfig
from memtui.memory.config_layers import threshold_changes
from memtui.memory.headroom import Headroom, HeadroomWatch
from memtui.memory.monitor import MemoryMonitor, MemorySnapshot
from memtui.memory.units import GB, format_duration
from memtui.progress import HELD_PHASES, WAITING_PHASE, Progress
from memtui.records import RunReport, WorkerRow
from memtui.trace import RunTrace

log = logging.getLogger("memtui")

#: Names of unprocessed domains kept in a report (the count is always exact).
MAX_NAMED_UNPROCESSED = 1000


class Verdict(enum.Enum):
    CONTINUE = "continue"
    STOP = "stop"  # the operator asked to stop (q, Ctrl-C)
    ABORT = "abort"  # the breaker stayed open past its timeout


@dataclass(frozen=True)
class RunSnapshot:
    mode: str
    input: str
    cache: str
    model: str
    phase: str
    paused: bool
    stopping: bool
    units_done: int
    units_total: int
    items_done: int
    items_total: int
    items_skipped: int
    items_embedded: int
    bad_lines: int
    batches: int
    batch_size: int
    batch_min: int
    batch_max: int
    in_flight: tuple[str, ...]
    in_flight_progress: tuple[int, int]
    elapsed_s: float
    items_per_s: float
    eta_s: float | None
    model_loaded: bool
    memory: MemorySnapshot
    report: RunReport | None
    #: While the breaker (or a low headroom) holds the job: running time left before the run gives up (a countdown).
    breaker_gives_up_in_s: float | None = None
    #: When (the clock's time) the job last started running batches; None while it is not (loading, paused,
    #: waiting for memory). A memory trend is the job's only from here on.
    running_since: float | None = None
    #: The memory that gets the job killed (system, cgroup, RLIMIT_AS) against one batch's cost; None: not read.
    headroom: Headroom | None = None
    #: A cluster run's workers, one row each (memtui.cluster); empty for a local run.
    workers: tuple[WorkerRow, ...] = ()
    #: What makes the vectors, as the cache tags them (``torch``, ``onnx-int8/r3/avx512_vnni``); None: unknown.
    backend: str | None = None

    @property
    def finished(self) -> bool:
        return self.report is not None

    @property
    def words(self) -> tuple[str, str]:
        """What every face calls the items and the units: responses and domains, or a user's job's items and
        calls (memtui.jobs.user: a call is one unit of the batches)."""
        return ("items", "calls") if self.mode == "job" else ("responses", "domains")

    @property
    def eta_text(self) -> str:
        """The ETA as every face says it: no extrapolation while the job is held (paused, or waiting for memory)."""
        if self.paused:
            return "paused"
        if self.phase == WAITING_PHASE:
            return "waiting for memory"
        return format_duration(self.eta_s)

    @property
    def responses_done(self) -> int:
        """The responses every face counts as done: the same number the run report gives once it is over.

        While the job runs, work in flight counts (a first batch of many minutes does not sit at 0.0%).
        Once it is over, the report's count: a stop or an abort mid-batch commits the unfinished domains'
        vectors too (a rerun keeps them), and no face may say less than the report.
        """
        if self.report is not None:
            committed = self.report.responses_committed
            return self.items_done if committed is None else self.items_skipped + committed
        return self.items_done + self.in_flight_progress[0]


@runtime_checkable
class JobEngine(Engine, Protocol):
    """An engine of the job kind (``kind == "job"``: the Runner, the ClusterRunner, a remote job): what the
    job's TUI (``MemtuiApp``) may do with it beyond the Engine contract."""

    def snapshot(self) -> RunSnapshot: ...

    def set_thresholds(
        self,
        *,
        warning: str | float | None = None,
        max: str | float | None = None,
        reset: str | float | None = None,
        reset_follows: bool = False,
    ) -> MemoryConfig: ...

    def set_batch_limits(self, *, minimum: int | None = None, maximum: int | None = None) -> MemoryConfig: ...


#: What the Runner's commands say in the log.
RUNNER_WORDING = Wording(
    pause="⏸️ Pause requested: stopping after the sub-batch in flight",
    resume="▶️ Resumed",
    stop="⏹️ Stop requested: committing the batch in flight",
)


class Runner(EngineCore):
    """The embedding job's engine (an Engine: memtui.engine); commands, events and working time: EngineCore."""

    kind = "job"
    commands = (*PROTOCOL_COMMANDS, "set_batch_limits")

    def __init__(
        self,
        job: EmbedJob,
        monitor: MemoryMonitor,
        *,
        clock: Callable[[], float] = time.monotonic,
        trace: RunTrace | None = None,
        sleep: Callable[[float], None] | None = None,
        headroom: HeadroomWatch | None = None,
    ) -> None:
        """``clock`` and ``sleep`` drive the memory waits (backoff after a MemoryError, the open
        breaker); the default sleep is a wait on the command condition, so stop, resume and a
        requested cleanup wake it at once. Tests pass a fake clock and its sleep. ``headroom``
        reads the system and cgroup on the monitor's samples (None: not shown)."""
        super().__init__(clock=clock, wording=RUNNER_WORDING)
        self.job = job
        self.headroom = headroom
        self.monitor = monitor
        self.trace = trace
        self._previous_abnormal_end: str | None = None
        self._sleep = sleep if sleep is not None else self._sleep_responsive
        self._breaker_released = False  # the breaker left OPEN: an open-breaker sleep ends at once
        # progress
        self._phase = "starting"
        self._progress = Progress()  # counts, rate, ETA: one rule for the snapshot and the report
        self._batch_size = monitor.config.batch_size_max
        self._report: RunReport | None = None
        self._unprocessed: list[str] = []
        self._unprocessed_count = 0
        self._abort_reason: str | None = None  # why the breaker gave up, in the operator's terms
        self._floor_bytes: int | None = None  # memtui's measured floor, when that was why
        self._open_wait: OpenBreakerWait | None = None  # the open breaker's wait in progress (its countdown)
        self._running_since: float | None = None  # when the phase last became "running"
        #: Seconds a stop waits for the batch in flight before the run ends without it (None: no bound,
        #: the built-in jobs' own encode always returns). A user's function may never return (run --job).
        self.stop_grace_s: float | None = None
        self.abandoned = False  # the grace ran out: the report is out, run()'s thread is left where it hangs
        self._in_run = False
        self._grace_started = False
        # loop state, touched only by the thread in run()
        self._opened = False
        self._batch_t0 = 0.0
        self._completed_names: frozenset[str] = frozenset()  # domains the last commit finished
        self._finished_units: frozenset[int] | None = None  # id() of the units the last commit finished
        # between two batches, what memory allows (the WARNING cleanup, the open-breaker and headroom waits);
        # its admission is _place's (batch sizes, MemoryError retries, the headroom's brake)
        self._gate = MemoryGate(Admission(monitor.config), clock)
        self._admission: Admission | None = None  # the loop's: each sub-batch's token budget stays within it

    # -- commands (any thread): pause, resume, stop, request_cleanup are EngineCore's -----
    def set_thresholds(
        self,
        *,
        warning: str | float | None = None,
        max: str | float | None = None,
        reset: str | float | None = None,
        reset_follows: bool = False,
    ) -> MemoryConfig:
        """Change warning/breaker/reset levels mid-run (GB, MB or a percent of the limit).

        ``reset_follows``: the reset level goes back to following the warning level.
        Raises ConfigError with a one-line message and applies nothing if invalid.
        """
        limit = self.monitor.limit.bytes if self.monitor.limit else None
        changes: dict[str, float | None] = dict(threshold_changes(warning=warning, max=max, limit_bytes=limit))
        if reset is not None:
            changes.update(threshold_changes(reset=reset, limit_bytes=limit))
        elif reset_follows:
            changes["reset_memory_gb"] = None
        config = self.monitor.update_config(**changes)
        self._publish(
            Notice(
                f"🎚️ Thresholds set: warning {config.warning_memory_gb:.2f}GB, breaker {config.max_memory_gb:.2f}GB,"
                f" reset {config.reset_bytes / GB:.2f}GB"
            )
        )
        return config

    def set_batch_limits(self, *, minimum: int | None = None, maximum: int | None = None) -> MemoryConfig:
        changes = {}
        if minimum is not None:
            changes["batch_size_min"] = minimum
        if maximum is not None:
            changes["batch_size_max"] = maximum
        config = self.monitor.update_config(**changes)
        self._publish(Notice(f"🎚️ Batch size limits set: {config.batch_size_min}..{config.batch_size_max}"))
        return config

    def _stopping(self) -> None:
        self._watch_stop()

    def _watch_stop(self) -> None:
        """A bounded stop: after ``stop_grace_s`` the run ends without its batch in flight (_abandon)."""
        with self._lock:
            if self.stop_grace_s is None or self._grace_started or not self._in_run or self._report is not None:
                return
            self._grace_started = True
            deadline = self._clock() + self.stop_grace_s
        threading.Thread(target=self._grace, args=(deadline,), name="memtui-stop-grace", daemon=True).start()

    def _grace(self, deadline: float) -> None:
        with self._wake:
            while self._report is None and (left := deadline - self._clock()) > 0:
                self._wake.wait(timeout=min(0.5, left))
            if self._report is not None:
                return
        self._abandon()

    def _abandon(self) -> None:
        """The stop's grace ran out and run() is still in the job's code (a function that never returns):
        the run reports ``interrupted`` now, from this thread. Everything committed stays; the batch in
        flight is lost, as with kill -9; nothing is committed after this. The host process must end
        (memtui.cli.wiring.run_face does, with os._exit): run()'s thread cannot be stopped from outside."""
        with self._lock:
            if self._report is not None:
                return
            self.abandoned = True
            progress = self._progress
            lost = ", ".join(progress.in_flight[:5]) or "none"
            self._abort_reason = (
                f"stopped: the job did not return within {self.stop_grace_s:g} s of the stop; the batch in flight "
                f"({lost}) is lost, everything committed before it is kept"
            )
            self._unprocessed = list(progress.in_flight[:MAX_NAMED_UNPROCESSED])
            self._unprocessed_count = max(0, progress.units_total - progress.units_done)
        if self.trace is not None:
            self.trace.end("interrupted")
        self._end()
        with self._lock:
            self._progress.settled()
            self._open_wait = None
        report = self._build_report("interrupted", None, 130)
        self._set_phase("interrupted")
        with self._lock:
            self._report = report
        self._publish(Notice(f"⏹️ {self._abort_reason}", level="warning"))
        self._publish(RunFinished(report, level="error"))

    def emergency_exit(self, why: str) -> None:
        """The process exits at once (Engine): committed batches are safe; the trace says why, so the next
        start says what happened instead of guessing at a kill."""
        if self.trace is not None:
            self.trace.end(why)

    # -- reading (any thread): subscribe, unsubscribe, paused are EngineCore's --------
    def snapshot(self) -> RunSnapshot:
        memory = self.monitor.snapshot()
        with self._lock:
            now = self._clock()
            elapsed = self._elapsed(now)
            progress = self._progress
            working = self._working(now)
            rate = progress.recent_rate(self._active(now), working)
            eta = progress.eta(rate, started=self._t0 is not None, held=self._phase in HELD_PHASES)
            cfg = self.monitor.config
            return RunSnapshot(
                mode=self.job.mode,
                input=self.job.input_path,
                cache=self.job.cache_path,
                model=self.job.model_id,
                backend=self.job.backend,
                phase=self._phase,
                paused=self._paused,
                stopping=self._stop_requested,
                units_done=progress.units_done,
                units_total=progress.units_total,
                items_done=progress.items_done,
                items_total=progress.items_total,
                items_skipped=progress.items_skipped,
                items_embedded=progress.items_embedded,
                bad_lines=progress.bad_lines,
                batches=progress.batches,
                batch_size=(self._admission or Admission(cfg)).batch_size(memory.state, cfg),  # with its caps
                batch_min=cfg.batch_size_min,
                batch_max=cfg.batch_size_max,
                in_flight=progress.in_flight,
                in_flight_progress=progress.in_flight_progress,
                elapsed_s=elapsed,
                items_per_s=progress.overall_rate(working),
                eta_s=eta,
                model_loaded=self.job.executor.loaded,
                memory=memory,
                report=self._report,
                running_since=self._running_since if self._phase == "running" and not self._paused else None,
                breaker_gives_up_in_s=(
                    self._open_wait.remaining_at(now) if self._open_wait is not None and self._report is None else None
                ),
                headroom=self.headroom.latest if self.headroom is not None else None,
            )

    # -- the loop -------------------------------------------------------------------
    def open(self) -> None:
        """Scan the input and open the cache; raises MemtuiError on bad input.

        Faces call this before they start, so a bad path fails in one line
        before any screen opens; ``run()`` calls it if they did not.
        """
        self._set_phase("scanning input", self.job.input_path)
        totals = self.job.open()  # takes the cache's lock: the trace read next is no live run's
        self._opened = True
        if self.trace is not None:
            previous = self.trace.previous_abnormal_end()
            if previous is not None:
                self._previous_abnormal_end = previous.describe()
                self._publish(Notice(self._previous_abnormal_end, level="warning"))
        with self._lock:
            self._progress.opened(totals)
        if totals.units_done:
            if self.job.mode == "job":  # a user's function (memtui.jobs.user): items in its results file
                done = f"{totals.items_done} of {totals.items} items already in the results file"
            else:
                done = f"{totals.units_done} of {totals.units} domains already in the cache"
            self._publish(Notice(f"♻️ Resuming: {done}"))
        if totals.bad_lines:
            first = "; ".join(str(bad) for bad in totals.bad_line_details[:3])
            more = "; ..." if totals.bad_lines > 3 else ""
            self._publish(Notice(f"⚠️ {totals.bad_lines} bad input line(s) skipped: {first}{more}", level="warning"))

    def run(self) -> RunReport:
        """Run the job to the end (or stop, or abort); returns the run report. Never raises MemtuiError."""
        started_monitor = not self.monitor.running
        if started_monitor:
            self.monitor.start()
        self.monitor.breaker.add_listener(self._on_breaker)
        self.monitor.add_cleanup_listener(self._on_cleanup)
        if self.headroom is not None:
            self.monitor.add_sample_listener(self._on_sample)
        cleanup = "job cleanup hooks" if self.job.mode == "job" else "model caches"  # what the cleanup log names
        self.monitor.cleaner.register(cleanup, self.job.executor.clear_caches)
        self._begin()
        with self._lock:
            self._in_run = True
        if self._stop_requested:
            self._watch_stop()
        status, error, exit_code = "failed", None, 1
        try:
            if not self._opened:
                self.open()
            if self.trace is not None:
                self.trace.begin(mode=self.job.mode, input=self.job.input_path, model=self.job.model_id)
            verdict = self._place()
            self._check_intact()
            status, exit_code = {
                Verdict.CONTINUE: ("success", 0),
                Verdict.STOP: ("interrupted", 130),
                Verdict.ABORT: ("aborted", 1),
            }[verdict]
            if status == "success" and (getattr(self.job, "items_failed", None) or 0) > 0:
                status, exit_code = "partial", 1  # every other item's result is in; the failed ones are named
        except MemtuiError as exc:
            error, exit_code = str(exc), exc.exit_code
            self._publish(Notice(f"❌ {error}", level="error"))
        except Exception as exc:  # an unforeseen failure: report it, keep what was committed
            error, exit_code = f"{exc.__class__.__name__}: {exc}", 1
            log.exception("run failed")
            self._publish(Notice(f"❌ unexpected error: {error}", level="error"))
        finally:
            try:
                if self.trace is not None:  # before the lock goes: a run starting next must find the end
                    self.trace.end(status)
                self.job.close()
            finally:
                self.monitor.cleaner.unregister(cleanup)
                self.monitor.breaker.remove_listener(self._on_breaker)
                self.monitor.remove_cleanup_listener(self._on_cleanup)
                self.monitor.remove_sample_listener(self._on_sample)
                if started_monitor:
                    self.monitor.stop()
        if self.abandoned and self._report is not None:
            return self._report  # the job came back after the grace: the report said its batch is lost
        self._end()
        with self._lock:
            self._progress.settled()
            self._open_wait = None
        report = self._build_report(status, error, exit_code)
        self._set_phase(status)
        with self._lock:
            self._report = report
        self._publish(RunFinished(report, level="info" if status == "success" else "error"))
        return report

    # -- where batches run: the protected interface a placement uses ---------------------------
    # ``_place`` is the one part a subclass replaces (memtui.cluster.engine.ClusterRunner: Dask workers);
    # this one runs batches in this process. A placement uses only these, and EngineCore's protected
    # interface (_requests, _take_cleanup, _wait_for, _publish, _lock, _wake, _clock):
    #   _checkpoint()                      this process's cleanups, pause, breaker and headroom waits
    #   _set_phase(phase, detail)          the phase every face shows
    #   _set_in_flight(names)              the domains in flight
    #   _commit(work, complete=, started=) commit a batch through the job; counts, rate and its event
    #   _abort(reason, icon)               the run ends: why, in the operator's terms (the report's reason)
    #   _leave(names, count)               the domains left for the next run (the report's unprocessed)
    #   _finish_report(report)             the placement's own report fields
    # It must not touch the Runner's other attributes.

    def _place(self) -> Verdict:
        """Run every batch in this process: admit, embed sub-batch by sub-batch, commit."""
        units = self.job.units()
        pushback: collections.deque[Unit] = collections.deque()
        admission = self._admission = self._gate.admission  # batch sizes, MemoryError retries: one policy
        while True:
            verdict = self._checkpoint()
            if verdict is not Verdict.CONTINUE:
                self._record_unprocessed(pushback, units)
                return verdict
            batch = _take(pushback, units, admission.batch_size(self.monitor.breaker.state, self.monitor.config))
            if not batch:
                return Verdict.CONTINUE
            work = self.job.prepare(batch)
            try:
                verdict = self._embed(work)
            except MemoryError:
                self._commit(work, complete=False)  # keep every vector already made
                pushback.extendleft(reversed(self._incomplete(batch)))
                retry = admission.memory_error(len(batch), self.monitor.config)
                if retry.give_up:
                    self._publish(Notice(f"🚨 MemoryError {retry.errors} times in a row; giving up", level="error"))
                    self._record_unprocessed(pushback, units)
                    return Verdict.ABORT
                self._publish(
                    Notice(f"⚠️ MemoryError on a batch of {len(batch)}; retrying with {retry.size}", level="warning")
                )
                self.monitor.cleanup("MemoryError")
                self._sleep(retry.sleep_s)
                continue
            self._commit(work, complete=verdict is Verdict.CONTINUE)
            admission.succeeded(self.monitor.config)
            self.monitor.sample()
            self.monitor.breaker.record_success()
            if verdict is not Verdict.CONTINUE:
                pushback.extendleft(reversed(self._incomplete(batch)))
                self._record_unprocessed(pushback, units)
                return verdict

    def _check_intact(self) -> None:
        """Once the work is over: the input is the file scanned and the cache is where the work went
        (a job may offer ``check_intact``; it raises the MemtuiError that ends the run)."""
        self.job.check_intact()

    def _incomplete(self, batch: list[Unit]) -> list[Unit]:
        """The batch's domains the last commit did not finish (they go back in line)."""
        if self._finished_units is not None:  # a domain's pieces share its name: judged one by one
            return [u for u in batch if id(u) not in self._finished_units]
        return [u for u in batch if u.name not in self._completed_names]

    def _embed(self, work: Work) -> Verdict:
        """Encode the batch's missing texts sub-batch by sub-batch, honouring commands in between."""
        with self._lock:
            self._progress.started(work.names, len(work.to_embed))
            number = self._progress.batches + 1
        job = self.job.mode == "job"
        self._publish(BatchStarted(number, work.names, work.items, len(work.to_embed), self.monitor.rss_bytes, job))
        if self.trace is not None:
            self.trace.batch(number, list(work.names), self.monitor.rss_bytes)
        self._batch_t0 = self._clock()
        if not work.to_embed:
            return Verdict.CONTINUE
        executor = self.job.executor
        if not executor.loaded:
            what = "function" if self.job.mode == "job" else "model"
            self._set_phase(f"loading {what}", self.job.model_id)
            executor.load()
            self._publish(
                Notice(
                    f"🧠 {what.capitalize()} loaded: {self.job.model_id} (Memory: {self.monitor.sample() / GB:.2f}GB)"
                )
            )
        self._set_phase("running")
        texts = [text for _, text in work.to_embed]
        done = 0
        self._bound_budget()
        self._sub_batch_begins()
        for indices, vectors in executor.encode_iter(texts):
            self._sub_batch_ends()
            for i, vector in zip(indices, vectors):
                work.vectors[work.to_embed[i][0]] = vector
            done += len(indices)
            with self._lock:
                self._progress.in_flight_progress = (done, len(texts))
            if done < len(texts):
                verdict = self._checkpoint()
                if verdict is not Verdict.CONTINUE:
                    return verdict
            self._bound_budget()
            self._sub_batch_begins()
        return Verdict.CONTINUE

    def _bound_budget(self) -> None:
        """Memory wins over speed: below a full admission (WARNING, HALF-OPEN, a MemoryError's cap) the
        executor's adaptive token budget (memtui.embed.budget) gives every sub-batch its smallest budget."""
        budget = self.job.executor.budget
        if budget is not None and self._admission is not None:
            budget.memory_tight = not self._admission.full(self.monitor.breaker.state, self.monitor.config)

    def _sub_batch_begins(self) -> None:
        """Mark where a sub-batch starts: its growth to its peak is one batch's measured cost."""
        if self.headroom is not None:
            self.headroom.cost.begin(self.monitor.sample())

    def _sub_batch_ends(self) -> None:
        if self.headroom is not None:
            self.headroom.cost.end(self.monitor.sample())

    def _set_in_flight(self, names: tuple[str, ...]) -> None:
        with self._lock:
            self._progress.in_flight = names

    def _abort(self, reason: str, icon: str = "🚨") -> Verdict:
        """End the run: the report's reason, said once as an error."""
        with self._lock:
            self._abort_reason = reason
        self._publish(Notice(f"{icon} {reason}", level="error"))
        return Verdict.ABORT

    def _leave(self, names: list[str], count: int) -> None:
        """The domains left for the next run: at most MAX_NAMED_UNPROCESSED named, ``count`` exact."""
        with self._lock:
            self._unprocessed, self._unprocessed_count = names[:MAX_NAMED_UNPROCESSED], count

    def _finish_report(self, report: RunReport) -> RunReport:
        """A placement's own report fields (none here); called without the lock."""
        return report

    def _commit(self, work: Work, *, complete: bool, started: float | None = None) -> None:
        """Commit a batch (``started``: when it began, if not at the last BatchStarted)."""
        if started is not None:
            self._batch_t0 = started
        if self.abandoned:
            return  # the report says this batch is lost: it stays lost
        result = self.job.commit(work)
        embedded = len(work.vectors)
        work.vectors.clear()
        # The encode's activations leave freed heap that glibc keeps; hand it back after every
        # batch (a few ms) so RSS tracks what is live, not the high-water mark of the last encode.
        malloc_trim()
        now = self._clock()
        with self._lock:
            number = self._progress.committed(result, embedded, self._active(now))
            self._completed_names = frozenset(result.completed)
            self._finished_units = (
                None if result.finished is None else frozenset(id(work.units[i]) for i in result.finished)
            )
        self._publish(
            BatchDone(
                number,
                work.names,
                work.items,
                embedded,
                now - self._batch_t0,
                self.monitor.rss_bytes,
                complete=complete,
                job=self.job.mode == "job",
            )
        )

    def _checkpoint(self) -> Verdict:
        """Between (sub-)batches: run requested cleanups, hold while paused or while the breaker is open."""
        monitor = self.monitor
        while True:
            cleanup = self._take_cleanup()
            requests = self._requests()
            stop, paused = requests.stop, requests.paused
            if cleanup:
                monitor.cleanup("requested by operator")
            if stop:
                self._set_phase("stopping")
                return Verdict.STOP
            if paused:
                self._set_phase("paused")
                self._wait_for(lambda: not self._paused or self._stop_requested or self._cleanup_requested, 0.5)
                continue
            monitor.sample()
            if self.trace is not None:
                self.trace.samples(lambda: monitor.snapshot().history, self._clock())
            headroom = self.headroom.latest if self.headroom is not None else None
            loaded = self.job.executor.loaded
            gate = self._gate.step(monitor.config, monitor.breaker.snapshot(), headroom, monitor.rss_bytes, loaded)
            if gate.admit:
                with self._lock:
                    self._open_wait = None
                if self._phase in ("paused", "waiting for memory"):
                    self._set_phase("running")
                if gate.warning_cleanup:
                    monitor.cleanup("memory warning")
                return Verdict.CONTINUE
            # The breaker is open, or the headroom is below one batch's cost (a brake): clean up, back off,
            # unload the model (the breaker only), and give up when waiting cannot help (MemoryGate's rule).
            assert gate.wait is not None and self._gate.wait is not None
            if gate.started:
                self._start_wait(self._gate.wait)
            step = gate.wait
            if step.give_up is not None:
                with self._lock:
                    self._abort_reason = step.give_up
                    self._floor_bytes = None if self._gate.waiting_on_headroom else step.floor_bytes
                self._publish(Notice(f"🚨 {step.give_up}", level="error"))
                return Verdict.ABORT
            if step.unload:
                self._publish(
                    Notice(
                        "🧯 Memory still high after cleanups: unloading the model (reloads when memory is back)",
                        level="warning",
                    )
                )
                self.job.executor.unload()
            if step.cleanup is not None:
                self._gate.cleaned(monitor.cleanup(step.cleanup).freed)  # nothing freed: the next one backs off
            self._sleep(step.sleep_s)

    def _start_wait(self, wait: OpenBreakerWait) -> OpenBreakerWait:
        """A wait begins (the breaker's or the headroom's): its countdown and the phase."""
        with self._lock:
            self._open_wait = wait  # its countdown: when the run gives up
        self._set_phase("waiting for memory")
        return wait

    def _sleep_responsive(self, seconds: float) -> None:
        """Sleep, but wake at once for a command (stop, resume, cleanup) or for the breaker leaving OPEN."""
        with self._wake:
            self._breaker_released = False
            self._wake.wait_for(
                lambda: self._stop_requested or self._cleanup_requested or self._breaker_released, timeout=seconds
            )

    # -- events ---------------------------------------------------------------------
    def _set_phase(self, phase: str, detail: str = "") -> None:
        with self._lock:
            if self._phase == phase:
                return
            self._phase = phase
            now = self._clock()
            self._running_since = now if phase == "running" else None
            self._hold(phase in HELD_PHASES, now)  # held time (paused, waiting for memory): not in rate or ETA
        self._publish(PhaseChanged(phase, detail))

    def _on_breaker(self, t: BreakerTransition) -> None:
        if t.counts_as_warning:
            self._publish(MemoryWarning(t.rss, level="warning"))
        if t.old is BreakerState.OPEN:  # memory is back: the open-breaker wait need not sleep out its backoff
            with self._wake:
                self._breaker_released = True
                self._wake.notify_all()
        level = "error" if t.new is BreakerState.OPEN else "info"
        self._publish(BreakerChanged(t.old, t.new, t.rss, t.reason, level=level))

    def _on_cleanup(self, report: CleanupReport) -> None:
        self._publish(CleanupRan(report))

    def _on_sample(self, now: float, rss: int) -> None:
        """Each memory sample feeds the headroom watch; one notice when the headroom crosses a batch's cost."""
        assert self.headroom is not None
        change = self.headroom.observe(now, rss)
        if change is not None:
            self._publish(Notice(change.message, level="warning" if change.low else "info"))
            if not change.low:  # the headroom is back: a brake's wait need not sleep out its backoff
                with self._wake:
                    self._breaker_released = True
                    self._wake.notify_all()

    # -- reporting ------------------------------------------------------------------
    def _record_unprocessed(self, pushback: collections.deque[Unit], units: Iterator[Unit]) -> None:
        names: list[str] = []
        count = 0
        last = None
        for unit in [*pushback, *units]:
            if unit.name == last:  # the next piece of the same domain (memtui.jobs.pieces)
                continue
            last = unit.name
            count += 1
            if len(names) < MAX_NAMED_UNPROCESSED:
                names.append(unit.name)
        pushback.clear()
        self._leave(names, count)

    def _build_report(self, status: str, error: str | None, exit_code: int) -> RunReport:
        memory = self.monitor.snapshot()
        breakdown = getattr(self.monitor.probe, "breakdown", None)
        # file-backed RSS (mmapped weights) the kernel can drop; anon it cannot
        parts = breakdown() if breakdown is not None else None
        thresholds = getattr(self.monitor, "thresholds", None)
        lowest = self.headroom.lowest if self.headroom is not None else None
        cost = self.headroom.cost.bytes if self.headroom is not None else None
        with self._lock:
            duration = self._elapsed()
            working = self._working()  # the rate leaves held time out, as on screen
            report = RunReport(
                status=status,
                exit_code=exit_code,
                mode=self.job.mode,
                memory_usage_gb=round(memory.rss_gb, 3),
                peak_memory_gb=round(memory.peak_gb, 3),
                memory_warnings=memory.warnings,
                breaker_trips=memory.breaker.trips,
                cleanups=memory.cleanups,
                duration_s=round(duration, 3),
                unprocessed_domains=self._unprocessed_count,
                unprocessed=tuple(self._unprocessed),
                limit_gb=round(memory.limit.bytes / GB, 3) if memory.limit else None,
                limit_source=memory.limit.source if memory.limit else None,
                warning_memory_gb=round(memory.warning_bytes / GB, 3),
                max_memory_gb=round(memory.max_bytes / GB, 3),
                input=self.job.input_path,
                cache=self.job.cache_path,
                model=self.job.model_id,
                thresholds=thresholds.report() if thresholds is not None else None,
                rss_anon_gb=round(parts.anon / GB, 3) if parts is not None else None,
                rss_file_gb=round(parts.file / GB, 3) if parts is not None else None,
                error=error or None,
                reason=self._abort_reason or None,
                memory_floor_gb=round(self._floor_bytes / GB, 3) if self._floor_bytes is not None else None,
                previous_abnormal_end=self._previous_abnormal_end or None,
                lowest_headroom_gb=round(lowest.bytes / GB, 3) if lowest is not None else None,
                lowest_headroom_binds=lowest.binds if lowest is not None else None,
                batch_cost_gb=round(cost / GB, 3) if cost is not None else None,
                headroom_warnings=self.headroom.warnings if self.headroom is not None else None,
                backend=self.job.backend,
                items_failed=getattr(self.job, "items_failed", None),
                failed_items=_tuple_or_none(getattr(self.job, "failed_items", None)),
                **self._progress.report_counts(working),
            )
        return self._finish_report(report)


def _tuple_or_none(items: list[dict] | None) -> tuple[dict, ...] | None:
    return None if items is None else tuple(items)


def _take(pushback: collections.deque[Unit], units: Iterator[Unit], n: int) -> list[Unit]:
    batch: list[Unit] = []
    while len(batch) < n and pushback:
        batch.append(pushback.popleft())
    while len(batch) < n:
        unit = next(units, None)
        if unit is None:
            break
        batch.append(unit)
    return batch
