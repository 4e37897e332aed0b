"""What the TUI faces share: an app that hosts an engine.

Both faces (the operator TUI over the Runner, the monitor TUI over the
MonitorEngine) host their engine the same way: its ``run()`` goes to a thread
worker, which reports back only by typed messages (``JobFinished``,
``JobCrashed``); the app polls ``snapshot()`` on a timer and steers through the
engine's thread-safe commands; and a quit commits first: the engine stops after
the work in flight and the app exits with the report once the worker returns.
Signals do the same in both: SIGTERM and SIGINT stop cleanly as a confirmed quit
would, and SIGHUP (a dropped SSH session, a closed terminal window) too, after
moving the app off the dead terminal, on a driver that survives it. Subclasses
keep what differs: their widgets, ``tick()``, their keys and quit questions
(abstract methods: a subclass that forgets one cannot be built).

memtui.faces.tui.run_tui picks the subclass for an engine and runs it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from textual import events, on
from textual.app import App
from textual.worker import Worker, WorkerState

from memtui.early_log import EarlyLine
from memtui.engine import Engine
from memtui.errors import MemtuiError, UsageError
from memtui.records import Report
from memtui.tui._textual_hacks import EngineAppMeta, HangupSafeDriver, use_unjoined_thread_workers
from memtui.tui.key_gate import KeyGate
from memtui.tui.messages import JobCrashed, JobFinished
from memtui.tui.text import strip_icon
from memtui.tui.theming import DEFAULT_THEME, NO_COLOR_THEME, is_theme_file, load_theme, load_themes
from memtui.tui.widgets.gc_log import GcLog


class EngineApp(App["Report"], metaclass=EngineAppMeta):
    """Hosts any Engine (memtui.engine): runs it in a worker, polls its snapshots, steers by its commands."""

    #: The worker's name, and what the crash line calls the thread.
    WORKER_NAME = "memtui-job"
    THREAD_NOUN = "job"
    #: What memtui.faces.tui.run_tui calls the app and the engine's work when the app ends without a report.
    FACE_NOUN = "TUI"
    WORK_NOUN = "job"
    #: The run this app is a viewer of ("run 3f2a, pid 812"), named in its header; None: it hosts its own.
    attached_to: str | None = None
    #: Mouse tracking (off: the terminal's own text selection keeps working over SSH).
    MOUSE: ClassVar[bool] = False
    #: Signals that end the app through ``_quit_on_signal`` when ``handle_signals`` is on.
    QUIT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)

    def __init__(
        self,
        engine: Engine,
        *,
        theme: str | None = None,
        autostart: bool = True,
        poll_interval: float = 0.25,
        handle_signals: bool = False,
        early: Sequence[EarlyLine] = (),
        keymap: Mapping[str, str] | None = None,
        **app_options: Any,
    ) -> None:
        # On a real Linux terminal, a driver that outlives a hung-up tty (tests use Textual's headless one).
        if handle_signals and sys.platform.startswith("linux"):
            app_options.setdefault("driver_class", HangupSafeDriver)
        super().__init__(**app_options)
        self._engine = engine
        self._autostart = autostart
        self._poll_interval = poll_interval
        self._handle_signals = handle_signals
        self._events = engine.subscribe()
        self.early_lines = tuple(early)  # what the setup logged before the app started (memtui.early_log)
        if keymap:  # the config file's [keys] (memtui.tui.keymap): footer, help and palette follow
            self.set_keymap(dict(keymap))
        self._worker: Worker | None = None
        self.report: Report | None = None
        self.quitting = False  # the operator confirmed quit: exit as soon as the job has returned
        self.keys = KeyGate(self, route=super().on_event)  # typed keys apply one by one, in order
        for t in load_themes():
            self.register_theme(t)
        if theme is not None and is_theme_file(theme):  # an operator's own theme file
            own = load_theme(Path(theme).expanduser())
            self.register_theme(own)
            theme = own.name
        wanted = theme or (NO_COLOR_THEME if self.no_color else DEFAULT_THEME)
        if wanted not in self.available_themes:
            raise UsageError(f"unknown theme {wanted!r}; choose one of: {', '.join(sorted(self.available_themes))}")
        self.theme = wanted

    # -- what subclasses provide --------------------------------------------------------
    # ``last``: the latest snapshot polled, held in a reactive whose watchers show it (MemtuiApp's
    # dashboard screen, MonitorApp itself); check_action reads what the keys depend on from it.
    @property
    @abstractmethod
    def job_log(self) -> GcLog:
        """The log the crash line goes to."""

    @abstractmethod
    def tick(self) -> None:
        """Poll one snapshot and drain the events: the only way the UI learns about the job."""

    @abstractmethod
    def action_request_quit(self) -> None:
        """q (and Textual's ctrl+q): ask or stop, then exit with the report."""

    @abstractmethod
    def _quit_on_signal(self) -> None:
        """SIGTERM, SIGINT (and SIGHUP, after the hangup handling): stop cleanly and exit with the report."""

    def _polling_started(self) -> None:
        """Once the first poll is shown and the timer set, before signals are caught and the job starts."""

    def _show_report(self, report: Report) -> None:
        """After the final tick, when the job has reported."""

    def _show_stopping(self) -> None:
        """Once the engine has been told to stop, before the tick that follows."""

    def _show_alerts(self, lines: list[str]) -> None:
        """Keep the setup's warnings on screen until the operator dismisses them."""

    def _log_early(self) -> None:
        """What the setup logged before the app started: every line into the log, at its time; the
        warnings also stay on screen until dismissed (``_show_alerts``)."""
        for line in self.early_lines:
            tag, kind = (
                ("ERROR", "error")
                if line.level >= logging.ERROR
                else ("WARN", "warning")
                if line.weighty
                else ("NOTE", "info")
            )
            self.job_log.add(tag, kind, strip_icon(line.text), at=line.at)
        self._show_alerts([strip_icon(line.text) for line in self.early_lines if line.weighty])

    def _check_thresholds(self, warning: str, breaker: str) -> str | None:
        """An error for levels the engine must not see, checked before ``set_thresholds``."""
        return None

    # -- keys: in the order typed, each to the screen in front by then (memtui.tui.key_gate; a Textual
    # internal this hook relies on is named in memtui.tui._textual_hacks) --
    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, (events.Key, events.Paste)) and not event.is_forwarded:
            await self.keys.receive(event)
        else:
            await super().on_event(event)

    def push_screen(self, screen: Any, callback: Any = None, wait_for_dismiss: bool = False, **kw: Any) -> Any:
        """Keys typed after the one that opened a screen wait until it is mounted, then go to it."""
        shown = super().push_screen(screen, callback, wait_for_dismiss, **kw)  # type: ignore[call-overload]
        if not wait_for_dismiss:
            self.keys.screen_pushed(shown)
        return shown

    # -- the job ----------------------------------------------------------------------
    def _start_hosting(self) -> None:
        """Once the screen is up: poll now and on a timer, catch signals, start the job."""
        self.tick()
        self.set_interval(self._poll_interval, self.tick, name="poll")
        self.set_interval(0.5, self._check_abandoned, name="abandoned")
        self._polling_started()
        if self._handle_signals:
            self._install_signal_handlers()
        if self._autostart:
            self.start_job()

    def start_job(self) -> None:
        if self._worker is None:
            use_unjoined_thread_workers(asyncio.get_running_loop())  # an abandoned job must not hold the exit
            self._worker = self.run_worker(
                self._run_job, name=self.WORKER_NAME, group="job", thread=True, exit_on_error=False
            )

    def _run_job(self) -> Report:
        """Runs in the worker thread: the only place the job runs; it reports back by message."""
        report = self._engine.run()
        self.post_message(JobFinished(report))
        return report

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker is self._worker and event.state is WorkerState.ERROR:
            self.post_message(JobCrashed(f"{type(event.worker.error).__name__}: {event.worker.error}"))

    def _check_abandoned(self) -> None:
        """An engine that reported while its worker hangs (a stop's grace ran out: memtui.runner) has finished."""
        if self.report is None and getattr(self._engine, "abandoned", False):
            report = self._engine.snapshot().report
            if report is not None:
                self.post_message(JobFinished(report))

    @on(JobFinished)
    def job_finished(self, message: JobFinished) -> None:
        self.report = message.report
        self.tick()
        self._show_report(message.report)
        if self.quitting:
            self.exit(message.report)

    @on(JobCrashed)
    def job_crashed(self, message: JobCrashed) -> None:
        self.job_log.add("ERROR", "error", f"the {self.THREAD_NOUN} thread crashed: {message.error}")
        self.report = self._engine.snapshot().report
        if self.quitting:
            self.exit(self.report)

    @property
    def job_running(self) -> bool:
        worker = self._worker
        return self.report is None and worker is not None and worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    # -- thresholds -------------------------------------------------------------------
    def _levels_error(self, warning: str, breaker: str) -> str | None:
        """What is wrong with the two levels typed into a dialog (one line), or None."""
        for what, value in (("warning", warning), ("breaker", breaker)):
            if not value:
                return f"{what}: enter a size, e.g. 1.2, 800MB or 75%"
        return self._check_thresholds(warning, breaker)

    def _apply_thresholds(self, warning: str, breaker: str) -> str | None:
        error = self._levels_error(warning, breaker)
        if error is not None:
            return error
        try:
            self._engine.set_thresholds(warning=warning, max=breaker)
        except MemtuiError as exc:  # invalid, or an attached run that did not answer
            return str(exc)
        self.tick()  # the engine logs the change; the panels show it at once
        return None

    # -- quitting ---------------------------------------------------------------------
    def _exit_with_report(self) -> None:
        self.exit(self.report or self._engine.snapshot().report)

    def _stop_engine(self) -> None:
        """Stop after the work in flight; ``job_finished`` exits with the report when the worker returns."""
        self.quitting = True
        self._engine.stop()
        self._show_stopping()
        self.tick()

    # Textual's own quit key (ctrl+q) goes through the same door.
    async def action_quit(self) -> None:
        self.action_request_quit()

    def _install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT stop cleanly, as a confirmed quit would; SIGHUP too, after moving the app
        off the dead terminal."""
        loop = asyncio.get_running_loop()
        for sig in self.QUIT_SIGNALS:
            try:
                loop.add_signal_handler(sig, self._on_quit_signal)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        self._signal_loop = loop
        signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_quit_signal(self) -> None:
        """The first SIGTERM/SIGINT stops cleanly; one more while the engine is still stopping leaves at
        once (as headless does): a run whose work cannot finish must never outlive its operator's signals."""
        if getattr(self, "_signalled", False) and self.job_running:
            self._engine.emergency_exit("interrupted twice")
            os._exit(130)
        self._signalled = True
        self._quit_on_signal()

    def _on_hangup(self, _signum: int, _frame: object) -> None:
        """The terminal is gone. Runs synchronously in the main thread, before Textual's SIGCONT
        handler (the kernel sends SIGHUP then SIGCONT), so nothing writes to the dead tty first.

        Nobody is watching any more: the engine stops now (the monitor engine resumes whatever it
        stopped), the app exits with the report, and a watchdog makes sure the process does not
        outlive the report by more than HANGUP_EXIT_GRACE_S whatever the UI does.
        """
        if getattr(self, "_hung_up", False):
            return  # the shell passing the hangup on: already on the way out
        self._hung_up = True
        self._signalled = True  # a SIGTERM or SIGINT after the hangup leaves at once
        detach_from_terminal()
        signal.signal(signal.SIGCONT, signal.SIG_DFL)  # no "resume" onto the dead terminal
        self._engine.stop()
        self._signal_loop.call_soon_threadsafe(self._quit_on_signal)
        threading.Thread(target=_exit_if_stuck, args=(self._engine,), name="memtui-hangup", daemon=True).start()

    def _uninstall_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in self.QUIT_SIGNALS:
            try:
                loop.remove_signal_handler(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass
        # After a hangup, a second one (the shell passing it on) must not kill the summary and report.
        signal.signal(signal.SIGHUP, signal.SIG_IGN if getattr(self, "_hung_up", False) else signal.SIG_DFL)

    def on_unmount(self) -> None:
        # Whatever ends the app (even a crash), the engine stops after committing the work in flight.
        if self.report is None:
            self._engine.stop()
        self._engine.unsubscribe(self._events)
        if self._handle_signals:
            self._uninstall_signal_handlers()


#: After a hangup, how long the app may take to exit once the job has reported before we leave anyway.
HANGUP_EXIT_GRACE_S = 20.0
#: After a hangup, how long the engine may take to stop and report before the process leaves anyway (every
#: engine's stop is bounded well within this: the Runner's sub-batch, a cluster's STOP_GRACE_S and closes).
HANGUP_REPORT_S = 90.0
_kept_fds: list[int] = []


def detach_from_terminal() -> None:
    """Point stdin/stdout/stderr away from a hung-up terminal.

    Writes to a hung-up tty fail with EIO (HangupSafeDriver drops them) and
    reads return EOF at once, which spins Textual's input thread. /dev/null
    takes the writes; stdin becomes a pipe that stays empty, so the input thread
    waits in select(). One NUL byte (an unbound key) is queued first: an input
    thread already past select() when the tty went away must not block in
    read() forever, or the app could not stop it on exit.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)
    read_end, write_end = os.pipe()
    os.dup2(read_end, 0)
    os.close(read_end)
    os.write(write_end, b"\x00")
    _kept_fds.append(write_end)  # kept open: an empty pipe with a writer blocks instead of reading EOF


def _exit_if_stuck(engine: Engine) -> None:
    """Last resort after a hangup: once the engine has finished and reported, never hang around; and
    if it has not reported within HANGUP_REPORT_S, leave anyway (committed work is safe; exit 130)."""
    deadline = time.monotonic() + HANGUP_REPORT_S
    while (report := engine.snapshot().report) is None:
        if time.monotonic() >= deadline:
            engine.emergency_exit("hung up, and the run did not stop in time")
            os._exit(130)
        time.sleep(0.5)
    time.sleep(HANGUP_EXIT_GRACE_S)
    os._exit(report.exit_code)
