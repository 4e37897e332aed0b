"""MonitorEngine: watches processes memtui did not start; an Engine (memtui.engine) like the Runner.

Faces drive it only through thread-safe commands (the Engine's: stop, pause,
resume, request_cleanup, set_thresholds, emergency_exit; and its own:
pause_target, resume_target, terminate_target) and read it only through
immutable ``snapshot()``s and the event stream (``subscribe()``). ``run()``
samples every target once per interval in the calling thread until the
duration is up, the operator stops it, or every explicit target has exited.
While the watch is paused it samples nothing, so nothing a sample would drive
happens (no breaker transitions, no --on-breaker signals); the operator's own
per-target commands still work, and the duration keeps counting.
The default selection (``top``) is re-ranked at each refresh: a process that
grows past the smallest watched one takes its place, the smaller one leaves
(``TargetState.LEFT``), and a place freed by an exit is filled at once.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psutil

from memtui.engine import PROTOCOL_COMMANDS
from memtui.engine_core import EngineCore, Wording
from memtui.errors import UsageError
from memtui.events import CleanupRan, Notice
from memtui.jobs.monitor.events import (
    MonitorFinished,
    TargetActed,
    TargetAdded,
    TargetBreakerChanged,
    TargetGone,
    TargetSampled,
    TargetWarning,
)
from memtui.jobs.monitor.intervene import (
    SIGNALS,
    Policy,
    Sender,
    decide,
    protected_pids,
    refusal,
    send_signal,
    signal_target,
)
from memtui.jobs.monitor.targets import TopN
from memtui.jobs.monitor.tracker import Action, TargetSnapshot, TargetState, TargetTracker
from memtui.memory.breaker import BreakerState, BreakerTransition
from memtui.memory.cleanup import Cleaner
from memtui.memory.config import MemoryConfig
from memtui.memory.config_layers import threshold_changes
from memtui.memory.pid_probe import PidProbe, ProcessAccessDenied, ProcessGone, ppid_map
from memtui.memory.probe import MemoryLimit, ProcessProbe
from memtui.memory.units import GB, format_gb
from memtui.records import MonitorReport

#: How often a --match watch looks for new matching processes (or every interval, if longer).
RESCAN_S = 5.0
#: How often the default top N is re-ranked (or every interval, if longer): a scan of every process.
RERANK_S = 1.0


@dataclass(frozen=True)
class MonitorSnapshot:
    selection: str
    policy: Policy
    children: bool
    interval_s: float
    duration_s: float | None
    elapsed_s: float
    rounds: int
    round_cost_s: float  # what the last round of sampling took, all targets together
    stopping: bool
    warning_bytes: int
    max_bytes: int
    reset_bytes: int
    limit: MemoryLimit | None
    targets: tuple[TargetSnapshot, ...]
    report: MonitorReport | None
    paused: bool = False  # the watch is paused: no sampling, so no breaker actions (last: wire v1 without it)

    @property
    def finished(self) -> bool:
        return self.report is not None

    def target(self, pid: int) -> TargetSnapshot | None:
        return next((t for t in self.targets if t.pid == pid), None)


#: What the monitor's commands say in the log.
MONITOR_WORDING = Wording(
    pause="⏸️ Watch paused: no sampling and no breaker actions until resumed",
    resume="▶️ Watch resumed",
    stop="⏹️ Stop requested: ending the watch",
)


class MonitorEngine(EngineCore):
    """Monitor mode's engine (an Engine: memtui.engine); commands, events and elapsed time: EngineCore.

    Its pause holds the sampling only: the duration keeps counting (``_elapsed``, held spells included)."""

    kind = "monitor"
    commands = (*PROTOCOL_COMMANDS, "pause_target", "resume_target", "terminate_target")

    def __init__(
        self,
        probes: Sequence[PidProbe],
        config: MemoryConfig,
        *,
        interval_s: float = 2.0,
        duration_s: float | None = None,
        policy: Policy | str = Policy.NONE,
        children: bool = False,
        selection: str = "",
        end_when_all_exit: bool = True,
        rescan: Callable[[set[int]], list[PidProbe]] | None = None,
        top: TopN | None = None,
        limit: MemoryLimit | None = None,
        send: Sender = send_signal,
        signal_other_users: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``rescan(known_pids)`` returns probes on new processes to watch (the --match selection);
        ``top`` keeps the default selection the user's largest processes (it then never ends for
        lack of targets: another process fills each place).

        ``signal_other_users`` (--signal-other-users) lets signals reach processes of other users;
        init, memtui and memtui's ancestors are never signalled whatever the flags.
        """
        # reentrant: the policy acts (and publishes) from within the engine's own locked sections
        super().__init__(clock=clock, wording=MONITOR_WORDING, reentrant=True)
        self.config = config
        self.interval_s = interval_s
        self.duration_s = duration_s
        self.policy = Policy(policy)
        self.children = children
        self.selection = selection
        self.end_when_all_exit = end_when_all_exit
        self.limit = limit
        self._rescan = rescan
        self._top = top
        self._former: list[dict[str, Any]] = []  # report entries of processes that left a live top N
        self._send = send
        self.signal_other_users = signal_other_users
        self._trackers: dict[int, TargetTracker] = {}
        for probe in probes:
            self._trackers[probe.pid] = self._track(probe)
        self._cleaner: Cleaner | None = None  # memtui's own cleanup, made at the first request
        self._rounds = 0
        self._round_cost = 0.0
        self._report: MonitorReport | None = None

    def _track(self, probe: PidProbe) -> TargetTracker:
        return TargetTracker(probe, self.config, clock=self._clock, interval_s=self.interval_s)

    # -- commands (any thread): stop, pause, resume are EngineCore's ------------------
    # stop ends the watch at once (the report says "interrupted"); memtui resumes what it stopped.
    # pause stops the sampling: no breaker transitions and no --on-breaker signals until resume().

    def request_cleanup(self) -> None:
        """Clean up memtui's own process (collect, trim) in the watch's thread, at once even while waiting.

        The watched processes are not touched: memtui cannot free their memory, only its own."""
        super().request_cleanup()

    def emergency_exit(self, why: str) -> None:
        """The process exits at once (a second Ctrl-C): resume every process memtui stopped first."""
        self.release_all()

    # ``watch_id`` (from the snapshot the operator was shown) makes a command refuse a pid that
    # left the table and came back, or was reused, since: it is another process than the one asked about.
    def pause_target(self, pid: int, watch_id: int | None = None) -> Action:
        """SIGSTOP the target (and its counted children) for the operator."""
        return self._operator(pid, watch_id, "stop", "paused by the operator")

    def resume_target(self, pid: int, watch_id: int | None = None) -> Action:
        """SIGCONT a target, whoever stopped it; an open breaker will not stop it again until it re-trips."""
        return self._operator(pid, watch_id, "resume", "resumed by the operator")

    def terminate_target(self, pid: int, watch_id: int | None = None) -> Action:
        return self._operator(pid, watch_id, "terminate", "terminated by the operator")

    def set_thresholds(
        self, *, warning: str | float | None = None, max: str | float | None = None, pid: int | None = None
    ) -> MemoryConfig:
        """New warning/breaker levels for every target, or for one (``pid``); ConfigError if invalid."""
        limit = self.limit.bytes if self.limit and self.limit.bytes else None
        changes = threshold_changes(warning=warning, max=max, limit_bytes=limit)
        with self._lock:
            if pid is None:
                config = self.config = self.config.replace(**changes)
                targets = [t for t in self._trackers.values() if not t.own_thresholds]
            else:
                tracker = self._tracker(pid)
                config = tracker.config.replace(**changes)
                targets = [tracker]
            for tracker in targets:
                if not tracker.gone:
                    self._handle(tracker, tracker.set_config(config, own=pid is not None))
        whom = "all targets" if pid is None else f"pid {pid}"
        self._publish(
            Notice(
                f"🎚️ Thresholds set for {whom}: warning {config.warning_memory_gb:.2f}GB, "
                f"breaker {config.max_memory_gb:.2f}GB"
            )
        )
        return config

    # -- reading (any thread): subscribe and unsubscribe are EngineCore's ---------------
    def snapshot(self) -> MonitorSnapshot:
        with self._lock:
            cfg = self.config
            return MonitorSnapshot(
                selection=self.selection,
                policy=self.policy,
                children=self.children,
                interval_s=self.interval_s,
                duration_s=self.duration_s,
                elapsed_s=self._elapsed(),
                rounds=self._rounds,
                round_cost_s=self._round_cost,
                stopping=self._stop_requested,
                paused=self._paused,
                warning_bytes=cfg.warning_bytes,
                max_bytes=cfg.max_bytes,
                reset_bytes=cfg.reset_bytes,
                limit=self.limit,
                targets=tuple(t.snapshot() for t in self._trackers.values()),
                report=self._report,
            )

    # -- the loop -------------------------------------------------------------------
    def run(self) -> MonitorReport:
        """Watch until the duration is up, stop() is called or every explicit target exited; returns the report."""
        t0 = self._begin()
        self._publish(
            Notice(
                f"🔍 Watching {self.selection or f'{len(self._trackers)} process(es)'} every "
                f"{self.interval_s:g}s (warning {self.config.warning_memory_gb:.2f}GB, breaker "
                f"{self.config.max_memory_gb:.2f}GB, on breaker: {self.policy.value})"
            )
        )
        self._warn_unsignallable(list(self._trackers.values()))
        next_rescan = t0 + max(RESCAN_S, self.interval_s)
        next_rerank = t0 + max(RERANK_S, self.interval_s)
        tick = t0
        status, reason, exit_code = "success", "duration reached", 0
        try:
            while True:
                paused = self._requests().paused
                lost = 0 if paused else self._sample_round()
                now = self._clock()
                if not paused and self._rescan is not None and now >= next_rescan:
                    self._add_new_targets()
                    next_rescan = now + max(RESCAN_S, self.interval_s)
                if not paused and self._top is not None and (lost or now >= next_rerank):
                    self._rerank(self._top)  # an exit frees a place: fill it now, not a second later
                    next_rerank = now + max(RERANK_S, self.interval_s)
                if self.end_when_all_exit and self._top is None and all(t.gone for t in self._trackers.values()):
                    status, reason = "success", "all targets exited"
                    break
                while tick <= now:
                    tick += self.interval_s  # a slow round skips ticks instead of bunching them
                end = None if self.duration_s is None else t0 + self.duration_s
                if self._wait(tick if end is None else min(tick, end)):
                    status, reason, exit_code = "interrupted", "stopped by operator", 130
                    break
                if end is not None and self._clock() >= end:
                    break
        finally:
            self.release_all()
        self._end()
        with self._lock:
            report = self._build_report(status, reason, exit_code)
            self._report = report
        self._publish(MonitorFinished(report, level="info" if exit_code == 0 else "warning"))
        return report

    def _wait(self, until: float) -> bool:
        """Wait for the next round (or the end), running requested cleanups meanwhile; True once stopped."""
        while True:
            self._wait_for(lambda: self._stop_requested or self._cleanup_requested, until - self._clock())
            stop, cleanup = self._requests().stop, self._take_cleanup()
            if cleanup:
                self._cleanup()
            if stop:
                return True
            if not cleanup or self._clock() >= until:
                return False

    def _cleanup(self) -> None:
        if self._cleaner is None:
            self._cleaner = Cleaner(ProcessProbe())
        report = self._cleaner.run("memtui's own memory, requested by the operator", clear_caches=False)
        self._publish(CleanupRan(report))

    def _sample_round(self) -> int:
        """Sample every live target once; returns how many were lost (exited or unreadable)."""
        t0 = time.perf_counter()
        lost = 0
        with self._lock:
            live = [t for t in self._trackers.values() if not t.gone]
        ppids = ppid_map() if self.children and live else None
        for tracker in live:
            started = time.perf_counter()
            try:
                sample = tracker.probe.sample(detail=tracker.wants_detail(), ppids=ppids)
            except ProcessGone as exc:
                self._lose(tracker, TargetState.EXITED, self._exit_note(tracker, exc))
                lost += 1
                continue
            except ProcessAccessDenied:
                self._lose(tracker, TargetState.DENIED, "access denied: run memtui as its owner or root to read it")
                lost += 1
                continue
            with self._lock:
                transitions = tracker.record(sample, time.perf_counter() - started)
                self._handle(tracker, transitions, ppids)
                snap = tracker.snapshot()
            self._publish(TargetSampled(snap))
        with self._lock:
            self._rounds += 1
            self._round_cost = time.perf_counter() - t0
        return lost

    def _exit_note(self, tracker: TargetTracker, exc: ProcessGone) -> str:
        text = str(exc).removeprefix(f"pid {tracker.pid} ")
        return f"{text} after {self._elapsed():.1f}s of watching"

    def _lose(self, tracker: TargetTracker, state: TargetState, note: str, level: str = "warning") -> None:
        with self._lock:
            tracker.mark(state, note)
            snap = tracker.snapshot()
            remaining = sum(not t.gone for t in self._trackers.values())
        self._publish(TargetGone(snap, remaining, level=level))

    def _rerank(self, top: TopN) -> None:
        """Keep the watch the user's ``top.n`` largest processes; what leaves is kept for the report only."""
        with self._lock:
            for pid in [pid for pid, t in self._trackers.items() if t.gone]:
                self._former.append(self._trackers.pop(pid).snapshot().as_report())  # the table drops it
            live = dict(self._trackers)
            pinned = {pid for pid, t in live.items() if t.held_by is not None}
        try:
            entering, leaving, rss = top.plan(live, pinned)
        except psutil.Error:
            return  # the scan failed this time; the next refresh tries again
        for pid in leaving:
            self._lose(live[pid], TargetState.LEFT, f"left the top {top.n} at {format_gb(rss[pid])}", level="info")
        for pid in entering:
            try:
                probe = PidProbe(pid, children=self.children)
            except (ProcessGone, ProcessAccessDenied):
                continue  # gone between the scan and the probe: the next refresh ranks again
            with self._lock:
                tracker = self._trackers[pid] = self._track(probe)
                snap = tracker.snapshot()
            self._publish(TargetAdded(snap, f"entered the top {top.n} at {format_gb(rss[pid])}"))
            self._warn_unsignallable([tracker])

    def _add_new_targets(self) -> None:
        assert self._rescan is not None
        with self._lock:
            known = set(self._trackers)
        for probe in self._rescan(known):
            with self._lock:
                tracker = self._trackers[probe.pid] = self._track(probe)
                snap = tracker.snapshot()
            self._publish(TargetAdded(snap, "new match"))
            self._warn_unsignallable([tracker])

    def _warn_unsignallable(self, trackers: list[TargetTracker]) -> None:
        """Say up front which targets are watched read-only: init, memtui's lineage, other users'."""
        try:
            protected = protected_pids()
        except psutil.Error:
            return  # signal_target refuses everything then, and says why
        for tracker in trackers:
            try:
                why = refusal(tracker.probe.process, other_users=self.signal_other_users, protected=protected)
            except psutil.Error:
                continue  # gone already: the next sample says so
            if why is not None:
                why = why.removeprefix("refused: ")
                self._publish(
                    Notice(
                        f"🔒 pid {tracker.pid} ({tracker.label}) is watched but never signalled: {why}", level="warning"
                    )
                )

    def _handle(
        self, tracker: TargetTracker, transitions: list[BreakerTransition], ppids: dict[int, int] | None = None
    ) -> None:
        """Publish a target's breaker transitions and apply the policy to them (lock held)."""
        for t in transitions:
            if t.counts_as_warning:
                self._publish(TargetWarning(tracker.pid, tracker.label, t.rss, level="warning"))
            level = "error" if t.new is BreakerState.OPEN else "info"
            self._publish(TargetBreakerChanged(tracker.pid, tracker.label, t.old, t.new, t.rss, t.reason, level=level))
            cfg = tracker.config
            decision = decide(self.policy, t, tracker.held_by, cfg.reset_bytes, cfg.max_bytes)
            if decision is not None:
                action, reason = decision
                self._act(tracker, action, reason, "breaker", ppids)

    def _act(
        self, tracker: TargetTracker, action: str, reason: str, by: str, ppids: dict[int, int] | None = None
    ) -> Action:
        """Send the signal, record the action, publish it (lock held)."""
        outcome = signal_target(
            tracker.probe, action, send=self._send, ppids=ppids, other_users=self.signal_other_users
        )
        record = Action(
            at=datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            elapsed_s=self._elapsed(),
            action=action,
            signal=SIGNALS[action].name,
            reason=reason,
            by=by,
            ok=outcome.ok,
            error=outcome.error,
        )
        tracker.add_action(record)
        # Held once anything was stopped, even part of a tree (a refused or denied child): whatever
        # memtui stopped, it must resume as it exits.
        if action == "stop" and outcome.sent:
            tracker.held_by = by
        elif action == "resume" and (outcome.ok or tracker.pid in outcome.sent):
            tracker.held_by = None
        self._publish(TargetActed(tracker.pid, tracker.label, record, level="warning" if record.ok else "error"))
        return record

    def _operator(self, pid: int, watch_id: int | None, action: str, reason: str) -> Action:
        with self._lock:
            tracker = self._tracker(pid)
            if tracker.gone:
                raise UsageError(f"pid {pid} ({tracker.label}) is no longer watched: {tracker.snapshot().note}")
            if watch_id is not None and watch_id != tracker.watch_id:
                raise UsageError(f"pid {pid} ({tracker.label}) left the table after it was shown; nothing was sent")
            return self._act(tracker, action, reason, "operator")

    def release_all(self) -> None:
        """SIGCONT every process memtui stopped: run() does it as it ends, a face's emergency exit calls it."""
        with self._lock:
            for tracker in self._trackers.values():
                if tracker.held_by is not None and not tracker.gone:
                    who = "the breaker policy" if tracker.held_by == "breaker" else "the operator"
                    self._act(tracker, "resume", f"it was stopped by {who}", "memtui")

    def _tracker(self, pid: int) -> TargetTracker:
        tracker = self._trackers.get(pid)
        if tracker is None:
            watched = ", ".join(map(str, self._trackers)) or "none"
            raise UsageError(f"pid {pid} is not watched (watching: {watched})")
        return tracker

    # -- the report ----------------------------------------------------------------------
    def _build_report(self, status: str, reason: str, exit_code: int) -> MonitorReport:
        """Every process watched, those that left a live top N first (the report keeps them; the table does not)."""
        targets = [*self._former, *(t.snapshot().as_report() for t in self._trackers.values())]
        peak = max(targets, key=lambda t: t["peak_memory_gb"], default=None)
        cfg = self.config
        return MonitorReport(
            status=status,
            exit_code=exit_code,
            end_reason=reason,
            duration_s=round(self._elapsed(), 3),
            interval_s=self.interval_s,
            rounds=self._rounds,
            selection=self.selection,
            children=self.children,
            on_breaker=self.policy.value,
            peak_memory_gb=peak["peak_memory_gb"] if peak else 0.0,
            peak_pid=peak["pid"] if peak else None,
            memory_warnings=sum(t["memory_warnings"] for t in targets),
            breaker_trips=sum(t["breaker_trips"] for t in targets),
            actions=sum(len(t["actions"]) for t in targets),
            warning_memory_gb=round(cfg.warning_memory_gb, 3),
            max_memory_gb=round(cfg.max_memory_gb, 3),
            reset_memory_gb=round(cfg.reset_bytes / GB, 3),
            limit_gb=round(self.limit.bytes / GB, 3) if self.limit and self.limit.bytes else None,
            limit_source=self.limit.source if self.limit else None,
            targets=tuple(targets),
        )
