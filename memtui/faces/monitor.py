"""The headless face of monitor mode: one log line per target per interval, events as lines, a JSON report.

Runs the engine in a worker thread and reads it like any face, through events.
Ctrl-C, SIGTERM or SIGHUP ends the watch (memtui resumes any process it
stopped); a second Ctrl-C or SIGTERM exits at once, still resuming them first.
SIGHUP never escalates: a hung-up terminal and the shell forwarding it often
deliver two, and the report must still be written. A terminal that went away
never crashes the exit path: writes to it (EIO, or EPIPE on a closed pipe) are
dropped and its descriptor pointed at /dev/null.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from typing import Any, TextIO

from memtui.jobs.monitor.engine import MonitorEngine
from memtui.stdio import detach_dead_terminal, write_line

log = logging.getLogger("memtui")


def summary_lines(report: dict[str, Any]) -> list[str]:
    r = report
    lines = [f"Monitor {r['status']} ({r['end_reason']}) after {r['duration_s']:.1f}s: {r['selection']}, "
             f"every {r['interval_s']:g}s, on breaker: {r['on_breaker']}"]
    for t in r["targets"]:
        acts = ", ".join(f"{a['action']}{'' if a['ok'] else ' (failed)'}" for a in t["actions"]) or "none"
        lines.append(f"  pid {t['pid']} {t['name']}: {t['state']} · now {t['memory_usage_gb']:.2f}GB · peak "
                     f"{t['peak_memory_gb']:.2f}GB · warnings {t['memory_warnings']} · trips {t['breaker_trips']} "
                     f"· actions: {acts}")
    limit = f"memory limit {r['limit_gb']:.1f}GB from {r['limit_source']} · " if r.get("limit_gb") else ""
    lines.append(f"{limit}thresholds: warning {r['warning_memory_gb']:.2f}GB, breaker {r['max_memory_gb']:.2f}GB, "
                 f"reset below {r['reset_memory_gb']:.2f}GB")
    return lines


class MonitorHeadless:
    def __init__(self, engine: MonitorEngine, *, err: TextIO | None = None) -> None:
        self.engine = engine
        self.err = err
        self._events = engine.subscribe()
        self._report: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._interrupts = 0
        self._ttys: tuple[int, ...] = ()  # stdout/stderr descriptors that were terminals at the start
        self.hung_up = False

    def run(self) -> dict[str, Any]:
        worker = threading.Thread(target=self._work, name="memtui-monitor", daemon=True)
        previous = self._install_signals()
        worker.start()
        try:
            # Not worker.is_alive(): a Ctrl-C landing inside Thread.join() can leave it False too early.
            while not self._done.is_set():
                try:
                    self._events.wait(timeout=0.5)
                    self._print_events()
                except KeyboardInterrupt:
                    self._interrupt()
        finally:
            self._restore_signals(previous)
        self._print_events()
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report

    def _work(self) -> None:
        try:
            self._report = self.engine.run()
        except BaseException as exc:  # handed to the main thread, which raises it
            self._error = exc
        finally:
            self._done.set()

    def _print_events(self) -> None:
        for event in self._events.drain():
            log.log(logging.getLevelName(event.level.upper()), "%s", event.message)

    def _say(self, text: str) -> None:
        """One line to stderr; a terminal that went away loses it, and that is all."""
        write_line(self.err or sys.stderr, text)

    def _interrupt(self, *_: object) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            self._say("memtui: interrupted again, exiting now")
            self.engine.release_all()
            os._exit(130)
        self._say("memtui: interrupted: ending the watch (Ctrl-C again to quit now)")
        self.engine.stop()

    def _hangup(self, *_: object) -> None:
        """SIGHUP: the terminal (or the session) is gone. End the watch as SIGTERM would, but never
        escalate: the report is still written (to stdout if it is not the dead terminal, and --report)."""
        self.hung_up = True
        detach_dead_terminal(self._ttys)
        self._say("memtui: hangup: ending the watch")
        self.engine.stop()

    def _install_signals(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return None
        self._ttys = tuple(fd for fd in (1, 2) if os.isatty(fd))
        return (signal.signal(signal.SIGTERM, lambda *_: self._interrupt()),
                signal.signal(signal.SIGHUP, self._hangup))

    def _restore_signals(self, previous: Any) -> None:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous[0])
            # After a hangup, another one (the shell passing it on) must not kill the summary and report.
            signal.signal(signal.SIGHUP, signal.SIG_IGN if self.hung_up else previous[1])
