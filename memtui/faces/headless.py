"""The headless host: any Engine in a worker thread, its events as log lines, a JSON report.

One host for both engines. It runs ``engine.run()`` in a worker thread and reads
the engine like any face: events and snapshots. What differs per engine (the
summary, a progress line, which events are printed, how a stop is worded) comes
from its ``HeadlessParts`` (memtui.faces.job, memtui.faces.monitor).

Signals are the same for every engine. Ctrl-C or SIGTERM asks the engine to
stop (the Runner commits the batch in flight; the monitor resumes what it
stopped); a second Ctrl-C or SIGTERM calls ``engine.emergency_exit()`` (the
Runner notes it in the trace, the monitor resumes what it stopped) and exits at
once with 130. SIGHUP (the terminal or SSH session went away) stops like
SIGTERM, moves output off the dead terminal, and never escalates: a hangup
often arrives twice, and the report must still be written. An exception in the
worker is raised again in the main thread. An engine that reports while its
worker is still stuck (``abandoned``: a stop whose grace ran out) ends the face
with that report; the caller ends the process (memtui.cli.wiring.run_face).
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from memtui.engine import Engine
from memtui.events import Event
from memtui.records import Report
from memtui.stdio import LINE_LOCK, detach_dead_terminal, write_line

PROGRESS_EVERY_S = 5.0
#: After a hangup, how long the engine may take to stop and report before the process leaves anyway (exit 130).
HANGUP_REPORT_S = 90.0
log = logging.getLogger("memtui")

__all__ = ["PROGRESS_EVERY_S", "HeadlessFace", "HeadlessParts", "parts_for", "setup_logging"]


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


def _every_event(_event: Event) -> bool:
    return True


@dataclass(frozen=True)
class HeadlessParts:
    """What the headless host says differently for one kind of engine."""

    #: The worker thread's name.
    thread_name: str
    #: What a stop request does, as the interrupt and hangup lines say it ("ending the watch").
    stopping: str
    #: The summary lines printed after the run, from its report.
    summary: Callable[[Any], list[str]]  # the engine's own report type
    #: Said after "exiting now" on a second Ctrl-C (what is safe anyway), with its leading space.
    hard_exit_note: str = ""
    #: A progress line from a snapshot, printed every ``progress_every_s``; None prints none.
    progress: Callable[[Any], str] | None = None
    #: Which events become log lines (the memory core logs some itself).
    shows: Callable[[Event], bool] = _every_event


#: Where each kind of engine's parts live (imported only when that engine runs).
PARTS_MODULES = {"job": "memtui.faces.job", "monitor": "memtui.faces.monitor"}


def parts_for(engine: Engine) -> HeadlessParts:
    """The headless parts for ``engine.kind``."""
    try:
        module = PARTS_MODULES[engine.kind]
    except KeyError:
        raise ValueError(f"no headless face for a {engine.kind!r} engine") from None
    parts: HeadlessParts = importlib.import_module(module).HEADLESS
    return parts


class HeadlessFace:
    """Hosts one Engine without a screen: ``run()`` returns the engine's report."""

    def __init__(
        self,
        engine: Engine,
        *,
        parts: HeadlessParts | None = None,
        err: TextIO | None = None,
        progress_every_s: float = PROGRESS_EVERY_S,
    ) -> None:
        """``err`` takes the log lines (sys.stderr at the time of writing if None); the JSON report goes
        to stdout through memtui.cli.wiring.run_face, not through the face."""
        self.engine = engine
        self.parts = parts or parts_for(engine)
        self.err = err
        self.progress_every_s = progress_every_s
        self._events = engine.subscribe()
        self._report: Report | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._interrupts = 0
        self._ttys: tuple[int, ...] = ()  # stdout/stderr descriptors that were terminals at the start
        self.hung_up = False
        self._hung_up_at: float | None = None

    def run(self) -> Report:
        worker = threading.Thread(target=self._work, name=self.parts.thread_name, daemon=True)
        previous = self._install_signals()
        worker.start()
        next_progress = time.monotonic() + self.progress_every_s
        try:
            # An Event, not Thread.is_alive(): a signal landing inside join() can leave
            # is_alive() False while the worker still runs.
            while not self._done.is_set() and not self._abandoned():
                self._events.wait(timeout=0.5)
                self._print_events()
                if self.parts.progress is not None and time.monotonic() >= next_progress:
                    self._say(self.parts.progress(self.engine.snapshot()))
                    next_progress = time.monotonic() + self.progress_every_s
                self._done.wait(timeout=0.01)
                if self._hung_up_at is not None and time.monotonic() - self._hung_up_at > HANGUP_REPORT_S:
                    # nobody is watching and the engine did not stop in time: committed work is safe
                    self.engine.emergency_exit("hung up, and the run did not stop in time")
                    os._exit(130)
        finally:
            self._restore_signals(previous)
        self._print_events()
        self.engine.unsubscribe(self._events)
        if self._abandoned():  # the run ended without its worker (memtui.runner: a bounded stop)
            report: Report | None = self.engine.snapshot().report
            assert report is not None
            return report
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report

    def _abandoned(self) -> bool:
        """The engine reported while its worker is still stuck (a stop's grace ran out): the face ends now."""
        return bool(getattr(self.engine, "abandoned", False)) and self.engine.snapshot().report is not None

    def _work(self) -> None:
        try:
            self._report = self.engine.run()
        except BaseException as exc:  # handed to the main thread, which raises it
            self._error = exc
        finally:
            self._done.set()

    def _print_events(self) -> None:
        for event in self._events.drain():
            if self.parts.shows(event):
                self._say(event.message, event.level)

    def _say(self, text: str, level: str = "info") -> None:
        self._line(f"{level.upper()}:memtui:{text}")

    def _line(self, text: str) -> None:
        """One line to stderr; a terminal that went away loses it, and that is all."""
        write_line(self.err or sys.stderr, text)

    def _interrupt(self, *_: object) -> None:
        self._interrupts += 1
        if self._interrupts > 1:
            self._line(f"memtui: interrupted again, exiting now{self.parts.hard_exit_note}")
            self.engine.emergency_exit("interrupted twice")
            os._exit(130)
        self._line(f"memtui: interrupted: {self.parts.stopping} (Ctrl-C again to quit now)")
        self.engine.stop()

    def _hangup(self, *_: object) -> None:
        """The terminal went away: stop as SIGTERM would, with output to it going nowhere."""
        self.hung_up = True
        if self._hung_up_at is None:
            self._hung_up_at = time.monotonic()
        detach_dead_terminal(self._ttys)
        self._line(f"memtui: hangup: {self.parts.stopping}")
        self.engine.stop()

    def _install_signals(self) -> dict[int, Any]:
        """Ctrl-C, SIGTERM and SIGHUP become a stop request instead of an exception at a random spot."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        self._ttys = tuple(fd for fd in (1, 2) if os.isatty(fd))
        previous: dict[int, Any] = {sig: signal.signal(sig, self._interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        previous[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._hangup)
        return previous

    def _restore_signals(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            # After a hangup, another one (the shell passing it on) must not kill the summary and report.
            signal.signal(sig, signal.SIG_IGN if sig == signal.SIGHUP and self.hung_up else handler)
