"""The headless face: log lines in the original guide's style, progress lines, a JSON report.

It runs the Runner in a worker thread and reads it like any face: events and
snapshots. Ctrl-C, SIGTERM or SIGHUP (the terminal or SSH session went away)
asks the runner to stop after committing the batch in flight; a second Ctrl-C
or SIGTERM exits at once (committed work is safe). SIGHUP never escalates: a
hangup often arrives twice, and the report must still be written.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any, TextIO

from typing import TYPE_CHECKING

from memtui.events import BreakerChanged, CleanupRan, Event, MemoryWarning, PhaseChanged
from memtui.stdio import LINE_LOCK, detach_dead_terminal, write_line

if TYPE_CHECKING:  # the runner pulls in numpy; monitor mode reuses this module without it
    from memtui.runner import Runner, RunSnapshot

PROGRESS_EVERY_S = 5.0
log = logging.getLogger("memtui")

# These the memory core already logs itself (same words); printing the events too would say it twice.
_LOGGED_BY_CORE = (MemoryWarning, CleanupRan, BreakerChanged)


def setup_logging(stream: TextIO = sys.stderr, level: int = logging.INFO) -> logging.Handler:
    """The original guide's format: ``INFO:memtui:⚠️ Memory warning: 1.12GB``."""
    handler = logging.StreamHandler(stream)
    handler.lock = LINE_LOCK  # one lock for every line memtui writes: threads never share a line
    handler.setFormatter(logging.Formatter("%(levelname)s:%(name)s:%(message)s"))
    logger = logging.getLogger("memtui")
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return handler


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def progress_line(s: "RunSnapshot") -> str:
    pct = 100.0 * s.items_done / s.items_total if s.items_total else 0.0
    m = s.memory
    state = "paused" if s.paused else s.phase
    return (f"⏳ {s.items_done}/{s.items_total} responses ({pct:.1f}%) · {s.units_done}/{s.units_total} domains · "
            f"{s.items_per_s:.1f}/s · ETA {format_duration(s.eta_s)} · mem {m.rss_gb:.2f}GB peak {m.peak_gb:.2f}GB · "
            f"breaker {m.state.label} · batch {s.batch_size} · {state}")


def summary_lines(report: dict[str, Any]) -> list[str]:
    r = report
    lines = [
        f"Run {r['status']} ({r['mode']}): {r['items']} responses embedded or checked in {r['duration_s']:.1f}s "
        f"({r['items_per_s']:.1f}/s), {r['items_skipped']} already cached",
        f"Domains {r['domains_done']}/{r['domains_total']} · batches {r['batches']} · memory now "
        f"{r['memory_usage_gb']:.2f}GB, peak {r['peak_memory_gb']:.2f}GB · warnings {r['memory_warnings']} · "
        f"breaker trips {r['breaker_trips']} · cleanups {r['cleanups']}",
    ]
    if r.get("limit_gb"):
        lines.append(f"Memory limit {r['limit_gb']:.1f}GB from {r['limit_source']} · thresholds warning "
                     f"{r['warning_memory_gb']:.2f}GB, breaker {r['max_memory_gb']:.2f}GB")
    if r.get("bad_lines"):
        lines.append(f"{r['bad_lines']} bad input line(s) skipped")
    if r.get("unprocessed_domains"):
        names = ", ".join(r["unprocessed"][:5])
        more = f" and {r['unprocessed_domains'] - 5} more" if r["unprocessed_domains"] > 5 else ""
        how = "rerun with the levels above to resume" if r.get("memory_floor_gb") else "rerun to resume"
        lines.append(f"Not processed: {r['unprocessed_domains']} domain(s): {names}{more} ({how})")
    if r.get("reason"):
        lines.append(f"Why: {r['reason']}")
    if r.get("error"):
        lines.append(f"Error: {r['error']}")
    lines.append(f"Cache: {r['cache']}")
    return lines


class HeadlessFace:
    def __init__(self, runner: "Runner", *, out: TextIO = sys.stdout, err: TextIO = sys.stderr,
                 progress_every_s: float = PROGRESS_EVERY_S) -> None:
        self.runner = runner
        self.out = out
        self.err = err
        self.progress_every_s = progress_every_s
        self._events = runner.subscribe()
        self._report: dict[str, Any] | None = None
        self._done = threading.Event()
        self._interrupts = 0
        self._ttys: tuple[int, ...] = ()  # stdout/stderr descriptors that were terminals at the start
        self.hung_up = False

    def run(self) -> dict[str, Any]:
        worker = threading.Thread(target=self._work, name="memtui-runner", daemon=True)
        previous = self._install_signals()
        worker.start()
        next_progress = time.monotonic() + self.progress_every_s
        try:
            # An Event, not Thread.is_alive(): a signal landing inside join() can leave
            # is_alive() False while the worker still runs.
            while not self._done.is_set():
                self._events.wait(timeout=0.5)
                self._print_events()
                if time.monotonic() >= next_progress:
                    self._say(progress_line(self.runner.snapshot()))
                    next_progress = time.monotonic() + self.progress_every_s
                self._done.wait(timeout=0.01)
        finally:
            self._restore_signals(previous)
        self._print_events()
        assert self._report is not None
        return self._report

    def _work(self) -> None:
        try:
            self._report = self.runner.run()
        finally:
            self._done.set()

    def _print_events(self) -> None:
        for event in self._events.drain():
            if isinstance(event, _LOGGED_BY_CORE):
                continue
            if isinstance(event, PhaseChanged) and event.phase in ("running", "success"):
                continue
            self._say(event.message, event)

    def _say(self, text: str, event: Event | None = None) -> None:
        level = (event.level if event else "info").upper()
        write_line(self.err, f"{level}:memtui:{text}")

    def _interrupt(self, *_: object) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            write_line(self.err, "memtui: interrupted again, exiting now (committed batches are safe)")
            self.runner.record_hard_exit("interrupted twice")
            os._exit(130)
        write_line(self.err, "memtui: interrupted: finishing the sub-batch in flight and committing "
                             "(Ctrl-C again to quit now)")
        self.runner.stop()

    def _hangup(self, *_: object) -> None:
        """The terminal went away: stop as SIGTERM would, with output to it going nowhere."""
        self.hung_up = True
        detach_dead_terminal(self._ttys)
        write_line(self.err, "memtui: hangup: finishing the sub-batch in flight and committing")
        self.runner.stop()

    def _install_signals(self) -> dict[int, Any]:
        """Ctrl-C, SIGTERM and SIGHUP become a stop request instead of an exception at a random spot."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        self._ttys = tuple(fd for fd in (1, 2) if os.isatty(fd))
        previous = {sig: signal.signal(sig, lambda *_: self._interrupt()) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._hangup)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            # After a hangup, another one (the shell passing it on) must not kill the summary and report.
            signal.signal(sig, signal.SIG_IGN if sig == signal.SIGHUP and self.hung_up else handler)
